import csv
import json
from pathlib import Path

import pytest

from lightning_aca.analysis.economics import ECONOMICS_COLUMNS, firm_economics, format_economics_table
from lightning_aca.analysis.report import main
from lightning_aca.analysis.summary import summarize
from lightning_aca.economics import SuccessCurve, parse_costs
from lightning_aca.runs.records import load_records

RUNS = Path(__file__).parents[2] / "recipes" / "mnist_dp" / "runs"


@pytest.fixture(scope="module")
def mnist_runs():
    """The real-MNIST records of ERM and of DP-SGD at target ε = 1 (40 runs each)."""
    erm = sorted((RUNS / "erm").glob("*/record.json"))
    dp = sorted((RUNS / "epsilon").glob("*target_epsilon=1,*/record.json"))
    assert len(erm) == len(dp) == 40
    return [path.parent for path in erm + dp]


def test_curve_from_a_summary_keeps_alpha_star_and_takes_s0_from_the_baseline(mnist_runs):
    records = load_records(mnist_runs)
    summaries = summarize(records, success_level=0.8, n_bootstrap=0)
    for summary in summaries:
        curve = SuccessCurve.from_summary(summary)
        assert curve.alphas[0] == 0.0 and curve.alphas[1:] == tuple(row.alpha for row in summary.rows)
        assert curve.successes[0] == pytest.approx(summary.rows[0].baseline_success_mean)
    results = firm_economics(summaries, records, parse_costs("uniform:0,1"), benefit=0.2)
    for summary, result in zip(summaries, results, strict=True):
        # the same monotone fit and log-α interpolation as α*
        assert result.alpha_star == pytest.approx(summary.alpha_star.alpha_star, rel=1e-9)
        assert result.participation.population == 4000
    dp, erm = results
    assert dp.participation.epsilon == pytest.approx(1.0, abs=0.01) and dp.participation.delta == 2.5e-4
    assert erm.participation.epsilon is None
    # naive users with uniform costs: b(α) = α/S(α) rises with α here, so b* = α*/S*
    assert erm.benefit_star == pytest.approx(erm.alpha_star / 0.8, rel=1e-6)
    assert dp.benefit_star == pytest.approx(dp.alpha_star / 0.8, rel=1e-6)
    assert dp.benefit_star > 5 * erm.benefit_star


def test_main_economics_writes_the_table_and_figure_and_says_what_is_not_reachable(mnist_runs, tmp_path, capsys):
    out = tmp_path / "out"
    argv = [*map(str, mnist_runs), "--economics", "--benefit", "0.2", "--bootstrap", "0", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "economics of joining (rule naive, costs uniform:0,1, b = 0.2" in printed
    assert "S never reaches S* = 0.9 on the measured range (S = 0.88 at α = 0.2)" in printed
    with (out / "economics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == ECONOMICS_COLUMNS
    dp, erm = rows
    assert dp["benefit_star"] == "" and dp["not_reachable"].startswith("S never reaches")
    assert float(erm["benefit_star"]) == pytest.approx(float(erm["alpha_star"]) / 0.9, rel=1e-6)
    document = json.loads((out / "economics.json").read_text())
    assert document["costs"] == "uniform:0,1" and document["rule"] == "naive"
    stable = [eq for eq in document["groups"][1]["equilibria"] if eq["stable"]]
    assert stable[-1]["success"] >= 0.9  # at b = 0.2 ERM's collective grows to success
    assert (out / "economics.png").stat().st_size > 10_000


def test_free_rider_rule_needs_far_more_benefit(mnist_runs):
    records = load_records(mnist_runs[:40])
    summaries = summarize(records, n_bootstrap=0)
    costs = parse_costs("uniform:0,1")
    (naive,) = firm_economics(summaries, records, costs)
    (riders,) = firm_economics(summaries, records, costs, rule="free_rider")
    assert riders.benefit_star > 100 * naive.benefit_star
    assert "b* = " not in format_economics_table([riders], "uniform:0,1")


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--costs", "gamma:1"], "costs 'gamma:1': unknown distribution"),
        (["--benefit", "-1"], "benefit must be a finite number in [0.0, inf)"),
        (["--privacy-cost", "nan"], "privacy_cost must be"),
    ],
)
def test_main_economics_errors_are_one_line_with_exit_code_2(mnist_runs, tmp_path, capsys, arguments, message):
    argv = [str(mnist_runs[0]), "--economics", *arguments, "--bootstrap", "0", "--out", str(tmp_path)]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("aca-report: error:") and message in error and error.count("\n") == 1
    assert list(tmp_path.iterdir()) == []  # checked before any report file is written


def test_free_rider_rule_on_records_without_a_training_set_size_says_so(run_record, tmp_path, capsys):
    for alpha in (0.0, 0.01, 0.1):
        path = tmp_path / f"a{alpha}" / "record.json"
        path.parent.mkdir()
        path.write_text(json.dumps(run_record(alpha, 0, metrics={"aca/success": 10 * alpha})))
    assert main([str(tmp_path), "--economics", "--rule", "free_rider", "--bootstrap", "0"]) == 2
    assert "needs N, the training set size (theory.n_train)" in capsys.readouterr().err
