import json
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch
from opacus.accountants import RDPAccountant
from opacus.optimizers import DPOptimizer
from torch import nn

from lightning_aca import CollectiveDataModule, DigitsDataModule, PixelPatch, SignalPlanting
from lightning_aca.firm.dp import DPSGD


def _planting_on_digits(injection="item"):
    return CollectiveDataModule(
        SignalPlanting(PixelPatch(2), target_class=0), 0.05, datamodule=DigitsDataModule(), injection=injection
    )


@pytest.fixture
def fit(plain_model, make_trainer):
    """``fit(callbacks, epochs=2, model=None, injection="item", datamodule=None, ckpt_path=None, **trainer_kwargs)``.

    Trains on digits with a 5% collective planting a 2x2 patch; no validation unless ``limit_val_batches`` is given.
    """

    def fit(callbacks, epochs=2, model=None, injection="item", datamodule=None, ckpt_path=None, **kwargs):
        L.seed_everything(0, verbose=False)
        dm = datamodule or _planting_on_digits(injection)
        model = model or plain_model(hidden=32, lr=0.5, momentum=0.0)
        trainer = make_trainer(epochs, callbacks, **({"limit_val_batches": 0} | kwargs))
        trainer.fit(model, dm, ckpt_path=ckpt_path)
        return trainer, model

    return fit


def test_epsilon_equals_opacus_accountant_for_the_same_steps(fit):
    dp = DPSGD(noise_multiplier=1.1, max_grad_norm=1.0)
    trainer, _ = fit([dp], epochs=3)
    steps = 3 * len(trainer.train_dataloader)
    reference = RDPAccountant()
    reference.history = [(1.1, dp.sample_rate, steps)]
    assert dp.sample_rate == pytest.approx(1 / 22)  # 1347 digits in batches of 64 -> 22 batches
    assert dp.delta_used == pytest.approx(1 / 1347)
    assert dp.epsilon == pytest.approx(reference.get_epsilon(1 / 1347), rel=1e-9)
    assert trainer.callback_metrics["aca/epsilon"].item() == pytest.approx(dp.epsilon, rel=1e-6)


def test_collate_injection_trains_the_same_private_model(fit):
    """Opacus's Poisson DPDataLoader keeps the collective's collate function: same batches, same model."""
    weights = {}
    for injection in ("item", "collate"):
        _, model = fit([DPSGD(noise_multiplier=1.0, max_grad_norm=1.0)], epochs=1, injection=injection)
        weights[injection] = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert torch.allclose(weights["item"], weights["collate"], atol=1e-6)


# 1347 digits in batches of 64: 22 batches an epoch
@pytest.mark.parametrize(
    ("trainer_kwargs", "epochs", "steps"),
    [
        ({}, None, 66),  # 3 epochs
        ({"max_steps": 30}, None, 30),  # stops in the second epoch
        ({"limit_train_batches": 0.5}, None, 33),  # 11 batches an epoch
        ({"limit_train_batches": 5}, 3, 15),  # epochs agreeing with the Trainer
    ],
)
def test_target_epsilon_is_met_at_the_trainers_end(fit, trainer_kwargs, epochs, steps):
    dp, count = DPSGD(target_epsilon=2.0, delta=1e-5, max_grad_norm=1.0, epochs=epochs), _CountSteps()
    fit([dp, count], epochs=3, **trainer_kwargs)
    assert count.steps == steps
    assert 1.99 <= dp.epsilon <= 2.0  # Opacus calibrates σ to within 0.01 below the target
    reference = RDPAccountant()
    reference.history = [(dp.noise_multiplier_used, dp.sample_rate, steps)]
    assert dp.epsilon == pytest.approx(reference.get_epsilon(1e-5), rel=1e-9)


def test_epochs_fewer_than_the_trainer_runs_are_refused_before_training(fit, plain_model):
    model = plain_model(hidden=32)
    weights = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(
        ValueError, match=r"epochs=1\) calibrates σ for 22 steps, but the Trainer takes 66 \(max_epochs=3"
    ):
        fit([DPSGD(target_epsilon=2.0, epochs=1)], model=model, epochs=3)
    assert all(torch.equal(p, w) for p, w in zip(model.parameters(), weights, strict=True))
    # more epochs than the Trainer runs: σ is calibrated for them, and ε stays below the target
    dp = DPSGD(target_epsilon=2.0, delta=1e-5, epochs=6)
    fit([dp], epochs=3)
    assert dp.epsilon < 1.9


class _CheckpointThenFail(L.Callback):
    """Saves a checkpoint after the second epoch, then fails: a run interrupted and resumed later."""

    def __init__(self, path):
        self.path = path

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch == 1:
            trainer.save_checkpoint(self.path)

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == 2:
            raise RuntimeError("interrupted")


def test_a_resumed_run_spends_the_budget_of_one_run(fit, tmp_path):
    straight = DPSGD(target_epsilon=2.0, delta=1e-5)
    fit([straight], epochs=3)
    path = tmp_path / "dp.ckpt"
    with pytest.raises(RuntimeError, match="interrupted"):
        fit([DPSGD(target_epsilon=2.0, delta=1e-5), _CheckpointThenFail(path)], epochs=3)
    resumed = DPSGD(target_epsilon=2.0, delta=1e-5)
    fit([resumed], epochs=3, ckpt_path=path)
    assert resumed.noise_multiplier_used == straight.noise_multiplier_used is not None
    assert resumed.epsilon == pytest.approx(straight.epsilon, rel=1e-9)


def test_target_epsilon_needs_a_trainer_that_ends(fit):
    with pytest.raises(ValueError, match="max_epochs or max_steps"):
        fit([DPSGD(target_epsilon=2.0)], epochs=-1)


class _CountSteps(L.Callback):
    def __init__(self):
        self.steps = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.steps += 1


class _RecordGrads(L.Callback):
    """Reads what Opacus's DPOptimizer computed for each step: summed clipped grads and batch sizes."""

    def __init__(self):
        self.checks = []

    def on_before_zero_grad(self, trainer, pl_module, optimizer):
        params = [p for p in pl_module.parameters() if getattr(p, "summed_grad", None) is not None]
        if not params:
            return
        batch = params[0].grad_sample.shape[0] if torch.is_tensor(params[0].grad_sample) else None
        per_sample = torch.stack([p.grad_sample.flatten(1).norm(dim=1) for p in params]).norm(dim=0)
        summed = torch.stack([p.summed_grad.norm() for p in params]).norm()
        self.checks.append((batch, per_sample.max().item(), summed.item()))


def test_clipping_bounds_per_sample_contributions(fit):
    record = _RecordGrads()
    fit([DPSGD(noise_multiplier=0.0, max_grad_norm=1e-3), record], epochs=1)
    assert record.checks
    for batch, raw_max, summed in record.checks:
        assert raw_max > 1e-2  # unclipped per-sample gradients are far above C
        assert summed <= batch * 1e-3 * (1 + 1e-4)  # each clipped contribution has norm <= C


def test_batchnorm_model_fails_at_fit_start_with_the_fix(fit, plain_model):
    with pytest.raises(ValueError, match=r"BatchNorm.*ModuleValidator.fix.*fix_model=True"):
        fit([DPSGD(noise_multiplier=1.0)], model=plain_model(norm=True))
    _, model = fit([DPSGD(noise_multiplier=1.0, fix_model=True)], model=plain_model(norm=True), epochs=1)
    assert not any(isinstance(m, nn.BatchNorm1d) for m in model.modules())


def test_unsupported_training_setups_fail_clearly(fit, plain_model):
    class TwoOptimizers(plain_model):
        def configure_optimizers(self):
            return [
                torch.optim.SGD(self.net[1].parameters(), lr=0.1),
                torch.optim.SGD(self.net[3].parameters(), lr=0.1),
            ]

    with pytest.raises(ValueError, match="accumulate_grad_batches=2"):
        fit([DPSGD(noise_multiplier=1.0)], accumulate_grad_batches=2)
    with pytest.raises(ValueError, match="supports one optimizer"):
        fit([DPSGD(noise_multiplier=1.0)], model=TwoOptimizers())
    ddp_like = SimpleNamespace(datamodule=object(), accumulate_grad_batches=1, world_size=2)
    with pytest.raises(ValueError, match=r"world_size=2.*devices=1"):
        DPSGD(noise_multiplier=1.0)._check_trainer(ddp_like)
    no_datamodule = SimpleNamespace(datamodule=None, accumulate_grad_batches=1, world_size=1)
    with pytest.raises(ValueError, match="datamodule="):
        DPSGD(noise_multiplier=1.0)._check_trainer(no_datamodule)


class _RecordLR(L.Callback):
    """The learning rate of the optimizer Lightning steps, and the scheduler's optimizer, at every epoch start."""

    def __init__(self):
        self.lrs, self.scheduler_follows = [], []

    def on_train_epoch_start(self, trainer, pl_module):
        (optimizer,), (config,) = trainer.optimizers, trainer.lr_scheduler_configs
        self.lrs.append(optimizer.param_groups[0]["lr"])
        self.scheduler_follows.append(isinstance(optimizer, DPOptimizer) and config.scheduler.optimizer is optimizer)


@pytest.mark.parametrize(
    ("scheduler", "lr", "expected"),
    [
        ("step", 0.5, [0.5, 0.25, 0.125]),  # [opt], [StepLR(opt, 1, gamma=0.5)]
        # the template's {"optimizer": ..., "lr_scheduler": {"scheduler": ReduceLROnPlateau, "monitor": "val/loss"}};
        # at lr 1e-6 val/loss never improves on the first epoch's by the plateau's threshold: from the second
        # epoch's end on (patience 0), every epoch cuts lr tenfold
        ("plateau", 1e-6, [1e-6, 1e-6, 1e-7]),
    ],
)
def test_lr_schedulers_follow_the_private_optimizer(fit, plain_model, recwarn, scheduler, lr, expected):
    record = _RecordLR()
    model = plain_model(hidden=32, lr=lr, momentum=0.0, scheduler=scheduler)
    trainer, _ = fit([DPSGD(noise_multiplier=1.0), record], model=model, epochs=3, limit_val_batches=1.0)
    assert record.lrs == pytest.approx(expected)
    assert all(record.scheduler_follows)
    assert not [w for w in recwarn if "optimizer.step()" in str(w.message)]
    # after fit the user's scheduler points at the user's optimizer again
    (config,) = trainer.lr_scheduler_configs
    assert not isinstance(config.scheduler.optimizer, DPOptimizer)
    assert "optimizer" in vars(config.scheduler)


def _attributes_and_hooks(model):
    """What Opacus may add to a model: attributes of its layers and parameters, and hooks."""
    hooks = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    layers = {
        name: (sorted(vars(m)) if m is not model else [], [len(getattr(m, h)) for h in hooks])
        for name, m in model.named_modules()
    }
    parameters = {name: sorted(vars(p)) for name, p in model.named_parameters()}
    return layers, parameters


def test_module_is_restored_after_fit(fit, plain_model):
    model = plain_model()
    before = _attributes_and_hooks(model)
    fit([DPSGD(noise_multiplier=1.0)], model=model, epochs=1)
    assert "configure_optimizers" not in vars(model)
    assert _attributes_and_hooks(model) == before


def test_a_failed_fit_leaves_module_and_datamodule_as_they_were(fit, plain_model):
    class FailsMidway(plain_model):
        def configure_optimizers(self):
            self.config = super().configure_optimizers()
            return self.config

        def training_step(self, batch, batch_idx):
            if batch_idx == 3:
                self(batch[0])  # Opacus's forward hooks capture this batch's activations
                raise RuntimeError("the user's training_step failed")
            return super().training_step(batch, batch_idx)

    model, dm = FailsMidway(scheduler="step"), _planting_on_digits()
    before = _attributes_and_hooks(model)
    with pytest.raises(RuntimeError, match="training_step failed"):
        fit([DPSGD(noise_multiplier=1.0)], model=model, datamodule=dm, epochs=1)
    assert "configure_optimizers" not in vars(model)
    assert "train_dataloader" not in vars(dm)
    assert _attributes_and_hooks(model) == before
    assert not hasattr(model, "autograd_grad_sample_hooks")
    (optimizer,), (scheduler,) = model.config
    assert scheduler.optimizer is optimizer


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({}, ValueError, "exactly one of"),
        ({"noise_multiplier": 1.0, "target_epsilon": 1.0}, ValueError, "exactly one of"),
        ({"noise_multiplier": -1.0}, ValueError, "noise_multiplier"),
        ({"noise_multiplier": float("inf")}, ValueError, "noise_multiplier must be a finite number"),
        ({"noise_multiplier": float("nan")}, ValueError, "noise_multiplier"),
        ({"noise_multiplier": True}, TypeError, "noise_multiplier"),
        ({"noise_multiplier": "1.0"}, TypeError, "noise_multiplier"),
        ({"target_epsilon": 0.0}, ValueError, "target_epsilon"),
        ({"target_epsilon": float("inf")}, ValueError, "target_epsilon must be a finite number"),
        ({"noise_multiplier": 1.0, "delta": 1.5}, ValueError, "delta"),
        ({"noise_multiplier": 1.0, "delta": 0.0}, ValueError, "delta"),
        ({"noise_multiplier": 1.0, "delta": float("nan")}, ValueError, "delta"),
        ({"noise_multiplier": 1.0, "max_grad_norm": 0}, ValueError, "max_grad_norm"),
        ({"noise_multiplier": 1.0, "max_grad_norm": float("inf")}, ValueError, "max_grad_norm"),
        ({"target_epsilon": 1.0, "epochs": 0}, ValueError, "epochs"),
        ({"target_epsilon": 1.0, "epochs": True}, TypeError, "epochs"),
        ({"target_epsilon": 1.0, "epochs": 2.0}, TypeError, "epochs"),
        ({"noise_multiplier": 1.0, "epochs": 3}, ValueError, "epochs=3 applies only with target_epsilon"),
        ({"noise_multiplier": 1.0, "accountant": "moments"}, ValueError, "accountant"),
        ({"noise_multiplier": 1.0, "grad_sample_mode": "ghost"}, ValueError, "ghost clipping"),
        ({"noise_multiplier": 1.0, "poisson_sampling": "false"}, TypeError, "poisson_sampling"),
        ({"noise_multiplier": 1.0, "fix_model": 1}, TypeError, "fix_model"),
        ({"noise_multiplier": 1.0, "secure_mode": None}, TypeError, "secure_mode"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        DPSGD(**kwargs)


def test_numbers_of_any_real_kind_are_accepted():
    dp = DPSGD(noise_multiplier=torch.tensor(1.5), delta=np.float64(1e-5), max_grad_norm=2)
    assert (dp.noise_multiplier, dp.delta, dp.max_grad_norm) == (1.5, 1e-5, 2.0)
    assert type(dp.noise_multiplier) is float


def test_dp_makes_planting_harder_than_erm_on_digits(fit):
    from lightning_aca import CollectiveMetrics

    erm, dp = CollectiveMetrics(), CollectiveMetrics()
    fit([erm], epochs=15)
    fit([dp, DPSGD(noise_multiplier=2.0, max_grad_norm=0.5)], epochs=15)
    s_erm, s_dp = erm.results["fit"]["aca/success"], dp.results["fit"]["aca/success"]
    assert s_erm - s_dp > 0.3, (s_erm, s_dp)


# -- record fields, state, several instances ----------------------------------------------------------
def test_record_fields_are_the_accountants_numbers(fit):
    dp = DPSGD(noise_multiplier=1.1, max_grad_norm=1.0, delta=1e-5)
    assert dp.record_fields() == {} and dp.sample_rate is None and dp.steps == 0
    fit([dp], epochs=2)
    fields = dp.record_fields()
    assert fields == {
        "epsilon": dp.epsilon,
        "noise_multiplier": 1.1,
        "sample_rate": pytest.approx(1 / 22),  # 1347 digits in batches of 64
        "steps": 44,
        "delta": 1e-5,
        "accountant": "rdp",
    }
    reference = RDPAccountant()
    reference.history = [(1.1, 1 / 22, 44)]
    assert fields["epsilon"] == pytest.approx(reference.get_epsilon(1e-5), rel=1e-9)
    assert json.loads(json.dumps(fields)) == fields
    assert type(fields["steps"]) is int and type(fields["epsilon"]) is float


def test_sample_rate_without_poisson_sampling_is_one_over_the_batches(fit):
    dp = DPSGD(noise_multiplier=1.0, poisson_sampling=False, delta=1e-5)
    fit([dp], epochs=1)
    assert dp.sample_rate == pytest.approx(1 / 22)
    assert dp.record_fields()["steps"] == 22 and dp.record_fields()["sample_rate"] == dp.sample_rate
    reference = RDPAccountant()
    reference.history = [(1.0, 1 / 22, 22)]
    assert dp.epsilon == pytest.approx(reference.get_epsilon(1e-5), rel=1e-9)


def test_a_checkpoint_holds_every_computed_value_and_resumes_the_accounting(fit, tmp_path):
    dp = DPSGD(target_epsilon=3.0)
    trainer, _ = fit([dp], epochs=1)
    path = tmp_path / "one.ckpt"
    trainer.save_checkpoint(path)
    loaded = DPSGD(target_epsilon=3.0)
    loaded.load_state_dict(torch.load(path, weights_only=False)["callbacks"][dp.state_key])
    assert loaded.record_fields() == dp.record_fields() and loaded.state_dict() == dp.state_dict()
    assert (loaded.delta_used, loaded.sample_rate) == (pytest.approx(1 / 1347), pytest.approx(1 / 22))
    assert (loaded.noise_multiplier, loaded.delta) == (None, None)  # the settings stay as given

    # resumed with a longer Trainer: σ is calibrated for two epochs, the first epoch's steps stay at their σ
    resumed = DPSGD(target_epsilon=3.0)
    fit([resumed], epochs=2, ckpt_path=path)
    first, second = dp.noise_multiplier_used, resumed.noise_multiplier_used
    assert second > first
    assert resumed.history == [(first, pytest.approx(1 / 22), 22), (second, pytest.approx(1 / 22), 22)]
    reference = RDPAccountant()
    reference.history = [(first, 1 / 22, 22), (second, 1 / 22, 22)]
    fields = resumed.record_fields()
    assert fields["epsilon"] == pytest.approx(reference.get_epsilon(1 / 1347), rel=1e-9)
    assert fields["epsilon"] > dp.epsilon and (fields["steps"], fields["noise_multiplier"]) == (44, second)


def test_two_instances_with_other_settings_keep_their_own_state(fit, make_trainer):
    from lightning.pytorch.trainer import call

    low, high = DPSGD(noise_multiplier=0.8), DPSGD(noise_multiplier=2.0)
    assert low.state_key != high.state_key
    assert (
        low.state_key
        == DPSGD(noise_multiplier=0.8).state_key
        == "DPSGD"
        + repr(
            {"noise_multiplier": 0.8, "target_epsilon": None, "delta": None, "max_grad_norm": 1.0, "accountant": "rdp"}
        )
    )
    fit([low], epochs=1)
    fit([high], epochs=1)
    assert low.epsilon > high.epsilon
    # what Lightning does at checkpoint save and load, with both in one Trainer
    states = call._call_callbacks_state_dict(make_trainer(1, [low, high]))
    assert set(states) == {low.state_key, high.state_key}
    low_again, high_again = DPSGD(noise_multiplier=0.8), DPSGD(noise_multiplier=2.0)
    call._call_callbacks_load_state_dict(make_trainer(1, [high_again, low_again]), {"callbacks": states})
    assert low_again.record_fields() == low.record_fields()
    assert high_again.record_fields() == high.record_fields()


def test_epsilon_spent_equals_opacus_accountant_and_is_computed_once_per_setting():
    from opacus.accountants import RDPAccountant

    from lightning_aca.firm.dp import epsilon_spent, privacy_fields

    accountant = RDPAccountant()
    accountant.history = [(1.1, 0.02, 500)]
    expected = accountant.get_epsilon(1e-5)
    epsilon_spent.cache_clear()
    runs = [privacy_fields(1.1, 0.02, 500, 1e-5, "rdp") for _ in range(5)]
    assert all(r["epsilon"] == expected for r in runs)
    assert epsilon_spent.cache_info().misses == 1 and epsilon_spent.cache_info().hits == 4
