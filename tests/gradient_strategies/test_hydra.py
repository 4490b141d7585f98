import json

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.errors import InstantiationException

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
    """Two aca-run runs of collective=gradient_control (α below and above α*), as a sweep dir."""
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


def test_gradient_control_runs_from_the_hydra_app(sweep):
    record = json.loads((sweep / "alpha_0.5" / "record.json").read_text())
    assert record["strategy"] == "GradientStrategy"
    assert record["config"]["collective"]["callbacks"]["gradient_control"]["feature_bounds"] == [-4.0, 4.0]
    assert 0.0 <= record["metrics"]["aca/success"] <= 1.0
    # the gradient callback's results land in the run record beside the metrics
    below = json.loads((sweep / "alpha_0.05" / "record.json").read_text())["metrics"]
    above = record["metrics"]
    assert above["aca/param_distance"] < below["aca/param_distance"]
    assert 0.0 < above["aca/alpha_norm_bound"] < above["aca/alpha_star"] < 1.0


@pytest.mark.parametrize("name", ["gradient_control", "gradient_neutralization"])
def test_collective_options_compose(name):
    cfg = _compose([*TINY, f"collective={name}"])
    callback = cfg.collective.callbacks[name]
    assert cfg.collective.return_membership is True and cfg.collective.seed == cfg.seed
    assert callback.theta_star.target_class == cfg.collective.strategy.target_class == 0
    assert callback._target_.startswith("lightning_aca.gradient_strategies.")
    assert list(cfg.data.input_shape) == [2] and list(callback.feature_bounds) == [-4.0, 4.0]


def test_preset_sweeps_alpha_across_alpha_star():
    cfg = _compose(["experiment=gradient_threshold"])
    assert cfg.collective.callbacks.gradient_control.rate == 0.5
    assert cfg.model.arch == "linear" and cfg.trainer.log_every_n_steps == 1


def test_missing_feature_box_names_the_key(tmp_path):
    cfg = _compose(
        ["collective=gradient_control", "data=synthetic", "model=linear", "quiet=true", f"output_dir={tmp_path}"]
    )
    with pytest.raises(InstantiationException, match="feature_bounds"):
        run_experiment(cfg)
