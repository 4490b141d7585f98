import math
import warnings

import pytest
import torch

from lightning_aca import DPSGD, Classifier, CollectiveDataModule
from lightning_aca.gradient_strategies import (
    GradientControl,
    GradientNeutralization,
    GradientStrategy,
    LogitShift,
    ParameterTarget,
)

SHIFT = LogitShift(target_class=0, shift=1.0)
BOX = (-4.0, 4.0)

# Tiny hand-computable case (tests/gradient_strategies/test_theory.py): d = 1, K = 2, points (x, y) = (1, 0), (2, 0),
# (−1, 1), (−2, 1), θ* = 0, box [−2, 2]. G = ¾√2, B = √2·√5 = √10, α* of the hull = 3/7.
TINY_X = torch.tensor([[1.0], [2.0], [-1.0], [-2.0]])
TINY_Y = torch.tensor([0, 0, 1, 1])
ZERO = {"net.weight": torch.zeros(2, 1), "net.bias": torch.zeros(2)}
HAND_NORM_BOUND = 0.75 * math.sqrt(2) / (0.75 * math.sqrt(2) + math.sqrt(10))


def test_only_members_rows_are_rewritten_into_the_box(gaussian_dm, classifier, fit_model, record_batches):
    recorder = record_batches()
    control = GradientControl(SHIFT, feature_bounds=BOX)
    fit_model(classifier, gaussian_dm(0.3, n_train=240), [recorder, control], max_steps=4)
    assert len(recorder.before) == 4
    for (x0, y0, m0), (x1, y1, m1) in zip(recorder.before, recorder.after, strict=True):
        assert torch.equal(m0, m1) and 0 < int(m0.sum()) < len(m0)
        assert torch.equal(x0[~m0], x1[~m0]) and torch.equal(y0[~m0], y1[~m0])  # the rest is untouched
        assert not torch.equal(x0[m0], x1[m0])
        assert x1[m0].min() >= BOX[0] and x1[m0].max() <= BOX[1] and set(y1[m0].tolist()) <= {0, 1}


def test_control_above_alpha_star_reaches_theta_star_and_below_does_not(gaussian_dm, classifier, fit_model):
    finals = {}
    for alpha in (0.05, 0.5):
        control = GradientControl(SHIFT, feature_bounds=BOX, start_step=10)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trainer, _ = fit_model(classifier, gaussian_dm(alpha), [control], max_epochs=6)
        assert any("infeasible" in str(w.message) for w in caught) == (alpha == 0.05)
        finals[alpha] = control.distances[-1][1]
        alpha_star = control.theory["aca/alpha_star"]
        assert control.distances[0][0] == 11 and len(control.distances) == 50  # every step after start_step
        assert trainer.callback_metrics["aca/param_distance"] == pytest.approx(finals[alpha])
    assert 0.05 < alpha_star < 0.5
    assert finals[0.5] < 0.01  # started ≈ 0.66 away
    assert finals[0.05] > 0.3


def test_neutralization_makes_theta_star_stationary_above_alpha_star(gaussian_dm, classifier, fit_model):
    finals = {}
    for alpha in (0.05, 0.5):
        neutralization = GradientNeutralization(SHIFT, feature_bounds=BOX, start_step=10, on_infeasible="warn")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*infeasible")
            fit_model(lambda: classifier(lr=0.5), gaussian_dm(alpha), [neutralization], max_epochs=6)
        finals[alpha] = neutralization.distances[-1][1]
    assert finals[0.5] < 0.03 and finals[0.05] > 0.3


def test_logged_alpha_bounds_match_hand_computation(tiny_dm, linear_module, fit_model):
    neutralization = GradientNeutralization(ZERO, feature_bounds=(-2.0, 2.0))
    trainer, _ = fit_model(lambda: linear_module(d=1), tiny_dm(0.5, TINY_X, TINY_Y), [neutralization], max_epochs=1)
    metrics = trainer.callback_metrics
    assert float(metrics["aca/base_gradient_norm"]) == pytest.approx(0.75 * math.sqrt(2), rel=1e-5)
    assert float(metrics["aca/member_gradient_bound"]) == pytest.approx(math.sqrt(10), rel=1e-6)
    assert float(metrics["aca/alpha_norm_bound"]) == pytest.approx(HAND_NORM_BOUND, rel=1e-5)
    assert float(metrics["aca/alpha_star"]) == pytest.approx(3 / 7, rel=1e-5)


@pytest.mark.parametrize(("alpha", "match"), [(0.25, "norm bound"), (0.5, None)])
def test_infeasible_collective_is_reported(tiny_dm, linear_module, fit_model, alpha, match):
    # α = 0.25 (one member of four) is below G/(G + B) ≈ 0.2512; α = 0.5 is above α* = 3/7
    strict = GradientNeutralization(ZERO, feature_bounds=(-2.0, 2.0), on_infeasible="raise")
    if match is None:
        fit_model(lambda: linear_module(d=1), tiny_dm(alpha, TINY_X, TINY_Y), [strict], max_steps=1)
        return
    with pytest.raises(ValueError, match=match):
        fit_model(lambda: linear_module(d=1), tiny_dm(alpha, TINY_X, TINY_Y), [strict], max_steps=1)
    with pytest.warns(UserWarning, match="infeasible"):
        lenient = GradientNeutralization(ZERO, feature_bounds=(-2.0, 2.0))
        fit_model(lambda: linear_module(d=1), tiny_dm(alpha, TINY_X, TINY_Y), [lenient], max_steps=1)


def test_warning_names_alpha_star_above_the_norm_bound(gaussian_dm, classifier, fit_model):
    control = GradientControl(SHIFT, feature_bounds=BOX, start_step=10)
    with pytest.warns(UserWarning, match=r"critical mass α\*"):
        fit_model(classifier, gaussian_dm(0.1), [control], max_steps=11)
    assert control.theory["aca/alpha_norm_bound"] < 0.1 < control.theory["aca/alpha_star"]


def test_dp_sgd_clipping_bounds_the_members_and_slows_them(gaussian_dm, classifier, fit_model):
    finals, theory = {}, {}
    for clip in (None, 1.0, 0.1):
        control = GradientControl(SHIFT, feature_bounds=BOX, start_step=10)
        callbacks = [control] + ([DPSGD(noise_multiplier=1.0, max_grad_norm=clip)] if clip else [])
        fit_model(classifier, gaussian_dm(0.5), callbacks, max_epochs=6)
        finals[clip], theory[clip] = control.results, control.theory
    assert theory[1.0]["aca/member_gradient_bound"] == 1.0 and theory[0.1]["aca/member_gradient_bound"] == 0.1
    # C = 1: the collective still holds the model at θ* up to DP noise (the raw distance also holds the
    # class-mean of the parameters, which only the noise moves and which changes no prediction)
    assert finals[1.0]["aca/controllable_distance"] < 0.01 < finals[1.0]["aca/param_distance"] < 0.05
    # C = 0.1: each member moves the model by at most η·C/n per step, so in the same steps it gets nowhere
    assert finals[0.1]["aca/param_distance"] > 0.4 > 0.01 > finals[None]["aca/param_distance"]


def test_estimate_mode_uses_only_the_collectives_own_points(gaussian_dm, classifier, fit_model):
    control = GradientControl(SHIFT, feature_bounds=BOX, start_step=10, rest_gradient="estimate")
    fit_model(classifier, gaussian_dm(0.5), [control], max_epochs=6)
    assert control.distances[-1][1] < 0.05  # no view of the batch: SGD noise of the rest is not cancelled


def test_autograd_family_steers_an_mlp_with_and_without_dp(gaussian_dm, fit_model, record_batches):
    def mlp():
        return Classifier(arch="mlp", input_shape=(2,), num_classes=2, hidden=8, lr=0.1, momentum=0.0)

    finals = {}
    for alpha, dp in ((0.05, False), (0.5, False), (0.5, True)):
        control, recorder = GradientControl(SHIFT, feature_bounds=BOX, start_step=10), record_batches()
        callbacks = [recorder, control] + ([DPSGD(noise_multiplier=1.0, max_grad_norm=1.0)] if dp else [])
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*infeasible")
            fit_model(mlp, gaussian_dm(alpha), callbacks, max_epochs=3)
        finals[alpha, dp] = control.distances[-1][1]
        assert "aca/alpha_star" not in control.theory  # computed for the linear family only
        x0, y0, m0 = recorder.before[-1]
        x1, y1, _ = recorder.after[-1]
        assert torch.equal(x0[~m0], x1[~m0]) and torch.equal(y0[~m0], y1[~m0])
    # from ≈ 0.67 at the start step; no hull, so the local search steers more slowly than the linear family
    assert finals[0.5, False] < 0.6 * finals[0.05, False]
    assert finals[0.5, True] < 0.7 * finals[0.05, False]


def test_family_mismatch_fails_at_fit_start(gaussian_dm, linear_module, fit_model):
    def mlp():
        return Classifier(arch="mlp", input_shape=(2,), num_classes=2, hidden=4)

    with pytest.raises(TypeError, match=r"family='linear' needs a model whose only trainable parameters"):
        fit_model(mlp, gaussian_dm(0.3), [GradientControl(SHIFT, feature_bounds=BOX, family="linear")], max_steps=1)
    with pytest.raises(TypeError, match=r"[Uu]se family='autograd'"):
        scaled = GradientControl(SHIFT, feature_bounds=BOX)  # auto: the structure is linear, the forward is not
        fit_model(lambda: linear_module(d=2, scale=2.0), gaussian_dm(0.3), [scaled], max_steps=1)


def test_autograd_family_rejects_batchnorm(gaussian_dm, fit_model):
    def with_norm():
        model = Classifier(arch="mlp", input_shape=(2,), num_classes=2, hidden=4)
        model.net.insert(2, torch.nn.BatchNorm1d(4))
        return model

    with pytest.raises(TypeError, match="BatchNorm"):
        fit_model(with_norm, gaussian_dm(0.3), [GradientControl(SHIFT, feature_bounds=BOX)], max_steps=1)


def test_batches_without_membership_flag_are_refused(tiny_dm, linear_module, fit_model):
    dm = tiny_dm(0.5, TINY_X, TINY_Y)
    dm.return_membership = False
    with pytest.raises(ValueError, match=r"return_membership=True"):
        fit_model(lambda: linear_module(d=1), dm, [GradientControl(ZERO, feature_bounds=(-2, 2))], max_steps=1)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"rate": 0.0}, ValueError, "rate"),
        ({"rate": 1.5}, ValueError, "rate"),
        ({"family": "cnn"}, ValueError, "family"),
        ({"rest_gradient": "oracle"}, ValueError, "rest_gradient"),
        ({"on_infeasible": "ignore"}, ValueError, "on_infeasible"),
        ({"feature_bounds": (1.0, -1.0)}, ValueError, "feature_bounds"),
        ({"feature_bounds": None}, TypeError, "feature_bounds"),
        ({"start_step": -1}, ValueError, "start_step"),
        ({"candidates": 0}, ValueError, "candidates"),
        ({"rate": True}, TypeError, "rate"),
        ({"start_step": 1.0}, TypeError, "start_step"),
        ({"seed": True}, TypeError, "seed"),
        ({"theta_star": "logit_shift"}, ValueError, "LogitShift"),
        ({"theta_star": 3}, TypeError, "theta_star"),
        ({"theta_star": None}, TypeError, "theta_star"),
    ],
)
def test_bad_arguments_name_the_parameter(kwargs, error, match):
    arguments = {"theta_star": SHIFT, "feature_bounds": BOX, **kwargs}
    with pytest.raises(error, match=match):
        GradientControl(**arguments)


def test_state_dict_keeps_theta_star_across_a_resume(gaussian_dm, classifier, fit_model):
    first = GradientControl(SHIFT, feature_bounds=BOX, start_step=5)
    fit_model(classifier, gaussian_dm(0.5), [first], max_steps=8)
    resumed = GradientControl(ParameterTarget(ZERO), feature_bounds=BOX)  # a different θ*, overridden
    resumed.load_state_dict(first.state_dict())
    torch.testing.assert_close(resumed.theta_star_vector, first.theta_star_vector)
    assert resumed.theory == first.theory and resumed.distances == first.distances


def test_real_numbers_of_any_kind_are_accepted():
    control = GradientControl(SHIFT, feature_bounds=(torch.tensor(-4.0), 4), rate=torch.tensor(0.25), start_step=0)
    assert control.rate == 0.25 and control.feature_bounds == (-4.0, 4.0)


def test_dict_batches_read_the_label_at_label_key(linear_module, fit_model):
    class DictData(torch.utils.data.Dataset):
        def __len__(self):
            return len(TINY_X)

        def __getitem__(self, i):
            return {"x": TINY_X[i], "label": TINY_Y[i]}

    class DictModule(linear_module):
        def training_step(self, batch, batch_idx):
            return torch.nn.functional.cross_entropy(self(batch["x"]), batch["label"])

    data = DictData()
    keys = {"input_key": "x", "label_key": "label"}
    dm = CollectiveDataModule(
        GradientStrategy(), 0.5, train_dataset=data, test_dataset=data, batch_size=4, return_membership=True, **keys
    )
    neutralization = GradientNeutralization(ZERO, feature_bounds=(-2.0, 2.0), input_key="x", label_key="label")
    fit_model(lambda: DictModule(d=1), dm, [neutralization], max_epochs=1)
    assert neutralization.theory["aca/alpha_star"] == pytest.approx(3 / 7, rel=1e-5)


def test_a_checkpoint_resumes_theta_star_and_the_logs_under_the_settings_key(
    gaussian_dm, classifier, fit_model, tmp_path
):
    first = GradientControl(SHIFT, feature_bounds=BOX, start_step=5)
    trainer, _ = fit_model(classifier, gaussian_dm(0.5), [first], max_steps=8)
    path = tmp_path / "control.ckpt"
    trainer.save_checkpoint(path)
    state = torch.load(path, weights_only=False)["callbacks"][first.state_key]
    assert set(state) == {"theta_star", "theory", "distances", "results", "residuals"}
    resumed = GradientControl(SHIFT, feature_bounds=BOX, start_step=5)
    resumed.load_state_dict(state)
    torch.testing.assert_close(resumed.theta_star_vector, first.theta_star_vector)
    assert resumed.distances == first.distances and len(first.distances) == 3  # steps 5, 6, 7
    assert resumed.results == first.results and resumed.theory == first.theory


def test_two_instances_with_other_settings_keep_their_own_state(gaussian_dm, classifier, fit_model, make_trainer):
    from lightning.pytorch.trainer import call

    early, late = (
        GradientControl(SHIFT, feature_bounds=BOX, start_step=2),
        GradientControl(SHIFT, feature_bounds=BOX, start_step=5),
    )
    assert (
        early.state_key
        != late.state_key
        != GradientControl(SHIFT, feature_bounds=BOX, start_step=5, rate=0.9).state_key
    )
    assert late.state_key == GradientControl(SHIFT, feature_bounds=BOX, start_step=5).state_key
    assert "LogitShift(target_class=0" in late.state_key and " at 0x" not in late.state_key
    fit_model(classifier, gaussian_dm(0.5), [early], max_steps=8)
    fit_model(classifier, gaussian_dm(0.5), [late], max_steps=8)
    assert (len(early.distances), len(late.distances)) == (6, 3)
    states = call._call_callbacks_state_dict(make_trainer(1, [early, late]))
    assert set(states) == {early.state_key, late.state_key}
    early_again, late_again = (
        GradientControl(SHIFT, feature_bounds=BOX, start_step=2),
        GradientControl(SHIFT, feature_bounds=BOX, start_step=5),
    )
    call._call_callbacks_load_state_dict(make_trainer(1, [late_again, early_again]), {"callbacks": states})
    assert early_again.distances == early.distances and late_again.distances == late.distances
