from lightning_aca.analysis.distances import load_distance_curves, summarize_distances
from lightning_aca.analysis.report import main


def test_aca_report_distances_from_real_gradient_control_runs(gradient_control_sweep, capsys):
    curves = load_distance_curves([gradient_control_sweep])
    assert sorted(curve.alpha for curve in curves) == [0.05, 0.5]
    # 5 steps per epoch; the logger's step of the distance after optimizer step k is k − 1, the test-end row is 10
    assert all(curve.steps[0] == 5 and curve.steps[-1] == 10 for curve in curves)
    rows = {row["alpha"]: row for row in summarize_distances(curves)}
    assert rows[0.5]["final_mean"] < rows[0.05]["final_mean"]
    assert 0.0 < rows[0.5]["alpha_norm_bound"] < rows[0.5]["alpha_star"] < 1.0
    assert main(["--distances", str(gradient_control_sweep)]) == 0
    assert (gradient_control_sweep / "distance_curves.png").stat().st_size > 10_000
    assert "G/(G+B)" in capsys.readouterr().out
