import math

import lightning as L
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.func import stack_module_state
from torch.optim import SGD, Adam, AdamW
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    ExponentialLR,
    LinearLR,
    OneCycleLR,
    ReduceLROnPlateau,
    SequentialLR,
    StepLR,
)
from torch.utils.data import DataLoader

from lightning_aca.stacked.optim import StackedOptimizer, lr_schedule, optimizer_reason

LRS = (0.1, 0.05, 0.01)


def _nets(k=3):
    torch.manual_seed(0)
    return [nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)) for _ in range(k)]


def _stacked(nets):
    params, _ = stack_module_state(nets)
    return {name: value.detach().clone() for name, value in params.items()}


def _grads(params, steps, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return [{name: torch.randn(p.shape, generator=generator) for name, p in params.items()} for _ in range(steps)]


def _run_both(make, steps=5):
    """Stacked parameters after ``steps`` steps of StackedOptimizer, and each model's after torch.optim's."""
    nets = _nets()
    params = _stacked(nets)
    optimizers = [make(net.parameters(), k) for k, net in enumerate(nets)]
    stacked = StackedOptimizer.from_configured(optimizers, params)
    for grads in _grads(params, steps):
        stacked.step(params, grads, stacked.lr)
        for k, (net, optimizer) in enumerate(zip(nets, optimizers, strict=True)):
            for name, p in net.named_parameters():
                p.grad = grads[name][k].clone()
            optimizer.step()
    return params, nets


def _assert_same(params, nets):
    for k, net in enumerate(nets):
        for name, p in net.named_parameters():
            torch.testing.assert_close(params[name][k], p.detach(), atol=1e-6, rtol=0)


OPTIMIZERS = {
    "sgd": lambda ps, k: SGD(ps, lr=LRS[k], foreach=False),
    "sgd-momentum": lambda ps, k: SGD(ps, lr=LRS[k], momentum=0.9, foreach=False),
    "sgd-dampening": lambda ps, k: SGD(ps, lr=LRS[k], momentum=0.9, dampening=0.1, foreach=False),
    "sgd-nesterov": lambda ps, k: SGD(ps, lr=LRS[k], momentum=0.9, nesterov=True, foreach=False),
    "sgd-weight-decay": lambda ps, k: SGD(ps, lr=LRS[k], momentum=0.9, weight_decay=1e-2, foreach=False),
    "sgd-momentum-per-model": lambda ps, k: SGD(ps, lr=LRS[k], momentum=(0.0, 0.5, 0.9)[k], foreach=False),
    "adam": lambda ps, k: Adam(ps, lr=LRS[k], foreach=False),
    "adam-weight-decay": lambda ps, k: Adam(ps, lr=LRS[k], weight_decay=1e-2, foreach=False),
    "adamw": lambda ps, k: AdamW(ps, lr=LRS[k], weight_decay=1e-2, foreach=False),
}


@pytest.mark.parametrize("case", list(OPTIMIZERS))
def test_stacked_step_is_torch_optims_step_for_every_model(case):
    params, nets = _run_both(OPTIMIZERS[case])
    _assert_same(params, nets)
    assert not torch.equal(params["0.weight"][0], _stacked(_nets())["0.weight"][0])  # the steps moved it


@settings(max_examples=20, deadline=None)
@given(
    lrs=st.lists(st.floats(1e-4, 0.3), min_size=3, max_size=3),
    beta1=st.lists(st.floats(0.0, 0.99), min_size=3, max_size=3),
    beta2=st.lists(st.floats(0.9, 0.9999), min_size=3, max_size=3),
    eps=st.sampled_from([1e-8, 1e-6, 1e-3]),
    weight_decay=st.floats(0.0, 0.1),
    decoupled=st.booleans(),
)
def test_stacked_adam_is_each_models_adam(lrs, beta1, beta2, eps, weight_decay, decoupled):
    kind = AdamW if decoupled else Adam

    def make(ps, k):
        return kind(ps, lr=lrs[k], betas=(beta1[k], beta2[k]), eps=eps, weight_decay=weight_decay, foreach=False)

    _assert_same(*_run_both(make))


def test_state_is_buffers_and_a_loaded_state_dict_resumes():
    nets = _nets()
    params = _stacked(nets)
    make = [Adam(net.parameters(), lr=lr) for net, lr in zip(nets, LRS, strict=True)]
    grads = _grads(params, 5)
    whole, first = StackedOptimizer.from_configured(make, params), StackedOptimizer.from_configured(make, params)
    resumed_params = {name: p.clone() for name, p in params.items()}
    for g in grads:
        whole.step(params, g, whole.lr)
    for g in grads[:2]:
        first.step(resumed_params, g, first.lr)
    resumed = StackedOptimizer.from_configured(make, resumed_params)
    resumed.load_state_dict(first.state_dict())
    assert float(resumed.steps) == 2 and {"lr", "beta1", "exp_avg_0", "exp_avg_sq_3"} <= set(first.state_dict())
    for g in grads[2:]:
        resumed.step(resumed_params, g, resumed.lr)
    for name, p in params.items():
        torch.testing.assert_close(resumed_params[name], p, atol=0, rtol=0)


@pytest.mark.parametrize("case", ["sgd-dampening", "adamw"])
def test_step_reads_no_tensor_on_the_host(case):
    """On the meta device any ``.item()``, ``bool()`` or data-dependent branch raises: step is CUDA-graph safe."""
    nets = _nets()
    params = _stacked(nets)
    stacked = StackedOptimizer.from_configured(
        [OPTIMIZERS[case](n.parameters(), k) for k, n in enumerate(nets)], params
    )
    stacked.to("meta")
    meta = {name: p.to("meta") for name, p in params.items()}
    for _ in range(2):
        stacked.step(meta, {name: torch.empty_like(p) for name, p in meta.items()}, stacked.lr)
    assert stacked.steps.device.type == "meta"


def test_settings_a_tensor_cannot_hold_must_agree_over_models():
    nets = _nets(2)
    params = _stacked(nets)
    nesterov = [SGD(nets[0].parameters(), lr=0.1, momentum=0.9, nesterov=True), SGD(nets[1].parameters(), 0.1, 0.9)]
    with pytest.raises(ValueError, match="nesterov"):
        StackedOptimizer.from_configured(nesterov, params)
    with pytest.raises(ValueError, match="kind"):
        StackedOptimizer.from_configured([SGD(nets[0].parameters(), 0.1), Adam(nets[1].parameters())], params)
    with pytest.raises(ValueError, match=r"model 1: .*RMSprop"):
        StackedOptimizer.from_configured(
            [SGD(nets[0].parameters(), 0.1), torch.optim.RMSprop(nets[1].parameters())], params
        )
    with pytest.raises(ValueError, match="holds 2 parameter tensors, the stacked model 4"):
        StackedOptimizer.from_configured([SGD(nets[0][0].parameters(), 0.1)], params)


# -- learning-rate schedules -----------------------------------------------------------------------


def _sgd(lr=0.1):
    return SGD(nn.Linear(2, 1).parameters(), lr=lr)


def _with(scheduler, **config):
    return {"optimizer": scheduler.optimizer, "lr_scheduler": {"scheduler": scheduler, **config}}


def test_epoch_interval_step_lr_changes_after_each_frequency_th_epoch_end():
    configured = [_with(StepLR(_sgd(lr), step_size=2, gamma=0.5)) for lr in (0.1, 0.3)]
    table = lr_schedule(configured, steps_per_epoch=3, epochs=5)
    epochs = torch.arange(15) // 3
    expected = torch.tensor([0.1, 0.3]) * 0.5 ** (epochs // 2)[:, None].float()
    torch.testing.assert_close(table, expected)
    every_other = lr_schedule([_with(StepLR(_sgd(), step_size=1, gamma=0.5), frequency=2)], 2, 5)[:, 0]
    torch.testing.assert_close(every_other, 0.1 * 0.5 ** (torch.arange(10) // 4).float())


def test_step_interval_cosine_and_linear_warm_up_follow_their_formulas():
    cosine = lr_schedule([_with(CosineAnnealingLR(_sgd(), T_max=10, eta_min=0.01), interval="step")], 4, 2)[:, 0]
    t = torch.arange(8, dtype=torch.float64)
    torch.testing.assert_close(cosine, (0.01 + 0.09 * (1 + torch.cos(math.pi * t / 10)) / 2).float())
    warm_up = lr_schedule([_with(LinearLR(_sgd(), start_factor=0.1, total_iters=4), interval="step")], 3, 2)[:, 0]
    torch.testing.assert_close(warm_up, (0.1 * (0.1 + 0.9 * t[:6].clamp(max=4) / 4)).float())
    # the step count restarts each epoch for frequency: steps after batches 1 and 3 of 3 batches (0, 1, 2)
    halving = lr_schedule([_with(ExponentialLR(_sgd(), 0.5), interval="step", frequency=2)], 3, 2)[:, 0]
    torch.testing.assert_close(halving, torch.tensor([0.1, 0.1, 0.05, 0.05, 0.05, 0.025]))


def test_sequential_warm_up_then_decay():
    sgd = _sgd()
    warm_up, decay = LinearLR(sgd, start_factor=0.25, total_iters=3), ExponentialLR(sgd, gamma=0.9)
    table = lr_schedule([_with(SequentialLR(sgd, [warm_up, decay], milestones=[3]), interval="step")], 5, 2)[:, 0]
    t = torch.arange(10, dtype=torch.float64)
    expected = torch.where(t < 3, 0.1 * (0.25 + 0.75 * t / 3), 0.1 * 0.9 ** (t - 3))
    torch.testing.assert_close(table, expected.float())
    assert sgd.param_groups[0]["lr"] == pytest.approx(0.025) and warm_up.last_epoch == 0  # the originals unchanged


def test_no_scheduler_is_each_models_constant_learning_rate():
    table = lr_schedule([_sgd(lr) for lr in LRS], steps_per_epoch=2, epochs=3)
    assert table.shape == (6, 3) and table.dtype == torch.float32
    assert torch.equal(table, torch.tensor(LRS).expand(6, 3))


class _Recorder(L.LightningModule):
    def __init__(self, configure):
        super().__init__()
        self.net, self.configure, self.seen = nn.Linear(2, 1), configure, []

    def training_step(self, batch, batch_idx):
        return self.net(batch).sum()

    def configure_optimizers(self):
        return self.configure(self.net.parameters())

    def on_before_optimizer_step(self, optimizer):
        self.seen.append(optimizer.param_groups[0]["lr"])

    def train_dataloader(self):
        return DataLoader(torch.zeros(3, 2), batch_size=1)


def _warm_up(ps):
    sgd = SGD(ps, lr=0.1)
    return {"optimizer": sgd, "lr_scheduler": {"scheduler": LinearLR(sgd, 0.2, total_iters=4), "interval": "step"}}


def _step_lr(ps):
    sgd = SGD(ps, lr=0.1)
    return [sgd], [StepLR(sgd, step_size=1, gamma=0.5)]


@pytest.mark.parametrize("configure", [_warm_up, _step_lr])
def test_schedule_is_what_a_trainer_fit_uses(configure):
    module = _Recorder(configure)
    trainer = L.Trainer(
        max_epochs=3,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module)
    assert len(module.seen) == 9 and len(set(module.seen)) > 2
    expected = lr_schedule([module.configure_optimizers()], steps_per_epoch=3, epochs=3)[:, 0]
    torch.testing.assert_close(expected, torch.tensor(module.seen, dtype=torch.float32))


# -- what is reproduced ----------------------------------------------------------------------------


def test_supported_forms_have_no_reason():
    sgd = _sgd()
    assert optimizer_reason(sgd) is None
    assert optimizer_reason([sgd]) is None
    assert optimizer_reason(([sgd], [StepLR(sgd, 2)])) is None
    assert optimizer_reason(_with(LinearLR(sgd), interval="step", frequency=2)) is None
    assert optimizer_reason([{"optimizer": sgd, "lr_scheduler": StepLR(sgd, 2)}]) is None
    assert optimizer_reason(AdamW(nn.Linear(2, 1).parameters(), weight_decay=0.1)) is None
    one_cycle = OneCycleLR(sgd, max_lr=1.0, total_steps=10, cycle_momentum=False)
    assert optimizer_reason(_with(one_cycle, interval="step")) is None


def _reason(configured):
    reason = optimizer_reason(configured)
    assert reason is not None and "\n" not in reason
    return reason


def test_unsupported_forms_say_what_and_how_to_fix():
    sgd, net = _sgd(), nn.Linear(2, 1)
    plateau = ReduceLROnPlateau(sgd)
    assert "ReduceLROnPlateau" in _reason({"optimizer": sgd, "lr_scheduler": plateau, "monitor": "loss"})
    assert "ReduceLROnPlateau" in _reason(_with(plateau))
    assert _reason([sgd, _sgd()]).startswith("model.configure_optimizers returns 2 optimizers")
    assert "RMSprop" in _reason(torch.optim.RMSprop(net.parameters()))
    assert "amsgrad=True" in _reason(Adam(net.parameters(), amsgrad=True))
    assert "maximize=True" in _reason(SGD(net.parameters(), lr=0.1, maximize=True))
    groups = SGD([{"params": [net.weight], "lr": 0.1}, {"params": [net.bias], "lr": 0.2}])
    assert "2 differing param groups" in _reason(groups)
    one_cycle = OneCycleLR(sgd, max_lr=1.0, total_steps=10)
    assert "cycle_momentum=True" in _reason(_with(SequentialLR(sgd, [one_cycle, StepLR(sgd, 2)], [5])))
    assert "None: " in _reason(None) and "Lightning cannot train" in _reason("sgd")
