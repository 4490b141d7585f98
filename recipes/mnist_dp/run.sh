#!/usr/bin/env bash
# recipes/mnist_dp: every run of the recipe, stacked on one GPU (RUNS=dir writes elsewhere; a re-run trains only
# what is missing). PART=grid|clip_tuned runs one part.
set -euo pipefail
RUNS=${RUNS:-$(dirname "$0")/runs}
ON_GPU="hydra/launcher=stacked trainer=${TRAINER:-gpu}"
DP=firm.callbacks.dpsgd
part() { [[ -z "${PART:-}" || "$PART" == "$1" ]]; }
if part grid; then
  aca-run -m experiment=mnist_dp $ON_GPU firm=erm hydra.sweep.dir="$RUNS/erm"                                             # 40 runs
  aca-run -m experiment=mnist_dp $ON_GPU $DP.noise_multiplier=null $DP.target_epsilon=0.5,1,2,4,8 hydra.sweep.dir="$RUNS/epsilon"    # 200
  aca-run -m experiment=mnist_dp $ON_GPU $DP.max_grad_norm=0.1,0.3,1,3,10 hydra.sweep.dir="$RUNS/clip_sigma"              # 200, sigma = 1
  aca-run -m experiment=mnist_dp $ON_GPU $DP.noise_multiplier=null $DP.target_epsilon=2 $DP.max_grad_norm=0.1,0.3,1,3,10 \
    hydra.sweep.dir="$RUNS/clip_epsilon"                                                                                 # 200, epsilon = 2
fi
if part clip_tuned; then
  # (e) the C sweep at epsilon = 2 with the learning rate the firm picks per C: at alpha = 0, 10% of the training digits
  # held out, the step lr * C in {0.005, ..., 0.5} (the recipe's lr 0.05 at C = 1 is 0.05), 3 seeds; the lr with the
  # highest mean validation accuracy then trains the alpha sweep on all 4,000 digits
  EPS2="$DP.noise_multiplier=null $DP.target_epsilon=2"
  for C in 0.1 0.3 1 3 10; do
    lrs=$(python3 -c "print(','.join(f'{s / $C:g}' for s in (0.005, 0.015, 0.05, 0.15, 0.5)))")
    aca-run -m experiment=mnist_dp $ON_GPU $EPS2 $DP.max_grad_norm=$C model.lr="$lrs" collective.alpha=0 seed=0,1,2 \
      +data.datamodule.val_fraction=0.1 hydra.sweep.dir="$RUNS/lr_tuning/$C"                                           # 15
    chosen=$(python3 -m lightning_aca.runs.selection "$RUNS/lr_tuning/$C" --by model.lr)  # e.g. model.lr=0.015
    lr=${chosen#model.lr=}
    echo "$lr" > "$RUNS/lr_tuning/$C/chosen_lr.txt"
    aca-run -m experiment=mnist_dp $ON_GPU $EPS2 $DP.max_grad_norm=$C model.lr="$lr" \
      hydra.sweep.dir="$RUNS/clip_epsilon_tuned/$C"                                                                      # 40
  done
fi
