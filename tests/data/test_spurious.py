"""SpuriousDigitsDataModule: shapes, the train/test attribute correlation, groups, determinism."""

import pytest
import torch

from lightning_aca.data.spurious import SpuriousDigitsDataModule


def _tensors(dm: SpuriousDigitsDataModule, split: str):
    dm.setup()
    return (dm.train_dataset if split == "train" else dm.test_dataset).tensors


def test_items_shapes_dtypes_and_loaders():
    dm = SpuriousDigitsDataModule(batch_size=32)
    dm.setup("fit")
    assert (dm.num_classes, dm.num_groups, dm.input_shape) == (2, 4, (1, 8, 8))
    assert (len(dm.train_dataset), len(dm.test_dataset)) == (1347, 450)
    x, y, group = dm.train_dataset[0]
    assert (tuple(x.shape), x.dtype, y.dtype, group.dtype) == ((1, 8, 8), torch.float32, torch.int64, torch.int64)
    xb, yb, gb = next(iter(dm.train_dataloader()))
    assert (tuple(xb.shape), tuple(yb.shape), tuple(gb.shape)) == ((32, 1, 8, 8), (32,), (32,))
    assert dm.val_dataloader().dataset is dm.test_dataset is dm.test_dataloader().dataset
    for split in ("train", "test"):
        x, y, group = _tensors(dm, split)
        assert x.min() >= 0.0 and x.max() <= 1.0
        assert set(y.tolist()) == {0, 1}
        assert torch.equal(group // 2, y)  # group = 2·y + a


@pytest.mark.parametrize("correlation", [0.0, 0.5, 0.8, 0.95, 1.0])
def test_attribute_agrees_with_label_at_the_set_rate_in_train_and_half_the_time_in_test(correlation):
    dm = SpuriousDigitsDataModule(correlation=correlation)
    for split, expected in (("train", correlation), ("test", 0.5)):
        _, y, group = _tensors(dm, split)
        agreement = (group % 2 == y).float().mean().item()
        assert agreement == pytest.approx(expected, abs=0.03)
        for label in (0, 1):  # within each class too, so a alone predicts y at that rate
            in_class = y == label
            assert (group[in_class] % 2 == label).float().mean().item() == pytest.approx(expected, abs=0.03)


def test_group_counts_and_the_visible_background():
    dm = SpuriousDigitsDataModule(correlation=0.95, background=0.3)
    train, test = dm.group_counts("train"), dm.group_counts("test")
    # 95% of each class sits in the majority groups 0 (y=0, a=0) and 3 (y=1, a=1).
    assert train.tolist() == [641, 34, 34, 638]
    assert test.tolist() == [113, 113, 112, 112]
    x, _, group = _tensors(dm, "train")
    on = group % 2 == 1
    assert x[on].amin().item() == pytest.approx(0.3)  # every pixel lit by the background
    assert x[~on].amin().item() == 0.0
    assert x[on].mean() > x[~on].mean() + 0.2
    with pytest.raises(ValueError, match="split"):
        dm.group_counts("val")


def test_seeded_and_deterministic():
    first, again = SpuriousDigitsDataModule(seed=3), SpuriousDigitsDataModule(seed=3)
    for split in ("train", "test"):
        assert all(torch.equal(a, b) for a, b in zip(_tensors(first, split), _tensors(again, split), strict=True))
    other_seed = SpuriousDigitsDataModule(seed=4)
    assert torch.equal(_tensors(other_seed, "train")[1], _tensors(first, "train")[1])  # same split, same labels
    assert not torch.equal(_tensors(other_seed, "train")[2], _tensors(first, "train")[2])  # other attributes
    other_split = SpuriousDigitsDataModule(seed=3, split_seed=1)
    assert not torch.equal(_tensors(other_split, "train")[1], _tensors(first, "train")[1])


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(correlation=1.2), "correlation"),
        (dict(correlation=-0.1), "correlation"),
        (dict(batch_size=0), "batch_size"),
        (dict(test_fraction=1.0), "test_fraction"),
        (dict(background=1.5), "background"),
    ],
)
def test_bad_arguments_name_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} must be .*got"):
        SpuriousDigitsDataModule(**kwargs)
