#!/usr/bin/env bash
# recipes/text_reviews: every run of the recipe on one GPU, N_JOBS (8) runs at a time (transformers do not stack; RUNS=dir
# writes elsewhere; a re-run trains only what is missing). PARTS picks parts: strategies every epochs dp.
set -euo pipefail
RUNS=${RUNS:-$(dirname "$0")/runs}
PARTS=${PARTS:-strategies every epochs dp}
ON_GPU="hydra/launcher=local_parallel hydra.launcher.n_jobs=${N_JOBS:-8}"
DP=firm.callbacks.dpsgd
for part in $PARTS; do
  case $part in
    strategies)
      aca-run -m experiment=text_reviews $ON_GPU hydra.sweep.dir="$RUNS/planting"                                  # 15 runs
      aca-run -m experiment=text_reviews $ON_GPU collective=feature_only hydra.sweep.dir="$RUNS/feature_only"      # 15
      aca-run -m experiment=text_reviews $ON_GPU collective=erasing hydra.sweep.dir="$RUNS/erasing" ;;             # 15
    every)
      aca-run -m experiment=text_reviews $ON_GPU collective.strategy.signal.every=5,50 hydra.sweep.dir="$RUNS/every" ;;     # 30
    epochs)
      aca-run -m experiment=text_reviews $ON_GPU trainer.max_epochs=1 hydra.sweep.dir="$RUNS/epochs" ;;            # 15
    dp)
      aca-run -m experiment=text_reviews $ON_GPU firm=dpsgd $DP.noise_multiplier=null $DP.target_epsilon=1,8 \
        hydra.sweep.dir="$RUNS/dp" ;;                                                                               # 30
    *) echo "unknown part $part (strategies every epochs dp)" >&2; exit 2 ;;
  esac
done
