"""ColoredMNISTDataModule: red/green MNIST-5k or full MNIST digits, exact training agreement, balanced test groups."""

import pytest
import torch

from lightning_aca.cli import run_experiment
from lightning_aca.data.colored_mnist import ColoredMNISTDataModule
from lightning_aca.data.mnist import load_mnist_tensors
from lightning_aca.data.mnist5k import load_mnist5k_tensors
from lightning_aca.data.split import stratified_split
from lightning_aca.stacked.data import tensors_of


def _tensors(dm, split):
    dm.setup()
    return (dm.train_dataset if split == "train" else dm.test_dataset).tensors


def _digits(split):
    """The grey images and digits of the split ColoredMNISTDataModule() draws (split_seed 0, test 0.2)."""
    images, digits = load_mnist5k_tensors()
    train, _, test = stratified_split(digits, 0.2, seed=0)
    index = train if split == "train" else test
    return images[index], digits[index]


def test_digits_are_drawn_in_red_or_green_from_the_real_grey_images():
    dm = ColoredMNISTDataModule(batch_size=16)
    assert (dm.num_classes, dm.num_groups, dm.input_shape) == (2, 4, (3, 28, 28))
    for split in ("train", "test"):
        x, y, group = _tensors(dm, split)
        grey, digits = _digits(split)
        attribute = group % 2
        assert (x.dtype, y.dtype, group.dtype) == (torch.float32, torch.int64, torch.int64)
        assert torch.equal(y, (digits >= 5).long()) and torch.equal(group // 2, y)
        assert x.min() >= 0.0 and x.max() <= 1.0 and (x[:, 2] == 0).all()
        assert torch.equal(x[attribute == 0, 0], grey[attribute == 0, 0]) and (x[attribute == 0, 1] == 0).all()
        assert torch.equal(x[attribute == 1, 1], grey[attribute == 1, 0]) and (x[attribute == 1, 0] == 0).all()
    xb, yb, gb = next(iter(dm.train_dataloader()))
    assert (tuple(xb.shape), tuple(yb.shape), tuple(gb.shape)) == ((16, 3, 28, 28), (16,), (16,))


@pytest.mark.parametrize("correlation", [0.0, 0.5, 0.8, 0.95, 1.0])
def test_colour_agrees_with_exactly_round_corr_n_y_of_each_training_class_and_half_of_each_test_class(correlation):
    dm = ColoredMNISTDataModule(correlation=correlation)
    agree = round(correlation * 2000)  # 2,000 training digits 0-4 and 2,000 digits 5-9
    assert dm.group_counts("train").tolist() == [agree, 2000 - agree, 2000 - agree, agree]
    assert dm.group_counts("test").tolist() == [250, 250, 250, 250]


def test_label_noise_flips_that_fraction_of_each_split_before_the_colours_are_drawn():
    dm = ColoredMNISTDataModule(label_noise=0.25)
    for split, n in (("train", 4000), ("test", 1000)):
        y = _tensors(dm, split)[1]
        _, digits = _digits(split)
        assert (y != (digits >= 5).long()).sum().item() == n // 4
    # the colour agrees with the observed (noisy) label at the set rates
    small_red, small_green, large_red, large_green = dm.group_counts("train").tolist()
    assert small_red == round(0.95 * (small_red + small_green)) and large_green == round(
        0.95 * (large_red + large_green)
    )
    small_red, small_green, large_red, large_green = dm.group_counts("test").tolist()
    assert small_red == round(0.5 * (small_red + small_green)) and large_green == round(0.5 * (large_red + large_green))


def test_seeded_and_deterministic():
    first, again, other = ColoredMNISTDataModule(seed=3), ColoredMNISTDataModule(seed=3), ColoredMNISTDataModule(seed=4)
    assert all(torch.equal(a, b) for a, b in zip(_tensors(first, "train"), _tensors(again, "train"), strict=True))
    assert torch.equal(_tensors(other, "train")[1], _tensors(first, "train")[1])
    assert not torch.equal(_tensors(other, "train")[2], _tensors(first, "train")[2])


@pytest.mark.parametrize(
    ("kwargs", "name"), [(dict(correlation=1.5), "correlation"), (dict(label_noise=-0.1), "label_noise")]
)
def test_bad_arguments_name_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} must be"):
        ColoredMNISTDataModule(**kwargs)


def test_the_stacked_engine_reads_it_with_groups():
    data = tensors_of(ColoredMNISTDataModule(batch_size=100), num_groups=4)
    assert (data.n, tuple(data.x_train.shape[1:])) == (4000, (3, 28, 28))
    assert torch.bincount(data.groups_test).tolist() == [250, 250, 250, 250]


def test_aca_run_with_group_dro_on_colored_mnist(compose_config, tmp_path):
    cfg = compose_config(
        "data=colored_mnist", "firm=gdro", "trainer.max_epochs=1", "quiet=true", "logger=none", f"output_dir={tmp_path}"
    )
    metrics = run_experiment(cfg)["metrics"]
    assert metrics["aca/worst_group_acc"] == min(metrics[f"aca/group_acc/{g}"] for g in range(4))


def test_full_mnist_source_keeps_the_official_split():
    dm = ColoredMNISTDataModule(source="mnist")
    train, test = dm.group_counts("train"), dm.group_counts("test")
    assert (int(train.sum()), int(test.sum())) == (60_000, 10_000)
    assert (int(test[0] + test[1]), int(test[2] + test[3])) == (5_139, 4_861)  # the official test digits 0-4, 5-9
    official_test_labels = load_mnist_tensors("test")[1]
    assert torch.equal(dm.test_dataset.tensors[1], (official_test_labels >= 5).long())
    small, large = int(train[0] + train[1]), int(train[2] + train[3])
    assert (int(train[0]), int(train[3])) == (round(0.95 * small), round(0.95 * large))


@pytest.mark.parametrize(
    ("kwargs", "name"), [(dict(source="cifar"), "source"), (dict(source="mnist", test_fraction=0.2), "test_fraction")]
)
def test_bad_source_arguments_name_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name}"):
        ColoredMNISTDataModule(**kwargs)
