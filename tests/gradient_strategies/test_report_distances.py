import json

import pytest
import torch
from hydra import compose, initialize_config_module

from lightning_aca.analysis.distances import load_distance_curves, summarize_distances
from lightning_aca.analysis.report import main
from lightning_aca.cli import run_experiment

TINY = [
    "model=linear",
    "data=gaussian",
    "quiet=true",
    "trainer.max_epochs=2",
    "trainer.log_every_n_steps=1",
    "data.datamodule.n_train=300",
    "data.datamodule.n_test=100",
]


def _compose(overrides):
    with initialize_config_module("lightning_aca.conf", version_base="1.3"):
        return compose("config", overrides=overrides)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Two aca-run runs of collective=gradient_control (α below and above the critical α), as a sweep dir."""
    root = tmp_path_factory.mktemp("sweep")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the module-scoped fixture runs before the suite's one-thread fixture
    for alpha in (0.05, 0.5):
        out = root / f"alpha_{alpha}"
        start = "collective.callbacks.gradient_control.start_step=5"
        cfg = _compose([*TINY, "collective=gradient_control", f"collective.alpha={alpha}", start, f"output_dir={out}"])
        run_experiment(cfg)
        record = json.loads((out / "record.json").read_text())
        record["sweep"] = {"collective.alpha": alpha}  # what a multirun records
        (out / "record.json").write_text(json.dumps(record))
    torch.set_num_threads(threads)
    return root


def test_aca_report_distances_from_real_gradient_control_runs(sweep, capsys):
    curves = load_distance_curves([sweep])
    assert sorted(curve.alpha for curve in curves) == [0.05, 0.5]
    # 5 steps per epoch; the logger's step of the distance after optimizer step k is k − 1, the test-end row is 10
    assert all(curve.steps[0] == 5 and curve.steps[-1] == 10 for curve in curves)
    rows = {row["alpha"]: row for row in summarize_distances(curves)}
    assert rows[0.5]["final_mean"] < rows[0.05]["final_mean"]
    assert 0.0 < rows[0.5]["alpha_norm_bound"] < rows[0.5]["alpha_star"] < 1.0
    assert main(["--distances", str(sweep)]) == 0
    assert (sweep / "distance_curves.png").stat().st_size > 10_000
    assert "G/(G+B)" in capsys.readouterr().out
