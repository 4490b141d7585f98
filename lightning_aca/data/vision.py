"""MNIST and CIFAR-10 through torchvision (optional extra ``vision``; downloads on first use).

Used for the paper reproductions on users' machines (the DP-SGD proof of concept on MNIST in
Solanki et al. 2025). Images are float tensors in [0, 1] (``ToTensor``), labels int64.
"""

from __future__ import annotations

from typing import Any

from torch.utils.data import Dataset

from lightning_aca.data.in_memory import InMemoryDataModule
from lightning_aca.validation import one_of

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


class TorchvisionDataModule(InMemoryDataModule):
    """A torchvision classification dataset (train/test splits) as a LightningDataModule.

    Validation serves the test split.

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
        super().__init__(batch_size, num_workers)
        self.name = one_of("name", name, sorted(_DATASETS))
        self.root, self.download = root, download

    def _make(self, train: bool) -> Dataset:
        tv = _torchvision()
        cls = getattr(tv.datasets, _DATASETS[self.name])
        return cls(self.root, train=train, download=self.download, transform=tv.transforms.ToTensor())

    def prepare_data(self) -> None:
        self._make(train=True)
        self._make(train=False)

    def build(self) -> tuple[Dataset, Dataset]:
        return self._make(train=True), self._make(train=False)


class MNISTDataModule(TorchvisionDataModule):
    """MNIST (60k/10k 1×28×28 digits) via torchvision."""

    def __init__(self, root: str = "data", download: bool = True, batch_size: int = 128, num_workers: int = 0) -> None:
        super().__init__("mnist", root, download, batch_size, num_workers)


class CIFAR10DataModule(TorchvisionDataModule):
    """CIFAR-10 (50k/10k 3×32×32 images) via torchvision."""

    def __init__(self, root: str = "data", download: bool = True, batch_size: int = 128, num_workers: int = 0) -> None:
        super().__init__("cifar10", root, download, batch_size, num_workers)
