import sys
import types

import pytest
import torch
from torch.utils.data import TensorDataset

from lightning_aca import CIFAR10DataModule, CollectiveDataModule, MNISTDataModule, PixelPatch, SignalPlanting
from lightning_aca.data import TorchvisionDataModule
from lightning_aca.data.in_memory import InMemoryDataModule


def test_missing_torchvision_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)
    with pytest.raises(ImportError, match=r"lightning-aca\[vision\]"):
        MNISTDataModule(root="unused", source="torchvision").setup()


def test_wiring_with_a_small_fake_torchvision(monkeypatch, tmp_path):
    calls = []

    class FakeMNIST(TensorDataset):
        def __init__(self, root, train, download, transform):
            calls.append((root, train, download))
            n = 60 if train else 20
            super().__init__(torch.rand(n, 1, 28, 28), torch.arange(n) % 10)
            self.targets = self.tensors[1]

    fake = types.ModuleType("torchvision")
    fake.datasets = types.SimpleNamespace(MNIST=FakeMNIST)
    fake.transforms = types.SimpleNamespace(ToTensor=lambda: None)
    monkeypatch.setitem(sys.modules, "torchvision", fake)
    dm = CollectiveDataModule(
        SignalPlanting(PixelPatch(3), target_class=7),
        0.1,
        datamodule=MNISTDataModule(root=str(tmp_path), batch_size=8, source="torchvision"),
    )
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.train_dataset.members) == 6 and len(dm.signal_test_dataset) == 18
    assert calls[0] == (str(tmp_path), True, True) and calls[1][1] is False
    assert next(iter(dm.train_dataloader()))[0].shape == (8, 1, 28, 28)
    with pytest.raises(ValueError, match="name must be one of"):
        TorchvisionDataModule(name="imagenet")


def test_mnist_and_cifar10_are_classes_sharing_the_in_memory_loaders():
    for cls, name in ((MNISTDataModule, "mnist"), (CIFAR10DataModule, "cifar10")):
        dm = cls(root="unused", batch_size=16, num_workers=0)
        assert isinstance(cls, type) and issubclass(cls, TorchvisionDataModule) and isinstance(dm, InMemoryDataModule)
        assert (dm.name, dm.root, dm.batch_size, dm.num_classes) == (name, "unused", 16, 10)
    with pytest.raises(TypeError, match="batch_size must be a positive int"):
        MNISTDataModule(batch_size=True)


def test_in_memory_decodes_each_split_once_into_tensors_the_stacked_engine_reads(monkeypatch, tmp_path):
    from lightning_aca.stacked.data import tensors_of

    decoded = []

    class FakeCIFAR10(torch.utils.data.Dataset):
        def __init__(self, root, train, download, transform):
            self.n = 50 if train else 20

        def __len__(self):
            return self.n

        def __getitem__(self, i):
            decoded.append(i)
            return torch.full((3, 32, 32), i / 100), i % 10

    fake = types.ModuleType("torchvision")
    fake.datasets = types.SimpleNamespace(CIFAR10=FakeCIFAR10)
    fake.transforms = types.SimpleNamespace(ToTensor=lambda: None)
    monkeypatch.setitem(sys.modules, "torchvision", fake)
    dm = CIFAR10DataModule(root=str(tmp_path), batch_size=8, in_memory=True)
    dm.setup("fit")
    assert isinstance(dm.train_dataset, TensorDataset) and len(decoded) == 70
    x, y = dm.train_dataset.tensors
    assert x.shape == (50, 3, 32, 32) and y.dtype == torch.int64 and float(x[7, 0, 0, 0]) == pytest.approx(0.07)
    data = tensors_of(dm)
    assert (data.n, data.batches, len(data.y_test)) == (50, 7, 20) and len(decoded) == 70
    with pytest.raises(TypeError, match="in_memory must be True or False"):
        CIFAR10DataModule(in_memory="yes")
