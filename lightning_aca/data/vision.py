"""MNIST and CIFAR-10 through torchvision (optional extra ``vision``; downloads on first use).

Used for the paper reproductions on users' machines (the DP-SGD proof of concept on MNIST in
Solanki et al. 2025). Images are float tensors in [0, 1] (``ToTensor``), labels int64.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from torch.utils.data import DataLoader, Dataset

_DATASETS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR10"}


def _torchvision() -> Any:
    try:
        import torchvision
    except ImportError as err:
        raise ImportError(
            "MNIST/CIFAR-10 need torchvision, which is not installed: pip install 'lightning-aca[vision]'. "
            "The embedded DigitsDataModule needs no extra."
        ) from err
    return torchvision


class TorchvisionDataModule(L.LightningDataModule):
    """A torchvision classification dataset (train/test splits) as a LightningDataModule.

    Args:
        name: ``"mnist"``, ``"fashion_mnist"`` or ``"cifar10"``.
        root: download/cache directory.
        download: download if absent.
        batch_size, num_workers: loader settings.
    """

    num_classes = 10

    def __init__(
        self,
        name: str = "mnist",
        root: str = "data",
        download: bool = True,
        batch_size: int = 128,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        if name not in _DATASETS:
            raise ValueError(f"name must be one of {sorted(_DATASETS)}, got {name!r}.")
        self.name, self.root, self.download = name, root, download
        self.batch_size, self.num_workers = batch_size, num_workers
        self.train_dataset: Dataset | None = None

    def _make(self, train: bool) -> Dataset:
        tv = _torchvision()
        cls = getattr(tv.datasets, _DATASETS[self.name])
        return cls(self.root, train=train, download=self.download, transform=tv.transforms.ToTensor())

    def prepare_data(self) -> None:
        self._make(train=True)
        self._make(train=False)

    def setup(self, stage: str | None = None) -> None:
        if self.train_dataset is None:
            self.train_dataset = self._make(train=True)
            self.test_dataset = self._make(train=False)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_dataset, batch_size=self.batch_size, shuffle=True, num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return self.test_dataloader()

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.test_dataset, batch_size=self.batch_size, num_workers=self.num_workers)


def MNISTDataModule(**kwargs: Any) -> TorchvisionDataModule:
    """MNIST (60k/10k 1×28×28 digits) via torchvision."""
    return TorchvisionDataModule(name="mnist", **kwargs)


def CIFAR10DataModule(**kwargs: Any) -> TorchvisionDataModule:
    """CIFAR-10 (50k/10k 3×32×32 images) via torchvision."""
    return TorchvisionDataModule(name="cifar10", **kwargs)
