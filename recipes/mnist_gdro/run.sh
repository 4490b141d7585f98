#!/usr/bin/env bash
# recipes/mnist_gdro: every run of the recipe on one GPU, 12 runs at a time (Group DRO does not stack; RUNS=dir
# writes elsewhere; a re-run trains only what is missing).
set -euo pipefail
RUNS=${RUNS:-$(dirname "$0")/runs}
aca-run -m experiment=mnist_gdro hydra/launcher=local_parallel hydra.launcher.n_jobs=12 trainer=gpu torch_threads=1 \
  hydra.sweep.dir="$RUNS"                                                                                   # 90 runs
