"""The embedded default data: scikit-learn's bundled handwritten digits (no download).

1,797 real 8×8 grey-scale digits (UCI optical recognition of handwritten digits), shipped with
scikit-learn. Images are ``1×8×8`` float tensors in [0, 1]; labels are int64 class indices 0–9.
"""

from __future__ import annotations

import functools

import torch

from lightning_aca.data.in_memory import SplitImagesDataModule


@functools.lru_cache(maxsize=1)
def load_digits_tensors() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits as ``(images (N, 1, 8, 8) in [0, 1], labels (N,) int64)``.

    Read once per process (an in-process sweep reuses them); callers index, never write, them.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    return images, torch.as_tensor(bunch.target, dtype=torch.long)


class DigitsDataModule(SplitImagesDataModule):
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
    image_shape = (1, 8, 8)

    def __init__(
        self,
        batch_size: int = 64,
        test_fraction: float = 0.25,
        val_fraction: float = 0.0,
        split_seed: int = 0,
        flatten: bool = False,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size, test_fraction, val_fraction, split_seed, flatten, num_workers)

    def load(self) -> tuple[torch.Tensor, torch.Tensor]:
        return load_digits_tensors()
