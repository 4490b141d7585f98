#!/usr/bin/env bash
# recipes/mnist_dp: every run of the recipe, stacked on one GPU (RUNS=dir writes elsewhere; a re-run trains only
# what is missing).
set -euo pipefail
RUNS=${RUNS:-$(dirname "$0")/runs}
ON_GPU="hydra/launcher=stacked trainer=gpu"
DP=firm.callbacks.dpsgd
aca-run -m experiment=mnist_dp $ON_GPU firm=erm hydra.sweep.dir="$RUNS/erm"                                             # 40 runs
aca-run -m experiment=mnist_dp $ON_GPU $DP.noise_multiplier=null $DP.target_epsilon=0.5,1,2,4,8 hydra.sweep.dir="$RUNS/epsilon"    # 200
aca-run -m experiment=mnist_dp $ON_GPU $DP.max_grad_norm=0.1,0.3,1,3,10 hydra.sweep.dir="$RUNS/clip_sigma"              # 200, sigma = 1
aca-run -m experiment=mnist_dp $ON_GPU $DP.noise_multiplier=null $DP.target_epsilon=2 $DP.max_grad_norm=0.1,0.3,1,3,10 \
  hydra.sweep.dir="$RUNS/clip_epsilon"                                                                                   # 200, epsilon = 2
