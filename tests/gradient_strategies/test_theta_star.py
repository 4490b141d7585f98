import pytest
import torch
from torch import nn

from lightning_aca.gradient_strategies.theta_star import (
    LogitShift,
    ParameterTarget,
    ThetaStar,
    as_theta_star,
    output_layer,
)


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 3))


def test_state_dict_theta_star_reads_only_trainable_parameters():
    model = _model()
    state = {name: torch.full_like(p, 0.5) for name, p in model.state_dict().items()}
    theta = ParameterTarget({**state, "unrelated.buffer": torch.zeros(1)}).resolve(model)
    assert list(theta) == ["1.weight", "1.bias", "3.weight", "3.bias"]
    assert all(torch.all(t == 0.5) for t in theta.values())


def test_checkpoint_paths_lightning_and_plain(tmp_path, linear_module, make_trainer):
    module = linear_module(d=2, k=3)
    trainer = make_trainer(max_steps=0)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(tmp_path / "model.ckpt")
    torch.save(module.state_dict(), tmp_path / "plain.pt")
    for path in (tmp_path / "model.ckpt", str(tmp_path / "plain.pt")):
        theta = as_theta_star(path).resolve(linear_module(d=2, k=3))
        torch.testing.assert_close(theta["net.weight"], module.net.weight.detach())


def test_logit_shift_raises_target_logit_relative_to_all_others_and_keeps_bias_sum():
    model = _model()
    theta = LogitShift(target_class=2, shift=1.5).resolve(model)
    x = torch.randn(5, 3)
    before = model(x)
    after = torch.func.functional_call(model, theta, (x,))
    gaps_before = before[:, 2:3] - before[:, :2]
    gaps_after = after[:, 2:3] - after[:, :2]
    torch.testing.assert_close(gaps_after - gaps_before, torch.full_like(gaps_before, 1.5))
    assert float(theta["3.bias"].sum()) == pytest.approx(float(model[3].bias.detach().sum()), abs=1e-6)
    torch.testing.assert_close(theta["1.weight"], model[1].weight.detach())  # other layers copied unchanged


def test_logit_shift_of_a_given_base_state():
    model = _model()
    base = {name: torch.zeros_like(p) for name, p in model.named_parameters()}
    theta = LogitShift(target_class=0, shift=3.0, base=base).resolve(model)
    assert theta["3.bias"].tolist() == [2.0, -1.0, -1.0]


def test_output_layer_is_the_last_linear_with_bias():
    assert output_layer(_model())[0] == "3"


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: as_theta_star("no/such/file.ckpt"), ValueError, "LogitShift"),
        (lambda: as_theta_star(42), TypeError, "theta_star must be a ThetaStar"),
        (lambda: LogitShift(target_class=-1), ValueError, "target_class"),
        (lambda: LogitShift(target_class=True), TypeError, "target_class"),
        (lambda: LogitShift(target_class=0, shift="1"), TypeError, "shift"),
        (lambda: LogitShift(target_class=0, shift=float("nan")), ValueError, "shift"),
        (lambda: LogitShift(target_class=5).resolve(_model()), ValueError, "3 outputs"),
        (lambda: LogitShift(target_class=0).resolve(nn.Sequential(nn.Conv1d(1, 1, 1))), ValueError, "nn.Linear"),
        (lambda: ParameterTarget({"1.weight": torch.zeros(4, 3)}).resolve(_model()), ValueError, "lacks"),
        (
            lambda: ParameterTarget({n: torch.zeros(1) for n, _ in _model().named_parameters()}).resolve(_model()),
            ValueError,
            "shape",
        ),
    ],
)
def test_bad_theta_stars_fail_with_the_fix(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_rules_and_states_are_theta_stars():
    assert isinstance(as_theta_star({"w": torch.zeros(1)}), ThetaStar)
    shift = LogitShift(1)
    assert as_theta_star(shift) is shift
