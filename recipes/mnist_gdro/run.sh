#!/usr/bin/env bash
# recipes/mnist_gdro: every run of the recipe on one GPU (RUNS=dir and RUNS60K=dir write elsewhere; a re-run trains
# only what is missing). PART=5k|5k_weight_decay|60k runs one part; TRAINER=cpu trains on the CPU.
set -euo pipefail
RUNS=${RUNS:-$(dirname "$0")/runs}
RUNS60K=${RUNS60K:-$(dirname "$0")/runs60k}
part() { [[ -z "${PART:-}" || "$PART" == "$1" ]]; }
if part 5k; then
  aca-run -m experiment=mnist_gdro hydra/launcher=local_parallel hydra.launcher.n_jobs=12 trainer=gpu torch_threads=1 \
    hydra.sweep.dir="$RUNS"                                                                                 # 90 runs
fi
if part 5k_weight_decay; then
  # the 5,000-digit sweep again, stacked, at four weight decays from none to 0.01 (ERM and Group DRO at eta = 0.01)
  aca-run -m experiment=mnist_gdro hydra/launcher=stacked trainer=${TRAINER:-gpu} model.weight_decay=0,0.001,0.003,0.01 \
    hydra.sweep.dir="$(dirname "$0")/runs_weight_decay"                                                      # 360
fi
if part 60k; then
  # the mechanism at full size: 60,000 coloured digits, Group DRO's step size eta and weight decay, members drawn from
  # every class (spread) or only from the large digits (confined: relabelled y* = 0, 95% of them land in the small
  # observed group (0, green) that Group DRO upweights)
  FULL="experiment=mnist_gdro data.datamodule.source=mnist hydra/launcher=stacked trainer=${TRAINER:-gpu} seed=0,1,2"
  FULL="$FULL collective.alpha=0,0.0001,0.0002,0.0005,0.001,0.002,0.005,0.01"
  ETA="firm=gdro firm.callbacks.gdro.step_size=0.01,0.1,1"
  CONFINED="collective.strategy.member_classes=[1]"
  aca-run -m $FULL firm=erm model.weight_decay=0,0.01 hydra.sweep.dir="$RUNS60K/erm"                          # 48
  aca-run -m $FULL $ETA model.weight_decay=0,0.01 hydra.sweep.dir="$RUNS60K/gdro"                             # 144
  aca-run -m $FULL firm=erm "$CONFINED" hydra.sweep.dir="$RUNS60K/erm_confined"                                # 24
  aca-run -m $FULL $ETA "$CONFINED" hydra.sweep.dir="$RUNS60K/gdro_confined"                                   # 72
fi
