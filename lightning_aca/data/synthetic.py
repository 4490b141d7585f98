"""A synthetic image classification set: Gaussian noise around one prototype image per class.

Offline and of any size, for quick sweeps and tests beside the embedded digits. Images are
``1×H×W`` in [0, 1]; class prototypes are smooth random images fixed by ``seed``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from lightning_aca.data.in_memory import InMemoryDataModule
from lightning_aca.validation import integer, non_negative_int, non_negative_real, positive_int


class SyntheticDataModule(InMemoryDataModule):
    """Noisy class prototypes: x = clip(prototype[y] + noise·ε, 0, 1), y uniform over classes.

    Example:
        >>> dm = SyntheticDataModule(n_train=100, n_test=20)
        >>> dm.setup()
        >>> tuple(dm.train_dataset[0][0].shape), len(dm.test_dataset)
        ((1, 8, 8), 20)
    """

    def __init__(
        self,
        n_train: int = 2000,
        n_test: int = 500,
        num_classes: int = 10,
        image_shape: Sequence[int] = (8, 8),
        noise: float = 0.25,
        seed: int = 0,
        batch_size: int = 64,
    ) -> None:
        super().__init__(batch_size)
        n_train, n_test = positive_int("n_train", n_train), positive_int("n_test", n_test)
        num_classes = integer("num_classes", num_classes, low=2, kind="an int >= 2")
        noise = non_negative_real("noise", noise)
        seed = non_negative_int("seed", seed)
        image_shape = tuple(positive_int("image_shape", side) for side in image_shape)
        self.n_train, self.n_test, self.num_classes = n_train, n_test, num_classes
        self.image_shape, self.noise, self.seed = tuple(image_shape), noise, seed

    def _sample(self, n: int, prototypes: torch.Tensor, g: torch.Generator) -> TensorDataset:
        y = torch.randint(self.num_classes, (n,), generator=g)
        x = prototypes[y] + self.noise * torch.randn(n, 1, *self.image_shape, generator=g)
        return TensorDataset(x.clamp(0, 1), y)

    def build(self) -> tuple[TensorDataset, TensorDataset]:
        g = torch.Generator().manual_seed(self.seed)
        coarse = torch.rand(self.num_classes, 1, 4, 4, generator=g)
        prototypes = F.interpolate(coarse, size=self.image_shape, mode="bilinear", align_corners=False)
        return self._sample(self.n_train, prototypes, g), self._sample(self.n_test, prototypes, g)
