"""``InMemoryDataModule``: the shape the built-in offline sources share (built once; validation = test)."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import lightning as L
from torch.utils.data import DataLoader, Dataset


def check_positive_int(name: str, value: Any) -> int:
    """``value`` if it is an int ≥ 1 (not a bool), else a ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}.")
    return value


class InMemoryDataModule(L.LightningDataModule):
    """Train and test sets built once by :meth:`build`, in memory; the test set is also the validation set."""

    def __init__(self, batch_size: int) -> None:
        super().__init__()
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.train_dataset: Dataset | None = None
        self.test_dataset: Dataset | None = None

    @abstractmethod
    def build(self) -> tuple[Dataset, Dataset]:
        """The (train, test) datasets, built deterministically from the module's arguments."""

    @property
    def val_dataset(self) -> Dataset | None:
        return self.test_dataset

    def setup(self, stage: str | None = None) -> None:
        if self.train_dataset is None:
            self.train_dataset, self.test_dataset = self.build()

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_dataset, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.test_dataloader()

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.test_dataset, batch_size=self.batch_size)
