"""``InMemoryDataModule``: the shape the built-in sources share (datasets built once; shared loaders)."""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from lightning_aca.data.split import stratified_split
from lightning_aca.validation import flag, integer, non_negative_int, positive_int, real


class InMemoryDataModule(L.LightningDataModule):
    """Datasets built once by :meth:`build` and held by the module, served by one set of loaders.

    :meth:`build` returns ``(train, test)``, in which case validation serves the test set, or
    ``(train, val, test)``. The datasets themselves may read their items lazily (from disk).

    Args:
        batch_size: training and evaluation batch size.
        num_workers: DataLoader workers.
    """

    #: the loaders' collate function; ``None`` is torch's default
    collate: Callable[[list[Any]], Any] | None = None

    def __init__(self, batch_size: int, num_workers: int = 0) -> None:
        super().__init__()
        self.batch_size = positive_int("batch_size", batch_size)
        self.num_workers = non_negative_int("num_workers", num_workers)
        self.train_dataset: Dataset | None = None
        self.val_dataset: Dataset | None = None
        self.test_dataset: Dataset | None = None

    @abstractmethod
    def build(self) -> tuple[Dataset, Dataset] | tuple[Dataset, Dataset, Dataset]:
        """``(train, test)`` or ``(train, val, test)``, built deterministically from the module's arguments."""

    def setup(self, stage: str | None = None) -> None:
        if self.train_dataset is None:
            datasets = self.build()
            self.train_dataset, self.test_dataset = datasets[0], datasets[-1]
            self.val_dataset = datasets[1] if len(datasets) == 3 else self.test_dataset

    def _loader(self, dataset: Dataset, shuffle: bool = False) -> DataLoader:
        return DataLoader(
            dataset, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers, collate_fn=self.collate
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_dataset, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_dataset)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_dataset)


class _NoisyClassesDataModule(InMemoryDataModule):
    """x = clip(center[y] + noise·ε, low, high), ε ~ N(0, I), y uniform over the classes.

    The class centers come first from one generator seeded by ``seed``, then the training set,
    then the test set. Subclasses give :meth:`class_centers` and the clip range ``_value_range``
    ``(low, high)``, and check ``noise`` (whether 0 is allowed is theirs to say).
    """

    _value_range: tuple[float, float]

    def __init__(self, n_train: int, n_test: int, num_classes: int, noise: float, seed: int, batch_size: int) -> None:
        super().__init__(batch_size)
        self.n_train, self.n_test = positive_int("n_train", n_train), positive_int("n_test", n_test)
        self.num_classes = integer("num_classes", num_classes, low=2, kind="an int >= 2")
        self.noise = noise
        self.seed = non_negative_int("seed", seed)

    @abstractmethod
    def class_centers(self, generator: torch.Generator) -> torch.Tensor:
        """``(num_classes, *input_shape)``: the noiseless input of each class."""

    def _sample(self, n: int, centers: torch.Tensor, generator: torch.Generator) -> TensorDataset:
        y = torch.randint(self.num_classes, (n,), generator=generator)
        x = centers[y] + self.noise * torch.randn(n, *centers.shape[1:], generator=generator)
        return TensorDataset(x.clamp(*self._value_range), y)

    def build(self) -> tuple[TensorDataset, TensorDataset]:
        generator = torch.Generator().manual_seed(self.seed)
        centers = self.class_centers(generator)
        return self._sample(self.n_train, centers, generator), self._sample(self.n_test, centers, generator)


class SplitImagesDataModule(InMemoryDataModule):
    """Images loaded whole by :meth:`load` and split once into train, validation and test, stratified by class.

    Args:
        batch_size: training and evaluation batch size.
        test_fraction: fraction of the images held out for testing (stratified by class).
        val_fraction: fraction of the remaining images held out for validation; with 0 the
            validation loader serves the test split (no model selection happens on it).
        split_seed: seed of the stratified split; the same seed gives the same split.
        flatten: yield flat vectors instead of images shaped :attr:`image_shape`.
        num_workers: DataLoader workers.
    """

    #: ``(C, H, W)`` of one image
    image_shape: tuple[int, ...]

    def __init__(
        self,
        batch_size: int = 64,
        test_fraction: float = 0.25,
        val_fraction: float = 0.0,
        split_seed: int = 0,
        flatten: bool = False,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size, num_workers)
        self.test_fraction = real("test_fraction", test_fraction, low=0, high=1, low_open=True, high_open=True)
        self.val_fraction = real("val_fraction", val_fraction, low=0, high=1, high_open=True)
        self.split_seed = non_negative_int("split_seed", split_seed)
        self.flatten = flag("flatten", flatten)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (math.prod(self.image_shape),) if self.flatten else self.image_shape

    @abstractmethod
    def load(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All ``(images (N, *image_shape), labels (N,) int64)``; callers index, never write, them."""

    def build(self) -> tuple[TensorDataset, TensorDataset, TensorDataset]:
        images, labels = self.load()
        if self.flatten:
            images = images.flatten(1)
        train, val, test = stratified_split(labels, self.test_fraction, self.val_fraction, self.split_seed)
        test_set = TensorDataset(images[test], labels[test])
        val_set = test_set if val is None else TensorDataset(images[val], labels[val])
        return TensorDataset(images[train], labels[train]), val_set, test_set
