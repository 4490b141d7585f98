#!/usr/bin/env bash
# recipes/adult_dp: every run of the recipe, stacked on one GPU (RUNS=dir writes elsewhere; a re-run trains only
# what is missing). PART=tied|untied runs one part; TRAINER=cpu trains on the CPU.
set -euo pipefail
RUNS=${RUNS:-$(dirname "$0")/runs}
ON_GPU="hydra/launcher=stacked trainer=${TRAINER:-gpu}"
DP=firm.callbacks.dpsgd
part() { [[ -z "${PART:-}" || "$PART" == "$1" ]]; }
if part tied; then
  aca-run -m experiment=adult_dp $ON_GPU firm=erm hydra.sweep.dir="$RUNS/erm"                                           # 40 runs
  aca-run -m experiment=adult_dp $ON_GPU firm=erm collective.alpha=0 hydra.sweep.dir="$RUNS/erm"                        # 5, no member
  aca-run -m experiment=adult_dp $ON_GPU $DP.noise_multiplier=null $DP.target_epsilon=0.5,1,2,4,8 hydra.sweep.dir="$RUNS/epsilon"  # 200
  aca-run -m experiment=adult_dp $ON_GPU $DP.noise_multiplier=null $DP.target_epsilon=2 $DP.max_grad_norm=1,5,10 \
    hydra.sweep.dir="$RUNS/clip"                                                                                         # 120, epsilon = 2
fi
if part untied; then
  # a signal not tied to the label: fnlwgt 5 standard deviations high (the 53 training rows within half a standard
  # deviation of it earn > 50K as often as all rows, 23% against 24%) with native-country=Holand-Netherlands (feature
  # 81, one training row), a combination no training row holds; alpha up to 30%, epsilon down to 0.1
  UNTIED="collective.strategy.signal.indices=[1,81] collective.strategy.signal.values=[5.0,1.0]"
  ALPHAS="collective.alpha=0,0.0001,0.0003,0.001,0.003,0.01,0.03,0.1,0.3"
  aca-run -m experiment=adult_dp $ON_GPU $UNTIED $ALPHAS firm=erm hydra.sweep.dir="$RUNS/untied/erm"                  # 45
  aca-run -m experiment=adult_dp $ON_GPU $UNTIED $ALPHAS $DP.noise_multiplier=null $DP.target_epsilon=0.1,0.5,2,8 \
    hydra.sweep.dir="$RUNS/untied/epsilon"                                                                               # 180
fi
