"""MNIST and CIFAR-10 through torchvision (optional extra ``vision``; downloads on first use).

Used for the paper reproductions on users' machines. :class:`~lightning_aca.data.mnist.MNISTDataModule`
reads MNIST offline by default and downloads it through this module on request. Images are float
tensors in [0, 1] (``ToTensor``), labels int64.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from lightning_aca.data.in_memory import InMemoryDataModule
from lightning_aca.validation import flag, one_of

_DATASETS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR10"}
_SHAPES = {"mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28), "cifar10": (3, 32, 32)}


def _torchvision() -> Any:
    try:
        import torchvision
    except ImportError as err:
        raise ImportError(
            "MNIST/CIFAR-10 need torchvision, which is not installed: pip install 'lightning-aca[vision]'. "
            "The embedded DigitsDataModule needs no extra."
        ) from err
    return torchvision


def _as_tensors(dataset: Dataset) -> TensorDataset:
    """Every ``(image, label)`` of ``dataset`` decoded once, as ``(float images, int64 labels)`` tensors."""
    images, labels = zip(*DataLoader(dataset, batch_size=1024), strict=True)
    return TensorDataset(torch.cat(images), torch.cat(labels).long())


class TorchvisionDataModule(InMemoryDataModule):
    """A torchvision classification dataset (train/test splits) as a LightningDataModule.

    Validation serves the test split.

    Args:
        name: ``"mnist"``, ``"fashion_mnist"`` or ``"cifar10"``.
        root: download/cache directory.
        download: download if absent.
        batch_size, num_workers: loader settings.
        in_memory: decode every image once into one float tensor (a ``TensorDataset``: what the
            stacked launcher trains on; MNIST takes 188 MB, CIFAR-10 614 MB) instead of decoding
            each item on every epoch.
    """

    num_classes = 10

    def __init__(
        self,
        name: str = "mnist",
        root: str = "data",
        download: bool = True,
        batch_size: int = 128,
        num_workers: int = 0,
        in_memory: bool = False,
    ) -> None:
        super().__init__(batch_size, num_workers)
        self.name = one_of("name", name, sorted(_DATASETS))
        self.root, self.download = root, download
        self.in_memory = flag("in_memory", in_memory)
        self.input_shape = _SHAPES[self.name]

    def _make(self, train: bool) -> Dataset:
        tv = _torchvision()
        cls = getattr(tv.datasets, _DATASETS[self.name])
        return cls(self.root, train=train, download=self.download, transform=tv.transforms.ToTensor())

    def prepare_data(self) -> None:
        self._make(train=True)
        self._make(train=False)

    def build(self) -> tuple[Dataset, Dataset]:
        train, test = self._make(train=True), self._make(train=False)
        return (_as_tensors(train), _as_tensors(test)) if self.in_memory else (train, test)


class CIFAR10DataModule(TorchvisionDataModule):
    """CIFAR-10 (50k/10k 3×32×32 images) via torchvision."""

    __init__ = functools.partialmethod(TorchvisionDataModule.__init__, "cifar10")
