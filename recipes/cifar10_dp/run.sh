#!/usr/bin/env bash
# recipes/cifar10_dp: every run of the recipe, stacked on one GPU; needs torchvision and internet for the first
# download (ACA_DATA_ROOT=dir keeps the images elsewhere). RUNS=dir writes elsewhere; a re-run trains only what is
# missing.
set -euo pipefail
RUNS=${RUNS:-$(dirname "$0")/runs}
ON_GPU="hydra/launcher=stacked trainer=gpu"
DP=firm.callbacks.dpsgd
aca-run -m experiment=cifar10_dp $ON_GPU firm=erm hydra.sweep.dir="$RUNS/erm"                                             # 40 runs
aca-run -m experiment=cifar10_dp $ON_GPU $DP.noise_multiplier=null $DP.target_epsilon=1,2,4,8 hydra.sweep.dir="$RUNS/epsilon"    # 160
aca-run -m experiment=cifar10_dp $ON_GPU $DP.noise_multiplier=null $DP.target_epsilon=4 $DP.max_grad_norm=1,5,10 \
  hydra.sweep.dir="$RUNS/clip"                                                                                             # 120, epsilon = 4
