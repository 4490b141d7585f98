#!/usr/bin/env bash
# recipes/mnist_dp, part (a) located by hydra/sweeper=critical_mass instead of the 8-alpha grid: alpha* against epsilon
# (C = 1) and the ERM end, same data, model, seeds (0-4), alpha range (0.001-0.2) and stacked GPU training as run.sh.
# Each round of the search is one stack. Prints runs and wall seconds per sweep; GRID=1 also re-runs the grid
# version (run.sh's erm and epsilon lines) on the same card for the comparison. RUNS=dir writes elsewhere;
# a re-run trains only what is missing.
set -euo pipefail
RUNS=${RUNS:-$(dirname "$0")/runs}
ON_GPU="hydra/launcher=stacked trainer=gpu"
DP=firm.callbacks.dpsgd

timed() {  # timed NAME DIR ARGS...: run one sweep into DIR, then print its runs and wall seconds
  local name=$1 dir=$2 start end
  shift 2
  start=$(date +%s)
  aca-run -m experiment=mnist_dp $ON_GPU "$@" hydra.sweep.dir="$dir" '~hydra.callbacks.report'
  end=$(date +%s)
  echo "critical_mass.sh: $name: $(find "$dir" -name record.json | wc -l) runs, $((end - start)) s wall" | tee -a "$RUNS/critical_mass_timing.txt"
}

mkdir -p "$RUNS"
timed "search erm" "$RUNS/critical_mass/erm" hydra/sweeper=critical_mass firm=erm
timed "search epsilon" "$RUNS/critical_mass/epsilon" hydra/sweeper=critical_mass \
  $DP.noise_multiplier=null $DP.target_epsilon=0.5,1,2,4,8
if [[ "${GRID:-0}" == 1 ]]; then
  timed "grid erm" "$RUNS/grid_timing/erm" firm=erm                                                   # 40 runs
  timed "grid epsilon" "$RUNS/grid_timing/epsilon" $DP.noise_multiplier=null $DP.target_epsilon=0.5,1,2,4,8   # 200
fi
aca-report "$RUNS/critical_mass/erm" "$RUNS/critical_mass/epsilon" --against target_epsilon \
  --out "$RUNS/critical_mass/epsilon_vs_erm"
