import json

import pytest

from lightning_aca.analysis.distances import load_distance_curves, summarize_distances
from lightning_aca.analysis.report import main
from lightning_aca.analysis.tables import format_distance_table

HEADER = "epoch,step,aca/param_distance,aca/controllable_distance,aca/alpha_norm_bound,aca/alpha_star\n"


def write_run(root, name, alpha, seed, distances):
    """A run directory as aca-run leaves it: record.json and csv/metrics.csv with the distance by step."""
    run = root / name
    (run / "csv").mkdir(parents=True)
    record = {"schema_version": 1, "alpha": alpha, "seed": seed, "sweep": {"collective.alpha": alpha, "seed": seed}}
    record["metrics"] = {"aca/success": 0.5 + alpha}
    (run / "record.json").write_text(json.dumps(record))
    lines = [HEADER]
    lines += [f"0,{step},{d},{d / 2},,\n" for step, d in enumerate(distances)]
    lines.append("0,99,,,0.2,0.3\n")  # the bounds, logged once
    (run / "csv" / "metrics.csv").write_text("".join(lines))


@pytest.fixture
def sweep(tmp_path):
    write_run(tmp_path, "a", 0.1, 0, [1.0, 0.8, 0.6])
    write_run(tmp_path, "b", 0.1, 1, [1.0, 0.6, 0.4])
    write_run(tmp_path, "c", 0.5, 0, [1.0, 0.1, 0.01])
    return tmp_path


def test_distance_rows_average_the_final_distance_over_seeds(sweep):
    curves = load_distance_curves([sweep])
    assert sorted((curve.alpha, curve.seed) for curve in curves) == [(0.1, 0), (0.1, 1), (0.5, 0)]
    rows = {row["alpha"]: row for row in summarize_distances(curves)}
    # final distances 0.6 and 0.4: mean 0.5, sample std √0.02 = 0.141421
    assert rows[0.1]["final_mean"] == pytest.approx(0.5)
    assert rows[0.1]["final_std"] == pytest.approx(0.02**0.5)
    assert rows[0.1]["controllable_mean"] == pytest.approx(0.25)
    assert rows[0.1]["n_seeds"] == 2 and rows[0.5]["final_std"] == 0.0
    assert rows[0.1]["alpha_norm_bound"] == rows[0.5]["alpha_norm_bound"] == pytest.approx(0.2)
    assert rows[0.1]["alpha_star"] == rows[0.5]["alpha_star"] == pytest.approx(0.3)
    table = format_distance_table(summarize_distances(curves)).splitlines()
    assert table[0].split()[:4] == ["group", "α", "final", "‖θ−θ*‖"]
    assert table[1].split() == [
        "(all",
        "runs)",
        "0.1",
        "0.5000",
        "±",
        "0.1414",
        "0.2500",
        "0.600",
        "0.2000",
        "0.3000",
        "2",
    ]


def test_aca_report_distances_prints_the_table_and_writes_the_plot(sweep, capsys):
    assert main(["--distances", str(sweep)]) == 0
    out = capsys.readouterr().out
    assert "G/(G+B)" in out and "0.5000 ± 0.1414" in out
    assert f"wrote {sweep / 'distance_curves.png'}" in out
    assert (sweep / "distance_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_aca_report_distances_without_runs_fails_in_one_line(tmp_path, capsys):
    assert main(["--distances", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("aca-report: error: no run under") and "collective=gradient_control" in err
    assert err.count("\n") == 1
