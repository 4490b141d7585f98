"""``InMemoryDataModule``: the shape the built-in sources share (datasets built once; shared loaders)."""

from __future__ import annotations

from abc import abstractmethod

import lightning as L
from torch.utils.data import DataLoader, Dataset

from lightning_aca.validation import non_negative_int, positive_int


class InMemoryDataModule(L.LightningDataModule):
    """Datasets built once by :meth:`build` and held by the module, served by one set of loaders.

    :meth:`build` returns ``(train, test)``, in which case validation serves the test set, or
    ``(train, val, test)``. The datasets themselves may read their items lazily (from disk).

    Args:
        batch_size: training and evaluation batch size.
        num_workers: DataLoader workers.
    """

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
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_dataset, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_dataset)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_dataset)
