#!/usr/bin/env bash
# recipes/two_collectives: two collectives on real MNIST-5k, under ERM and DP-SGD (epsilon = 8), stacked on one GPU
# (RUNS=dir writes elsewhere; a re-run trains only what is missing). 6 sweeps x 75 runs.
set -euo pipefail
RUNS=${RUNS:-$(dirname "$0")/runs}
ON_GPU="hydra/launcher=stacked trainer=gpu"
SECOND=collective.collectives.second.strategy
DP="firm=dpsgd firm.callbacks.dpsgd.noise_multiplier=null firm.callbacks.dpsgd.target_epsilon=8"
DP_GRID="collective.collectives.first.alpha=0,0.025,0.05,0.1,0.2 collective.collectives.second.alpha=0,0.025,0.05,0.1,0.2"
declare -A CASE=(
  [independent]=""                                   # patches in opposite corners, targets 0 and 1
  [competing]="$SECOND.signal.location=bottom_right" # the same patch, targets 0 and 1
  [cooperating]="$SECOND.target_class=0"             # patches in opposite corners, the same target 0
)
for name in independent competing cooperating; do
  aca-run -m experiment=mnist_two_collectives $ON_GPU ${CASE[$name]} hydra.sweep.dir="$RUNS/erm/$name"
  aca-run -m experiment=mnist_two_collectives $ON_GPU ${CASE[$name]} $DP $DP_GRID hydra.sweep.dir="$RUNS/dp/$name"
done
for firm in erm dp; do
  for name in independent competing cooperating; do
    out="$(dirname "$0")/report/$firm/$name"
    mkdir -p "$out"
    aca-report "$RUNS/$firm/$name" --out "$out" > "$out/table.txt"
  done
done
