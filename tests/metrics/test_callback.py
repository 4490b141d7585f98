import statistics

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader

from lightning_aca import (
    Collective,
    CollectiveDataModule,
    CollectiveMetrics,
    DigitsDataModule,
    PixelPatch,
    SignalErasing,
    SignalPlanting,
)


@pytest.fixture
def make_model(plain_model):
    """A fresh plain classifier, with dropout so that evaluation has modes to restore."""
    return lambda: plain_model(dropout=0.1)


@pytest.fixture
def run(make_model, make_trainer):
    """``run(alpha, seed) -> (test results, CollectiveMetrics)`` after 12 epochs of planting on digits."""

    def run(alpha, seed):
        L.seed_everything(seed, verbose=False)
        dm, cb = _planting(alpha, seed), CollectiveMetrics()
        trainer = make_trainer(12, [cb])
        model = make_model()
        trainer.fit(model, dm)
        return trainer.test(model, datamodule=dm, verbose=False)[0], cb

    return run


def _digits_and_patched_loader():
    """Digits, set up, and a loader of its non-zero test digits patched and labelled 0 (written by hand)."""
    digits = DigitsDataModule()
    digits.setup()
    patched = DataLoader([(PixelPatch(2)(x), torch.tensor(0)) for x, y in digits.test_dataset if y != 0], batch_size=64)
    return digits, patched


def _planting(alpha, seed):
    return CollectiveDataModule(SignalPlanting(PixelPatch(2), 0), alpha, seed, datamodule=DigitsDataModule())


def test_success_rises_with_alpha_on_digits(run):
    small = [run(0.005, seed)[0] for seed in (0, 1)]
    large = [run(0.10, seed)[0] for seed in (0, 1)]
    s_small = statistics.mean(r["aca/success"] for r in small)
    s_large = statistics.mean(r["aca/success"] for r in large)
    assert s_large > 0.9 and s_large - s_small > 0.3, (s_small, s_large)
    assert all(r["aca/clean_acc"] > 0.85 for r in small + large)
    assert large[0]["aca/alpha"] == pytest.approx(0.1) and large[0]["aca/members"] == 135.0


def test_logged_success_matches_a_hand_count_and_keys_are_stable(run):
    result, cb = run(0.05, 0)
    assert set(cb.results) == {"validate", "test"}
    keys = {"aca/success", "aca/baseline_success", "aca/clean_acc", "aca/alpha", "aca/population_alpha", "aca/members"}
    assert keys <= set(result)
    assert "aca/erasure_agreement" not in result  # planting: no erasure agreement


def test_evaluation_restores_modes_and_rng(make_model, make_trainer):
    dm, cb = _planting(0.05, 0), CollectiveMetrics()
    model = make_model()
    trainer = make_trainer(1, [cb])
    trainer.fit(model, dm)
    model.train()
    model.net[3].eval()
    modes = [m.training for m in model.modules()]
    rng = torch.get_rng_state()
    values = cb.evaluate(trainer, model)
    assert [m.training for m in model.modules()] == modes
    assert torch.equal(torch.get_rng_state(), rng)
    # the value is the fraction of patched non-zero test digits the model labels 0
    model.eval()
    with torch.no_grad():
        hits = sum(int((model(x).argmax(1) == 0).sum()) for x, _ in dm.signal_test_dataloader())
    assert values["aca/success"] == pytest.approx(hits / len(dm.signal_test_dataset))
    # the baseline is the fraction of the same digits, without the patch, labelled 0
    with torch.no_grad():
        clean_hits = sum(int((model(batch[2]).argmax(1) == 0).sum()) for batch in dm.signal_test_dataloader(True))
    assert values["aca/baseline_success"] == pytest.approx(clean_hits / len(dm.signal_test_dataset))
    assert values["aca/baseline_success"] < values["aca/success"]


def test_without_validation_logs_at_train_epoch_end(make_model, make_trainer, tmp_path):
    dm = _planting(0.1, 0)
    trainer = make_trainer(2, [CollectiveMetrics()], logger=CSVLogger(tmp_path, name="run"), limit_val_batches=0)
    trainer.fit(make_model(), dm)
    text = (tmp_path / "run" / "version_0" / "metrics.csv").read_text()
    assert "aca/success" in text.splitlines()[0]
    assert "aca/success" in trainer.callback_metrics


def test_explicit_loaders_without_collective_datamodule(make_model, make_trainer):
    digits, patched = _digits_and_patched_loader()
    cb = CollectiveMetrics(signal_dataloader=patched, clean_dataloader=digits.test_dataloader())
    trainer = make_trainer(1, [cb])
    trainer.fit(make_model(), digits)
    assert 0.0 <= cb.results["validate"]["aca/success"] <= 1.0
    assert "aca/alpha" not in cb.results["validate"]


def test_erasing_logs_agreement(make_model, make_trainer):
    dm = CollectiveDataModule(SignalErasing(PixelPatch(2)), 0.1, datamodule=DigitsDataModule())
    cb = CollectiveMetrics()
    make_trainer(2, [cb]).fit(make_model(), dm)
    assert 0.0 <= cb.results["validate"]["aca/erasure_agreement"] <= 1.0


def test_missing_loaders_fail_at_start_with_a_fix(make_model, make_trainer):
    with pytest.raises(ValueError, match=r"signal_dataloader=.*CollectiveDataModule"):
        make_trainer(1, [CollectiveMetrics()]).fit(make_model(), DigitsDataModule())
    with pytest.raises(ValueError, match="every_n_epochs"):
        CollectiveMetrics(every_n_epochs=0)
    with pytest.raises(ValueError, match="top_k"):
        CollectiveMetrics(top_k=0)


class ConstantModel(L.LightningModule):
    """An untrained model that predicts class 0 for every input."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x):
        logits = torch.zeros(x.shape[0], 10, device=x.device)
        logits[:, 0] = self.scale
        return logits

    def test_step(self, batch, batch_idx):
        return None


def test_a_model_predicting_the_target_class_everywhere_has_success_equal_to_its_baseline(make_trainer):
    dm, cb = _planting(0.05, 0), CollectiveMetrics()
    make_trainer(1, [cb]).test(ConstantModel(), datamodule=dm, verbose=False)
    values = cb.results["test"]
    assert values["aca/success"] == 1.0
    assert values["aca/baseline_success"] == 1.0
    assert values["aca/clean_acc"] == pytest.approx(0.1, abs=0.02)  # one digit class in ten


def test_baseline_can_be_switched_off_and_needs_clean_inputs(make_trainer):
    dm = _planting(0.05, 0)
    off = CollectiveMetrics(baseline=False)
    make_trainer(1, [off]).test(ConstantModel(), datamodule=dm, verbose=False)
    assert "aca/baseline_success" not in off.results["test"]
    digits, patched = _digits_and_patched_loader()
    explicit = CollectiveMetrics(signal_dataloader=patched, clean=False)
    make_trainer(1, [explicit]).test(ConstantModel(), datamodule=digits, verbose=False)
    assert set(explicit.results["test"]) == {"aca/success"}


def test_every_n_epochs_must_be_a_positive_int():
    with pytest.raises(TypeError, match="every_n_epochs must be a positive int"):
        CollectiveMetrics(every_n_epochs=True)


def test_two_collectives_are_each_judged_on_their_own_signal_set(make_model, make_trainer):
    L.seed_everything(0)
    erasing = SignalErasing(PixelPatch(2, location="top_left"))
    collectives = [
        Collective("first", SignalPlanting(PixelPatch(2), target_class=0), 0.1),
        Collective("erase", erasing, 0.05),
    ]
    dm = CollectiveDataModule(seed=0, datamodule=DigitsDataModule(), collectives=collectives)
    cb = CollectiveMetrics()
    model = make_model()
    trainer = make_trainer(6, [cb])
    trainer.fit(model, dm)
    result = trainer.test(model, datamodule=dm, verbose=False)[0]
    per_collective = {
        f"aca/{metric}/{name}"
        for name in ("first", "erase")
        for metric in ("success", "baseline_success", "alpha", "members", "population_alpha")
    }
    assert set(cb.results["test"]) == per_collective | {"aca/clean_acc", "aca/erasure_agreement/erase"}
    assert "aca/success" not in result and per_collective <= set(result)
    values = cb.results["test"]
    assert values["aca/alpha/first"] == 0.1 and values["aca/members/first"] == 135.0  # round(0.1 * 1347)
    assert values["aca/members/erase"] == 67.0 and values["aca/population_alpha/erase"] == pytest.approx(67 / 1347)
    model.eval()
    with torch.no_grad():
        first = sum(int((model(x).argmax(1) == 0).sum()) for x, _ in dm.signal_test_dataloader(collective="first"))
        kept = sum(int((model(x).argmax(1) == y).sum()) for x, y in dm.signal_test_dataloader(collective="erase"))
    assert values["aca/success/first"] == pytest.approx(first / len(dm.signal_test_datasets["first"]))
    assert values["aca/success/first"] > 0.9
    assert values["aca/success/erase"] == pytest.approx(kept / len(dm.signal_test_datasets["erase"]))


def test_explicit_signal_loaders_by_name(make_model, make_trainer):
    digits, patched = _digits_and_patched_loader()
    cb = CollectiveMetrics(signal_dataloader={"a": patched, "b": patched}, clean_dataloader=digits.test_dataloader())
    make_trainer(1, [cb]).fit(make_model(), digits)
    values = cb.results["validate"]
    assert values["aca/success/a"] == values["aca/success/b"] and 0.0 <= values["aca/success/a"] <= 1.0
    assert "aca/success" not in values
