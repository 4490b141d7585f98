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

    Arguments as :class:`~lightning_aca.data.in_memory.SplitImagesDataModule`, of which it keeps the
    defaults (a quarter of the 1,797 digits held out); ``flatten`` yields 64-dim vectors.

    Example:
        >>> dm = DigitsDataModule()
        >>> dm.setup("fit")
        >>> len(dm.train_dataset), len(dm.test_dataset), tuple(dm.train_dataset[0][0].shape)
        (1347, 450, (1, 8, 8))
    """

    num_classes = 10
    image_shape = (1, 8, 8)

    def load(self) -> tuple[torch.Tensor, torch.Tensor]:
        return load_digits_tensors()
