"""The embedded default data: scikit-learn's bundled handwritten digits (no download).

1,797 real 8×8 grey-scale digits (UCI optical recognition of handwritten digits), shipped with
scikit-learn. Images are ``1×8×8`` float tensors in [0, 1]; labels are int64 class indices 0–9.
"""

from __future__ import annotations

import functools

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset


@functools.lru_cache(maxsize=1)
def load_digits_tensors() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits as ``(images (N, 1, 8, 8) in [0, 1], labels (N,) int64)``.

    Read once per process (an in-process sweep reuses them); callers index, never write, them.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    return images, torch.as_tensor(bunch.target, dtype=torch.long)


class DigitsDataModule(L.LightningDataModule):
    """scikit-learn's digits as a LightningDataModule with a fixed stratified split.

    Args:
        batch_size: training and evaluation batch size.
        test_fraction: fraction of the 1,797 digits held out for testing (stratified by class).
        val_fraction: fraction of the remaining points held out for validation; with 0 the
            validation loader serves the test split (no model selection happens on it).
        split_seed: seed of the stratified split; the same seed gives the same split.
        flatten: yield 64-dim vectors instead of ``1×8×8`` images.
        num_workers: DataLoader workers.

    Example:
        >>> dm = DigitsDataModule()
        >>> dm.setup("fit")
        >>> len(dm.train_dataset), len(dm.test_dataset), tuple(dm.train_dataset[0][0].shape)
        (1347, 450, (1, 8, 8))
    """

    num_classes = 10

    def __init__(
        self,
        batch_size: int = 64,
        test_fraction: float = 0.25,
        val_fraction: float = 0.0,
        split_seed: int = 0,
        flatten: bool = False,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}.")
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}.")
        self.batch_size = batch_size
        self.test_fraction = test_fraction
        self.val_fraction = val_fraction
        self.split_seed = split_seed
        self.flatten = flatten
        self.num_workers = num_workers
        self.train_dataset: TensorDataset | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (64,) if self.flatten else (1, 8, 8)

    def setup(self, stage: str | None = None) -> None:
        if self.train_dataset is not None:
            return
        from sklearn.model_selection import train_test_split

        images, labels = load_digits_tensors()
        if self.flatten:
            images = images.flatten(1)
        index = torch.arange(len(labels)).numpy()
        train_idx, test_idx = train_test_split(
            index, test_size=self.test_fraction, stratify=labels.numpy(), random_state=self.split_seed
        )
        val_idx = test_idx
        if self.val_fraction > 0:
            train_idx, val_idx = train_test_split(
                train_idx, test_size=self.val_fraction, stratify=labels[train_idx].numpy(), random_state=self.split_seed
            )
        train_idx, val_idx, test_idx = (torch.as_tensor(sorted(i)) for i in (train_idx, val_idx, test_idx))
        self.train_dataset = TensorDataset(images[train_idx], labels[train_idx])
        self.val_dataset = TensorDataset(images[val_idx], labels[val_idx])
        self.test_dataset = TensorDataset(images[test_idx], labels[test_idx])

    def _loader(self, dataset: TensorDataset, shuffle: bool) -> DataLoader:
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_dataset, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_dataset, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_dataset, shuffle=False)
