import lightning as L
import pytest
import torch
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

from lightning_aca import Collective, CollectiveDataModule, DigitsDataModule, LabelFlip, PixelPatch, SignalPlanting

PLANT = SignalPlanting(PixelPatch(2, value=1.0), target_class=0)


class PlainDigits(L.LightningDataModule):
    """A data module written without any knowledge of lightning_aca."""

    def __init__(self, batch_size=32):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage=None):
        d = load_digits()
        x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16
        y = torch.tensor(d.target)
        self.train, self.test = TensorDataset(x[:1400], y[:1400]), TensorDataset(x[1400:], y[1400:])

    def train_dataloader(self):
        return DataLoader(self.train, batch_size=self.batch_size, shuffle=True, drop_last=True)

    def val_dataloader(self):
        return DataLoader(self.test, batch_size=64)

    def test_dataloader(self):
        return DataLoader(self.test, batch_size=64)


def test_wraps_a_foreign_datamodule_and_trains_with_a_real_trainer(plain_model, make_trainer):
    L.seed_everything(0)
    dm = CollectiveDataModule(PLANT, alpha=0.1, seed=0, datamodule=PlainDigits())
    model = plain_model()
    trainer = make_trainer(max_epochs=8)
    trainer.fit(model, dm)
    assert len(dm.train_dataset.members) == 140
    loader = dm.train_dataloader()
    assert loader.batch_size == 32 and loader.drop_last and len(loader) == 1400 // 32
    assert trainer.callback_metrics["val/acc"] > 0.85
    model.eval()
    with torch.no_grad():
        hits = sum((model(x).argmax(1) == y).sum().item() for x, y in dm.signal_test_dataloader())
    success = hits / len(dm.signal_test_dataset)
    assert len(dm.signal_test_dataset) == sum(int(y) != 0 for _, y in dm.test_base_dataset)
    assert success > 0.9  # a 10% collective plants a unique 2x2 patch on digits


def test_train_loader_keeps_the_inner_sampler():
    class Weighted(PlainDigits):
        def train_dataloader(self):
            return DataLoader(self.train, batch_size=16, sampler=WeightedRandomSampler(torch.ones(1400), 100))

    dm = CollectiveDataModule(PLANT, alpha=0.5, datamodule=Weighted())
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert isinstance(loader.sampler, WeightedRandomSampler) and len(loader) == 7


def test_plain_datasets_and_digits():
    digits = DigitsDataModule(batch_size=50)
    digits.setup("fit")
    assert (len(digits.train_dataset), len(digits.test_dataset)) == (1347, 450)
    counts = torch.bincount(digits.test_dataset.tensors[1], minlength=10)
    assert counts.min() >= 43 and counts.max() <= 46  # stratified: class 8 has 174 of 1,797
    x = digits.train_dataset.tensors[0]
    assert x.shape[1:] == (1, 8, 8) and x.min() >= 0 and x.max() <= 1
    dm = CollectiveDataModule(PLANT, 0.05, train_dataset=digits.train_dataset, test_dataset=digits.test_dataset)
    dm.setup("fit")
    assert len(dm.train_dataset.members) == 67
    assert len(dm.val_dataloader().dataset) == 450  # no val set given: validation uses the test set
    xb, yb = next(iter(dm.signal_test_dataloader()))
    assert (yb == 0).all() and (xb[:, 0, -2:, -2:] == 1).all()


def test_digits_split_is_deterministic_by_seed():
    a, b, c = DigitsDataModule(split_seed=0), DigitsDataModule(split_seed=0), DigitsDataModule(split_seed=1)
    for dm in (a, b, c):
        dm.setup()
    assert torch.equal(a.test_dataset.tensors[0], b.test_dataset.tensors[0])
    assert not torch.equal(a.test_dataset.tensors[0], c.test_dataset.tensors[0])
    a.setup()
    flat = DigitsDataModule(flatten=True, val_fraction=0.1)
    flat.setup()
    assert flat.train_dataset.tensors[0].shape[1] == 64 and len(flat.val_dataset) == 135


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"batch_size": True}, TypeError, "batch_size"),
        ({"test_fraction": 1.0}, ValueError, "test_fraction"),
        ({"test_fraction": "0.2"}, TypeError, "test_fraction"),
        ({"val_fraction": 1.0}, ValueError, "val_fraction"),
        ({"split_seed": -1}, ValueError, "split_seed"),
        ({"num_workers": True}, TypeError, "num_workers"),
    ],
)
def test_digits_arguments_are_validated(kwargs, error, match):
    with pytest.raises(error, match=match):
        DigitsDataModule(**kwargs)


def test_digits_share_the_in_memory_loaders():
    from lightning_aca.data.in_memory import InMemoryDataModule

    dm = DigitsDataModule(batch_size=50, val_fraction=0.1)
    dm.setup()
    assert isinstance(dm, InMemoryDataModule)
    assert dm.val_dataloader().dataset is dm.val_dataset and len(dm.val_dataset) == 135
    assert dm.test_dataloader().dataset is dm.test_dataset and dm.train_dataloader().batch_size == 50


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"alpha": 1.5, "datamodule": PlainDigits()}, ValueError, r"alpha .* \[0\.0, 1\.0\]"),
        ({"alpha": 0.1}, ValueError, "needs datamodule"),
        ({"alpha": 0.1, "datamodule": PlainDigits(), "train_dataset": [1]}, ValueError, "not both"),
        ({"alpha": 0.1, "datamodule": object()}, TypeError, "LightningDataModule"),
        ({"alpha": 0.1, "datamodule": PlainDigits(), "batch_size": 0}, ValueError, "batch_size"),
        ({"alpha": 0.1, "datamodule": PlainDigits(), "batch_size": True}, TypeError, "batch_size must be a positive"),
        ({"alpha": 0.1, "datamodule": PlainDigits(), "eval_batch_size": 2.0}, TypeError, "eval_batch_size"),
        ({"alpha": 0.1, "datamodule": PlainDigits(), "num_workers": -1}, ValueError, "num_workers"),
        ({"alpha": 0.1, "datamodule": PlainDigits(), "num_workers": True}, TypeError, "num_workers"),
        ({"alpha": 0.1, "datamodule": PlainDigits(), "seed": "0"}, TypeError, "seed"),
        ({"alpha": 0.1, "datamodule": PlainDigits(), "num_classes": 0}, ValueError, "num_classes"),
        ({"alpha": "0.1", "datamodule": PlainDigits()}, TypeError, "alpha .* must be a real number"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        CollectiveDataModule(PLANT, **kwargs)


def test_unknown_target_fails_at_setup():
    dm = CollectiveDataModule(SignalPlanting(PixelPatch(2), target_class=11), 0.1, datamodule=DigitsDataModule())
    with pytest.raises(
        ValueError, match=r"target_class=11 is not a class .*range\(0, 10\)|target_class=11 is not a class"
    ):
        dm.setup("fit")


def test_collate_injection_trains_like_item_injection(plain_model, make_trainer):
    results = {}
    for injection in ("item", "collate", "auto"):
        L.seed_everything(0)
        dm = CollectiveDataModule(PLANT, alpha=0.1, datamodule=PlainDigits(), injection=injection)
        model = plain_model()
        make_trainer(max_epochs=4).fit(model, dm)
        model.eval()
        with torch.no_grad():
            hits = sum((model(x).argmax(1) == y).sum().item() for x, y in dm.signal_test_dataloader())
        results[injection] = hits / len(dm.signal_test_dataset)
    assert results["collate"] == pytest.approx(results["item"], abs=1e-6)
    assert results["auto"] == pytest.approx(results["item"], abs=1e-6)


class _ItemOnlySignal(PixelPatch):
    supports_batches = False


class _Strings(torch.utils.data.Dataset):
    def __len__(self):
        return 20

    def __getitem__(self, i):
        return f"text {i}", i % 2


def test_auto_injection_collates_where_it_applies_and_reads_items_elsewhere():
    digits = DigitsDataModule()
    digits.setup()
    data = {"train_dataset": digits.train_dataset, "test_dataset": digits.test_dataset}

    def mode(strategy=PLANT, **kwargs):
        dm = CollectiveDataModule(strategy, 0.1, **kwargs)
        dm.setup("fit")
        return dm.train_dataset.injection

    assert mode(**data) == "collate"
    assert mode(LabelFlip(0), **data) == "collate"
    assert mode(datamodule=PlainDigits()) == "collate"
    assert mode(SignalPlanting(_ItemOnlySignal(2), 0), **data) == "item"
    assert mode(LabelFlip(0), train_dataset=_Strings(), test_dataset=_Strings()) == "item"
    assert mode(**data, injection="item") == "item"

    class OwnCollate(PlainDigits):
        def train_dataloader(self):
            return DataLoader(
                self.train, batch_size=8, collate_fn=lambda items: torch.utils.data.default_collate(items)
            )

    assert mode(datamodule=OwnCollate()) == "item"  # a collate of the user's own is not assumed to give tensors
    dm = CollectiveDataModule(PLANT, 0.1, datamodule=PlainDigits(), return_membership=True)
    _, y, flag = next(iter(dm.train_dataloader()))
    assert dm.train_dataset.injection == "collate" and flag.dtype == torch.bool and (y[flag] == 0).all()


def test_batch_injection_is_gone_with_a_pointer_to_collate():
    with pytest.raises(ValueError, match=r"injection='batch' was removed: use injection='collate'"):
        CollectiveDataModule(PLANT, 0.1, datamodule=PlainDigits(), injection="batch")
    with pytest.raises(ValueError, match="injection must be one of"):
        CollectiveDataModule(PLANT, 0.1, datamodule=PlainDigits(), injection="device")
    assert CollectiveDataModule.on_after_batch_transfer is L.LightningDataModule.on_after_batch_transfer


class _EmptyTrain(PlainDigits):
    def setup(self, stage=None):
        super().setup(stage)
        self.train = TensorDataset(torch.zeros(0, 1, 8, 8), torch.zeros(0, dtype=torch.long))


class _EmptyTest(PlainDigits):
    def setup(self, stage=None):
        super().setup(stage)
        self.test = TensorDataset(torch.zeros(0, 1, 8, 8), torch.zeros(0, dtype=torch.long))


def test_empty_training_or_test_sets_say_so():
    empty = TensorDataset(torch.zeros(0, 1, 8, 8), torch.zeros(0, dtype=torch.long))
    digits = DigitsDataModule()
    digits.setup()
    for dm in (
        CollectiveDataModule(PLANT, 0.1, datamodule=_EmptyTrain()),
        CollectiveDataModule(PLANT, 0.1, train_dataset=empty, test_dataset=digits.test_dataset),
        CollectiveDataModule(PLANT, 0.0, train_dataset=empty, test_dataset=digits.test_dataset, injection="item"),
    ):
        with pytest.raises(ValueError, match=r"^the training set is empty"):
            dm.setup("fit")
    for dm in (
        CollectiveDataModule(PLANT, 0.1, datamodule=_EmptyTest()),
        CollectiveDataModule(PLANT, 0.1, train_dataset=digits.train_dataset, test_dataset=empty),
    ):
        dm.setup("fit")
        with pytest.raises(ValueError, match=r"^the test set is empty"):
            dm.signal_test_dataloader()


def test_collate_injection_keeps_the_wrapped_loaders_collate_function():
    calls = []

    class CountingCollate(PlainDigits):
        def train_dataloader(self):
            def collate(items):
                calls.append(len(items))
                return torch.utils.data.default_collate(items)

            return DataLoader(self.train, batch_size=32, shuffle=False, collate_fn=collate)

    dm = CollectiveDataModule(PLANT, alpha=1.0, datamodule=CountingCollate(), injection="collate")
    dm.setup("fit")
    x, y = next(iter(dm.train_dataloader()))
    assert calls == [32] and (y == 0).all() and torch.equal(x[0], dm.train_dataset[0][0])
    direct = CollectiveDataModule(
        PLANT,
        alpha=1.0,
        train_dataset=dm.train_dataset.dataset,
        test_dataset=dm.train_dataset.dataset,
        injection="collate",
    )
    direct.setup("fit")
    assert (next(iter(direct.train_dataloader()))[1] == 0).all()


# -- several collectives (Karan, Vincent, Karahalios, Sundaram 2025) ---------------------------------
SECOND = SignalPlanting(PixelPatch(2, value=1.0, location="top_left"), target_class=1)


def _two(first=0.1, second=0.1, second_strategy=SECOND):
    return [Collective("first", PLANT, first), Collective("second", second_strategy, second)]


def test_two_collectives_each_reach_their_own_target_with_a_real_trainer(plain_model, make_trainer):
    L.seed_everything(0)
    dm = CollectiveDataModule(seed=0, datamodule=PlainDigits(), collectives=_two())
    model = plain_model()
    make_trainer(max_epochs=8).fit(model, dm)
    first, second = dm.train_dataset.members_of("first"), dm.train_dataset.members_of("second")
    assert len(first) == len(second) == 140 and not set(first.tolist()) & set(second.tolist())
    assert dm.train_dataset.injection == "collate"  # both signals batch: auto picks collate
    sets = dm.signal_test_datasets
    assert list(sets) == ["first", "second"]
    labels = [int(y) for _, y in dm.test_base_dataset]
    assert len(sets["first"]) == sum(y != 0 for y in labels) and len(sets["second"]) == sum(y != 1 for y in labels)
    model.eval()
    for name, target in (("first", 0), ("second", 1)):
        loader = dm.signal_test_dataloader(collective=name)
        assert loader.dataset is sets[name]
        with torch.no_grad():
            hits = sum((model(x).argmax(1) == target).sum().item() for x, _ in loader)
        assert hits / len(sets[name]) > 0.9, name  # each 10% collective plants its own unique patch
    # the clean-carrying loader of "second": its patch in the top-left corner, its label 1, clean input after
    x, y, clean, true = next(iter(dm.signal_test_dataloader(return_clean=True, collective="second")))
    assert (y == 1).all() and (true != 1).all() and torch.equal(x, SECOND.signal(clean))


def test_one_collective_datamodule_keeps_its_api_and_several_ask_for_a_name():
    one = CollectiveDataModule(PLANT, 0.1, datamodule=DigitsDataModule())
    assert one.strategy is PLANT and one.alpha == 0.1
    assert [(c.name, c.strategy, c.alpha) for c in one.collectives] == [("collective", PLANT, 0.1)]
    assert len(one.signal_test_dataset) == len(one.signal_test_dataloader().dataset) == 405
    same = CollectiveDataModule(datamodule=DigitsDataModule(), collectives=[Collective("only", PLANT, 0.1)])
    same.setup("fit")
    one.setup("fit")
    assert same.train_dataset.members.tolist() == one.train_dataset.members.tolist()
    several = CollectiveDataModule(datamodule=DigitsDataModule(), collectives=_two())
    with pytest.raises(AttributeError, match=r"2 collectives \('first', 'second'\), so no single strategy"):
        several.strategy  # noqa: B018
    with pytest.raises(AttributeError, match="no single alpha"):
        several.alpha  # noqa: B018
    with pytest.raises(ValueError, match=r"use signal_test_datasets\[name\] or signal_test_dataloader\(collective="):
        several.signal_test_dataset  # noqa: B018
    with pytest.raises(ValueError, match=r"2 collectives \['first', 'second'\]; pass collective="):
        several.signal_test_dataloader()
    with pytest.raises(KeyError, match="no collective named 'third'"):
        several.signal_test_dataloader(collective="third")
    with pytest.raises(ValueError, match="not both"):
        CollectiveDataModule(PLANT, 0.1, datamodule=DigitsDataModule(), collectives=_two())
    with pytest.raises(ValueError, match=r"alphas\[0\]=0.6 asks for .*collective 'first'"):
        CollectiveDataModule(datamodule=DigitsDataModule(), collectives=_two(first=0.6)).setup("fit")


def test_every_collectives_signal_is_shown_to_the_collate_function():
    from torch.utils.data import default_collate

    seen = []

    class Checking:
        def __call__(self, items):
            return default_collate(items)

        def check_signal(self, signal):
            seen.append(signal)

    data = TensorDataset(torch.rand(40, 1, 8, 8), torch.arange(40) % 4)
    dm = CollectiveDataModule(train_dataset=data, test_dataset=data, collate_fn=Checking(), collectives=_two(0.1, 0.1))
    dm.setup("fit")
    assert seen == [PLANT.signal, SECOND.signal]
