"""GroupDRO: the exponentiated-gradient update by hand, worst-group accuracy against ERM, errors, state."""

import math

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from lightning_aca.collective.dataset import CollectiveDataset
from lightning_aca.collective.signals import PixelPatch
from lightning_aca.collective.strategies import SignalPlanting
from lightning_aca.data.spurious import SpuriousDigitsDataModule
from lightning_aca.firm.gdro import GroupDRO, group_sums
from lightning_aca.metrics.functional import worst_group_accuracy


class LinearClassifier(L.LightningModule):
    """A plain module, written without lightning_aca: per-sample losses, or their mean for ERM."""

    def __init__(self, in_features: int = 64, num_classes: int = 2, mean: bool = False, lr: float = 0.05) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, num_classes)
        self.mean, self.lr = mean, lr

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))

    def training_step(self, batch, batch_idx):
        x, y = (batch["x"], batch["y"]) if isinstance(batch, dict) else (batch[0], batch[1])
        losses = F.cross_entropy(self(x), y, reduction="none")
        return losses.mean() if self.mean else losses

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)


@pytest.fixture(autouse=True)
def _seeded():
    L.seed_everything(0, verbose=False)  # model initialization and loader shuffling


@pytest.fixture
def fit(make_trainer):
    """``fit(model, data, callbacks, epochs=1, ckpt_path=None) -> trainer``; data: a datamodule or a dataset."""

    def fit(model, data, callbacks, epochs=1, ckpt_path=None):
        trainer = make_trainer(epochs, callbacks, limit_val_batches=0)
        if isinstance(data, L.LightningDataModule):
            trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
        else:
            trainer.fit(model, torch.utils.data.DataLoader(data, batch_size=32, shuffle=True), ckpt_path=ckpt_path)
        return trainer

    return fit


def _two_groups(n: int = 256) -> TensorDataset:
    """Group 0's label is a feature's sign (learnable); group 1's label is a coin flip (loss stays high)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    groups = torch.arange(n) % 2
    y = torch.where(groups == 0, (x[:, 0] > 0).long(), torch.randint(2, (n,), generator=g))
    return TensorDataset(x, y, groups)


# -- the update, by hand -------------------------------------------------------------------------
def test_two_steps_match_the_hand_computed_exponentiated_gradient_update():
    dro = GroupDRO(num_groups=2, step_size=0.1)
    losses = torch.tensor([0.5, 1.5, 2.0, 4.0], requires_grad=True)
    groups = torch.tensor([0, 0, 1, 1])
    # L = (mean(0.5, 1.5), mean(2, 4)) = (1, 3); q0 = (1/2, 1/2).
    # step 1: q ∝ (e^{0.1·1}, e^{0.1·3}) → q1 = 1/(1 + e^{-0.2}) = 0.549834, q0 = 0.450166;
    #         loss = 0.450166·1 + 0.549834·3 = 2.099668.
    loss = dro.step(losses, groups)
    assert dro.weights.tolist() == pytest.approx([1 - 1 / (1 + math.exp(-0.2)), 1 / (1 + math.exp(-0.2))], abs=1e-6)
    assert dro.weights[1].item() == pytest.approx(0.549834, abs=1e-6)
    assert loss.item() == pytest.approx(2.099668, abs=1e-5)
    # ∂loss/∂ℓ_i = q_g / n_g: each sample counts by its group's weight over the group's batch size.
    loss.backward()
    assert losses.grad.tolist() == pytest.approx([0.450166 / 2] * 2 + [0.549834 / 2] * 2, abs=1e-6)
    # step 2: q ∝ (0.450166·e^{0.1}, 0.549834·e^{0.3}) → q1 = 1/(1 + e^{-0.4}) = 0.598688;
    #         loss = 0.401312·1 + 0.598688·3 = 2.197376.
    loss = dro.step(losses.detach(), groups)
    assert dro.weights[1].item() == pytest.approx(0.598688, abs=1e-6)
    assert loss.item() == pytest.approx(2.197376, abs=1e-5)


def test_absent_groups_keep_their_unnormalized_weight_and_the_adjustment_favours_small_groups():
    dro = GroupDRO(num_groups=3, step_size=1.0)
    dro.step(torch.tensor([1.0, 2.0]), torch.tensor([0, 1]))
    # q ∝ (e^1, e^2, 1) / 3: group 2 is absent from the batch, so its factor is e^0 = 1.
    z = math.e + math.e**2 + 1
    assert dro.weights.tolist() == pytest.approx([math.e / z, math.e**2 / z, 1 / z], abs=1e-6)

    adjusted = GroupDRO(num_groups=2, step_size=1.0, generalization_adjustment=1.0, group_counts=[100, 4])
    adjusted.step(torch.tensor([1.0, 1.0]), torch.tensor([0, 1]))
    # equal losses; C/√n = (0.1, 0.5) → q1 = 1/(1 + e^{-(0.5 - 0.1)}) = 0.598688.
    assert adjusted.weights[1].item() == pytest.approx(0.598688, abs=1e-6)


def test_trainer_moves_q_toward_the_higher_loss_group_logs_it_and_restores_training_step(fit):
    model, dro = LinearClassifier(in_features=4, lr=0.2), GroupDRO(num_groups=2, step_size=0.5)
    trainer = fit(model, _two_groups(), [dro], epochs=2)
    q = dro.weights
    assert q[1] > 0.7 > 0.3 > q[0]
    assert q.sum().item() == pytest.approx(1.0)
    logged = trainer.callback_metrics
    assert [logged[f"aca/gdro/q/{g}"].item() for g in (0, 1)] == pytest.approx(q.tolist())
    assert logged["aca/gdro/worst_group_loss"].item() > 0.6  # coin-flip labels: no better than chance (0.83)
    assert "training_step" not in vars(model)


@pytest.mark.filterwarnings("ignore:You passed in a `val_dataloader` but have no `validation_step`")
@pytest.mark.parametrize("seed", [0, 1])
def test_gdro_beats_erm_on_worst_group_test_accuracy(fit, seed):
    def worst_group_test_accuracy(use_gdro: bool) -> float:
        L.seed_everything(seed, verbose=False)
        dm = SpuriousDigitsDataModule(correlation=0.95, seed=seed)
        model = LinearClassifier(mean=not use_gdro)
        fit(model, dm, [GroupDRO(num_groups=4, step_size=0.1)] if use_gdro else [], epochs=10)
        x, y, groups = dm.test_dataset.tensors
        with torch.no_grad():
            return worst_group_accuracy(model(x), y, groups, num_groups=4).item()

    # measured: seed 0 ERM 0.062, GDRO 0.681; seed 1 ERM 0.088, GDRO 0.777.
    erm, gdro = worst_group_test_accuracy(False), worst_group_test_accuracy(True)
    assert erm < 0.2
    assert gdro > 0.5
    assert gdro - erm > 0.4


# -- groups from batches --------------------------------------------------------------------------
class _Pairs(Dataset):
    """Items ``{"x": x, "y": y}``."""

    def __init__(self, base: TensorDataset) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i):
        x, y = self.base[i]
        return {"x": x, "y": y}


@pytest.mark.parametrize("dict_items", [False, True])
def test_membership_groups_are_read_counted_and_kept_from_the_users_training_step(fit, plain_model, dict_items):
    """The module unpacks ``x, y = batch`` (or reads keys x, y): the flag GroupDRO needs must not reach it."""

    class SeesBatches(plain_model):
        def training_step(self, batch, batch_idx):
            self.fields = sorted(batch) if isinstance(batch, dict) else len(batch)
            return super().training_step(batch, batch_idx)

    base = TensorDataset(torch.rand(200, 1, 4, 4), torch.arange(200) % 2)
    keys = {"input_key": "x", "label_key": "y"} if dict_items else {}
    collective = CollectiveDataset(
        _Pairs(base) if dict_items else base,
        SignalPlanting(PixelPatch(2), target_class=0),
        alpha=0.1,
        return_membership=True,
        **keys,
    )
    dro = GroupDRO(num_groups=2, groups="membership", generalization_adjustment=1.0)
    model = SeesBatches(in_features=16, num_classes=2, hidden=0, per_sample=True)
    fit(model, collective, [dro])
    assert model.fields == (["x", "y"] if dict_items else 2)
    members = len(collective.members)
    assert members > 0
    assert dro.group_counts.tolist() == [200 - members, members]
    assert not torch.allclose(dro.weights, torch.full((2,), 0.5))


class _DictDataset(Dataset):
    def __init__(self, base: TensorDataset) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i):
        x, y, g = self.base[i]
        return {"x": x, "y": y, "group": g}


@pytest.mark.parametrize("dict_batches", [True, False])
def test_groups_from_dict_key_or_callable(fit, dict_batches):
    data = _DictDataset(_two_groups()) if dict_batches else _two_groups()
    groups = "index" if dict_batches else (lambda batch: batch[2])
    dro = GroupDRO(num_groups=2, step_size=0.5, groups=groups)
    fit(LinearClassifier(in_features=4, lr=0.2), data, [dro], epochs=2)
    assert dro.weights[1] > 0.7


# -- errors ---------------------------------------------------------------------------------------
def test_a_scalar_loss_says_to_return_per_sample_losses_and_the_module_is_restored(fit):
    model = LinearClassifier(in_features=4, mean=True)
    with pytest.raises(ValueError, match=r"per-sample losses.*shape \(\).*reduction='none'"):
        fit(model, _two_groups(), [GroupDRO(num_groups=2)])
    assert "training_step" not in vars(model)


def test_a_fit_that_fails_midway_leaves_the_module_as_it_was(fit):
    class FailsMidway(LinearClassifier):
        def training_step(self, batch, batch_idx):
            if batch_idx == 3:
                raise RuntimeError("the user's training_step failed")
            return super().training_step(batch, batch_idx)

    model, dro = FailsMidway(in_features=4), GroupDRO(num_groups=2)
    own_step = model.training_step
    model.training_step = own_step  # an instance attribute: must come back as itself, not be deleted
    with pytest.raises(RuntimeError, match="training_step failed"):
        fit(model, _two_groups(), [dro])
    assert vars(model)["training_step"] is own_step
    plain = FailsMidway(in_features=4)
    with pytest.raises(RuntimeError, match="training_step failed"):
        fit(plain, _two_groups(), [dro])  # the same callback, a second fit
    assert "training_step" not in vars(plain)


def test_group_indices_out_of_range_name_num_groups(fit):
    with pytest.raises(ValueError, match=r"\[0, 1\] \(num_groups=2\), got \[0, 2\]"):
        GroupDRO(num_groups=2).step(torch.ones(2), torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="num_groups=2"):
        fit(LinearClassifier(in_features=4), _two_groups(), [GroupDRO(num_groups=2, groups=lambda b: b[2] + 1)])
    with pytest.raises(ValueError, match="integers"):
        GroupDRO(num_groups=2).step(torch.ones(2), torch.tensor([0.0, 1.0]))


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        (dict(num_groups=1), ValueError, "num_groups"),
        (dict(num_groups=2.0), TypeError, "num_groups"),
        (dict(num_groups=True), TypeError, "num_groups"),
        (dict(num_groups=2, step_size=0), ValueError, "step_size"),
        (dict(num_groups=2, step_size=float("inf")), ValueError, "step_size"),
        (dict(num_groups=2, step_size=float("nan")), ValueError, "step_size"),
        (dict(num_groups=2, step_size=True), TypeError, "step_size"),
        (dict(num_groups=2, groups="labels"), ValueError, "groups"),
        (dict(num_groups=4, groups="membership"), ValueError, "num_groups"),
        (dict(num_groups=2, group_index=1.5), TypeError, "group_index"),
        (dict(num_groups=2, group_index=False), TypeError, "group_index"),
        (dict(num_groups=2, generalization_adjustment=-1.0), ValueError, "generalization_adjustment"),
        (dict(num_groups=2, generalization_adjustment=float("inf")), ValueError, "generalization_adjustment"),
        (dict(num_groups=2, generalization_adjustment=False), TypeError, "generalization_adjustment"),
        (dict(num_groups=2, group_counts=[1, 2, 3]), ValueError, "group_counts"),
        (dict(num_groups=2, group_counts=[1, -2]), ValueError, "group_counts"),
        (dict(num_groups=2, group_counts=[1, float("inf")]), ValueError, "group_counts"),
        (dict(num_groups=2, group_counts=5), ValueError, "group_counts"),
    ],
)
def test_bad_arguments_name_the_parameter(kwargs, error, name):
    with pytest.raises(error, match=rf"^{name} .*got"):
        GroupDRO(**kwargs)


def test_numbers_of_any_real_kind_are_accepted():
    dro = GroupDRO(num_groups=np.int64(3), step_size=torch.tensor(0.5), generalization_adjustment=np.float32(1.0))
    assert (dro.num_groups, dro.step_size, dro.generalization_adjustment) == (3, 0.5, 1.0)
    assert type(dro.num_groups) is int and dro.weights.shape == (3,)


# -- state ----------------------------------------------------------------------------------------
def test_state_dict_round_trip_and_checkpoint_resume(fit, tmp_path):
    dro = GroupDRO(num_groups=2, step_size=0.2, generalization_adjustment=0.5)
    model = LinearClassifier(in_features=4)
    trainer = fit(model, _two_groups(), [dro])
    state = dro.state_dict()
    assert state["group_counts"].tolist() == [128, 128]

    restored = GroupDRO(num_groups=2)
    restored.load_state_dict(state)
    assert torch.equal(restored.weights, dro.weights)
    assert torch.equal(restored.group_counts, dro.group_counts)
    with pytest.raises(ValueError, match="num_groups=3"):
        GroupDRO(num_groups=3).load_state_dict(state)

    path = tmp_path / "gdro.ckpt"
    trainer.save_checkpoint(path)
    resumed = GroupDRO(num_groups=2, step_size=0.2, generalization_adjustment=0.5)
    # max_epochs is already reached, so fit only restores the state.
    fit(LinearClassifier(in_features=4), _two_groups(), [resumed], ckpt_path=path)
    assert torch.equal(resumed.weights, dro.weights)
    assert not torch.equal(resumed.weights, GroupDRO(num_groups=2).weights)


# -- record fields, a resumed run, several instances ----------------------------------------------
class _EpochLosses(L.Callback):
    """The per-group average training loss of each epoch, recomputed from the module's own per-sample losses."""

    def __init__(self):
        self.worst = []

    def on_train_epoch_start(self, trainer, pl_module):
        self.sums, self.counts = torch.zeros(2), torch.zeros(2)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        x, y, groups = batch
        with torch.no_grad():
            losses = F.cross_entropy(pl_module(x), y, reduction="none")
        self.sums += torch.zeros(2).index_add(0, groups, losses)
        self.counts += torch.bincount(groups, minlength=2)

    def on_train_epoch_end(self, trainer, pl_module):
        self.worst.append(float((self.sums / self.counts).max()))


def _fit_in_order(make_trainer, callbacks, epochs, ckpt_path=None):
    """Two-group data in a fixed order (no shuffling), so a resumed run sees the batches a straight one does."""
    L.seed_everything(0, verbose=False)
    model = LinearClassifier(in_features=4)
    trainer = make_trainer(epochs, callbacks, limit_val_batches=0)
    trainer.fit(model, torch.utils.data.DataLoader(_two_groups(), batch_size=32), ckpt_path=ckpt_path)
    return trainer


def test_record_fields_are_the_final_weights_and_the_last_worst_group_loss(make_trainer):
    dro, losses = GroupDRO(num_groups=2, step_size=0.5), _EpochLosses()
    assert dro.record_fields() == {}
    _fit_in_order(make_trainer, [losses, dro], epochs=2)
    fields = dro.record_fields()
    assert set(fields) == {"group_weights", "worst_group_loss", "group_weights_by_epoch"}
    assert fields["group_weights"] == dro.weights.tolist() and sum(fields["group_weights"]) == pytest.approx(1.0)
    assert (
        len(fields["group_weights_by_epoch"]) == 2 and fields["group_weights_by_epoch"][-1] == fields["group_weights"]
    )
    assert fields["group_weights_by_epoch"][0] != fields["group_weights_by_epoch"][1]  # q moves between epochs
    assert fields["group_weights"][1] > 0.6  # the coin-flip group keeps the larger loss, so the larger weight
    assert fields["worst_group_loss"] == pytest.approx(losses.worst[-1], rel=1e-5)
    assert type(fields["worst_group_loss"]) is float


def test_a_resumed_run_continues_where_the_checkpoint_left_off(make_trainer, tmp_path):
    straight = GroupDRO(num_groups=2, step_size=0.5, generalization_adjustment=1.0)
    _fit_in_order(make_trainer, [straight], epochs=2)
    first = GroupDRO(num_groups=2, step_size=0.5, generalization_adjustment=1.0)
    trainer = _fit_in_order(make_trainer, [first], epochs=1)
    path = tmp_path / "one.ckpt"
    trainer.save_checkpoint(path)
    state = torch.load(path, weights_only=False)["callbacks"][first.state_key]
    assert set(state) == {"q", "group_counts", "epoch_sums", "epoch_counts", "worst_group_loss", "weights_by_epoch"}
    assert state["epoch_counts"].tolist() == [0.0, 0.0]  # the epoch ended: the next one starts afresh
    resumed = GroupDRO(num_groups=2, step_size=0.5, generalization_adjustment=1.0)
    _fit_in_order(make_trainer, [resumed], epochs=2, ckpt_path=path)
    assert torch.allclose(resumed.weights, straight.weights, atol=1e-6)
    assert resumed.record_fields()["worst_group_loss"] == pytest.approx(straight.worst_group_loss, rel=1e-5)
    assert resumed.group_counts.tolist() == [128.0, 128.0]
    by_epoch = torch.tensor(resumed.record_fields()["group_weights_by_epoch"])
    assert torch.allclose(by_epoch, torch.tensor(straight.weights_by_epoch), atol=1e-6) and len(by_epoch) == 2


def test_a_mid_epoch_state_round_trips_and_is_kept_for_the_epoch_it_came_from():
    dro = GroupDRO(num_groups=2, step_size=0.1)
    dro.step(torch.tensor([1.0, 3.0]), torch.tensor([0, 1]))
    state = dro.state_dict()
    loaded = GroupDRO(num_groups=2, step_size=0.1)
    loaded.load_state_dict(state)
    assert all(
        torch.equal(torch.as_tensor(a), torch.as_tensor(b))
        for a, b in zip(state.values(), loaded.state_dict().values(), strict=True)
        if a is not None
    )
    loaded.on_train_epoch_start(None, None)  # the checkpoint's epoch goes on
    assert loaded.state_dict()["epoch_sums"].tolist() == [1.0, 3.0]
    loaded.on_train_epoch_start(None, None)  # the next epoch starts afresh
    assert loaded.state_dict()["epoch_sums"].tolist() == [0.0, 0.0]


def test_two_instances_with_other_settings_keep_their_own_state(make_trainer):
    from lightning.pytorch.trainer import call

    slow, fast = GroupDRO(num_groups=2, step_size=0.05), GroupDRO(num_groups=2, step_size=1.0)
    assert slow.state_key != fast.state_key and slow.state_key == GroupDRO(num_groups=2, step_size=0.05).state_key
    _fit_in_order(make_trainer, [slow], epochs=1)
    _fit_in_order(make_trainer, [fast], epochs=1)
    assert abs(float(fast.weights[0] - slow.weights[0])) > 0.05  # different step sizes, different q
    # what Lightning does at checkpoint save and load, with both in one Trainer
    states = call._call_callbacks_state_dict(make_trainer(1, [slow, fast]))
    assert set(states) == {slow.state_key, fast.state_key}
    slow_again, fast_again = GroupDRO(num_groups=2, step_size=0.05), GroupDRO(num_groups=2, step_size=1.0)
    trainer = make_trainer(1, [fast_again, slow_again])
    call._call_callbacks_load_state_dict(trainer, {"callbacks": states})
    assert slow_again.record_fields() == slow.record_fields()
    assert fast_again.record_fields() == fast.record_fields()


@settings(max_examples=40, deadline=None)
@given(k=st.integers(1, 3), b=st.integers(1, 40), g=st.integers(1, 6), seed=st.integers(0, 10_000))
def test_group_sums_are_per_group_sums_in_any_batch_shape(k, b, g, seed):
    generator = torch.Generator().manual_seed(seed)
    values = torch.randn(k, b, generator=generator, dtype=torch.float64)
    groups = torch.randint(0, g, (k, b), generator=generator)
    expected = torch.zeros(k, g, dtype=torch.float64).scatter_add(1, groups, values)
    assert torch.allclose(group_sums(values, groups, g), expected)
    assert torch.allclose(group_sums(values[0], groups[0], g), expected[0])  # one model: (B,) -> (G,)
