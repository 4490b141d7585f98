#!/usr/bin/env bash
# recipes/mnist_sgd: every run of the recipe, stacked on one GPU (RUNS=dir writes elsewhere; a re-run trains only
# what is missing).
set -euo pipefail
RUNS=${RUNS:-$(dirname "$0")/runs}
ON_GPU="hydra/launcher=stacked trainer=gpu"
aca-run -m experiment=mnist_sgd $ON_GPU hydra.sweep.dir="$RUNS/alpha"                                      # 40 runs
aca-run -m experiment=mnist_sgd $ON_GPU trainer.max_epochs=5,10,40 hydra.sweep.dir="$RUNS/epochs"           # 120 runs
aca-run -m experiment=mnist_sgd $ON_GPU collective.strategy.signal.size=1,3,4 hydra.sweep.dir="$RUNS/patch" # 120 runs
