import json

import pytest
from hydra.errors import InstantiationException

from lightning_aca.cli import run_experiment


def test_gradient_control_runs_from_the_hydra_app(gradient_control_sweep):
    record = json.loads((gradient_control_sweep / "alpha_0.5" / "record.json").read_text())
    assert record["strategy"] == "GradientStrategy"
    assert record["config"]["collective"]["callbacks"]["gradient_control"]["feature_bounds"] == [-4.0, 4.0]
    assert 0.0 <= record["metrics"]["aca/success"] <= 1.0
    # the gradient callback's results land in the run record beside the metrics
    below = json.loads((gradient_control_sweep / "alpha_0.05" / "record.json").read_text())["metrics"]
    above = record["metrics"]
    assert above["aca/param_distance"] < below["aca/param_distance"]
    assert 0.0 < above["aca/alpha_norm_bound"] < above["aca/alpha_star"] < 1.0


@pytest.mark.parametrize("name", ["gradient_control", "gradient_neutralization"])
def test_collective_options_compose(compose_gaussian, name):
    cfg = compose_gaussian(f"collective={name}")
    callback = cfg.collective.callbacks[name]
    assert cfg.collective.return_membership is True and cfg.collective.seed == cfg.seed
    assert callback.theta_star.target_class == cfg.collective.strategy.target_class == 0
    assert callback._target_.startswith("lightning_aca.gradient_strategies.")
    assert list(cfg.model.input_shape) == [2] and list(callback.feature_bounds) == [-4.0, 4.0]


def test_preset_sweeps_alpha_across_alpha_star(compose_config):
    cfg = compose_config("experiment=gradient_threshold")
    assert cfg.collective.callbacks.gradient_control.rate == 0.5
    assert cfg.model.arch == "linear" and cfg.trainer.log_every_n_steps == 1


def test_missing_feature_box_names_the_key(compose_config, tmp_path):
    cfg = compose_config(
        "collective=gradient_control", "data=synthetic", "model=linear", "quiet=true", f"output_dir={tmp_path}"
    )
    with pytest.raises(InstantiationException, match="feature_bounds"):
        run_experiment(cfg)
