#!/usr/bin/env bash
# recipes/economics: the economics of joining on the committed real-MNIST DP records (CPU, no training).
set -euo pipefail
HERE=$(dirname "$0")
RUNS="$HERE/../mnist_dp/runs"
OUT=${OUT:-$HERE/out}
report() {  # report NAME OPTIONS...: aca-report on ERM and the ε sweep, the economics table into $OUT/NAME
  local name=$1
  shift
  aca-report "$RUNS/erm" "$RUNS/epsilon" --economics --bootstrap 0 --out "$OUT/$name" "$@" | tee "$OUT/$name.log"
}
mkdir -p "$OUT"
report naive_s90 --benefit 0.2                                            # S* = 0.9
report naive_s80 --benefit 0.2 --success-level 0.8                        # S* = 0.8: reached at ε = 1 too
report lognormal_s80 --benefit 0.2 --success-level 0.8 --costs lognormal:1,1
report privacy_s80 --benefit 0.2 --success-level 0.8 --privacy-cost 0.05
report free_rider_s80 --benefit 0.2 --success-level 0.8 --rule free_rider
# the S(alpha) report is the same in every setting of one S*: keep it once per S* (naive_s90, naive_s80)
for name in lognormal_s80 privacy_s80 free_rider_s80; do rm -f "$OUT/$name"/report.* "$OUT/$name"/s_curve.*; done
rm -f "$OUT"/*/s_curve.pdf
