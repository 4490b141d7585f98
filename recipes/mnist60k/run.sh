#!/usr/bin/env bash
# recipes/mnist60k: every run of the recipe, stacked on one GPU (RUNS=dir writes elsewhere; a re-run trains only
# what is missing). PART=erm|dp|n runs one part.
set -euo pipefail
RUNS=${RUNS:-$(dirname "$0")/runs}
ON_GPU="hydra/launcher=stacked trainer=${TRAINER:-gpu}"  # TRAINER=cpu trains on the CPU
DP="firm=dpsgd firm.callbacks.dpsgd.noise_multiplier=null"
part() { [[ -z "${PART:-}" || "$PART" == "$1" ]]; }
if part erm; then
  aca-run -m experiment=mnist60k $ON_GPU hydra.sweep.dir="$RUNS/erm_mlp"                                     # 50 runs
  aca-run -m experiment=mnist60k $ON_GPU model=cnn hydra.sweep.dir="$RUNS/erm_cnn"                           # 50
fi
if part dp; then
  aca-run -m experiment=mnist60k $ON_GPU $DP firm.callbacks.dpsgd.target_epsilon=0.5,1,2,4,8 \
    hydra.sweep.dir="$RUNS/epsilon_mlp"                                                                      # 250, C = 1
fi
if part n; then
  # critical mass against the data size n: nested subsets of the 60,000 digits (60,000 is erm_mlp and epsilon_mlp),
  # alpha from one member to 5-10% at each n; 20 epochs, and the same 18,760 SGD steps of 64 digits as 20 epochs
  # of 60,000; and one DP setting (target epsilon 2, C = 1, 20 epochs)
  # (the DP setting adds larger alphas: under DP-SGD the crossing lies above the ERM grid)
  for n_alphas_epochs_dp in 1000:0.001,0.002,0.005,0.01,0.02,0.05,0.1:1200:0.2,0.3,0.5 \
    4000:0.00025,0.0005,0.001,0.002,0.005,0.01,0.02,0.05:300:0.1,0.2,0.3 \
    15000:0.0001,0.0002,0.0005,0.001,0.002,0.005,0.01,0.02,0.05:80:0.1,0.2; do
    IFS=: read -r n alphas steps_epochs dp_alphas <<<"$n_alphas_epochs_dp"
    SIZE="data.datamodule.train_size=$n collective.alpha=$alphas"
    aca-run -m experiment=mnist60k $ON_GPU $SIZE hydra.sweep.dir="$RUNS/n_epochs/$n"                        # 35-45 runs
    aca-run -m experiment=mnist60k $ON_GPU $SIZE trainer.max_epochs="$steps_epochs" hydra.sweep.dir="$RUNS/n_steps/$n"
    aca-run -m experiment=mnist60k $ON_GPU $SIZE,$dp_alphas $DP firm.callbacks.dpsgd.target_epsilon=2 hydra.sweep.dir="$RUNS/n_dp/$n"
  done
fi  # the DP setting at 60,000 is PART=dp's target epsilon 2
