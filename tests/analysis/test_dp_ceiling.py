"""The group-privacy ceiling on S (docs/theory.md §5) against measured DP-SGD sweeps."""

from pathlib import Path

import pytest

from lightning_aca.analysis.summary import summarize
from lightning_aca.runs.records import load_records
from lightning_aca.theory import dp_success_ceiling

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def test_no_measured_mean_success_exceeds_what_dp_allows_its_members():
    # digits, DP-SGD at target epsilon 0.25 and 1 (delta = 1/n), alpha = 0 ... 0.02, 3 seeds each
    summaries = summarize(load_records([RECIPES / "dp_digits" / "runs" / "ceiling"]), n_bootstrap=0)
    assert len(summaries) == 2
    for summary in summaries:
        zero, *rest = summary.rows
        assert zero.alpha == 0.0 and zero.dp_ceiling == pytest.approx(zero.success_mean)
        assert rest and all(row.dp_ceiling is not None for row in rest)
        for row in rest:
            assert row.success_mean <= row.dp_ceiling, (summary.label, row)
        ceilings = [row.dp_ceiling for row in rest]
        assert ceilings == sorted(ceilings)  # more members, a higher ceiling
    tight = next(s for s in summaries if "0.25" in s.label)
    row = next(r for r in tight.rows if r.alpha == 0.002)  # 3 members: k = 6 add/remove steps
    expected = dp_success_ceiling(tight.rows[0].success_mean, row.epsilon_mean, 1 / 1347, 3)
    assert row.dp_ceiling == pytest.approx(expected) and row.dp_ceiling < 0.2


def test_non_private_groups_and_groups_without_alpha_zero_get_no_ceiling():
    erm = summarize(load_records([RECIPES / "mnist_dp" / "runs" / "erm"]), n_bootstrap=0)
    private = summarize(load_records([RECIPES / "mnist_dp" / "runs" / "epsilon"]), n_bootstrap=0)
    assert all(row.dp_ceiling is None for summary in erm + private for row in summary.rows)
