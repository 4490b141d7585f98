"""A synthetic image classification set: Gaussian noise around one prototype image per class.

Offline and of any size, for quick sweeps and tests beside the embedded digits. Images are
``1×H×W`` in [0, 1]; class prototypes are smooth random images fixed by ``seed``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from lightning_aca.data.in_memory import _NoisyClassesDataModule
from lightning_aca.validation import non_negative_real, positive_int


class SyntheticDataModule(_NoisyClassesDataModule):
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
        super().__init__(n_train, n_test, num_classes, non_negative_real("noise", noise), seed, batch_size)
        self.image_shape = tuple(positive_int("image_shape", side) for side in image_shape)
        self.input_shape = (1, *self.image_shape)

    _value_range = (0.0, 1.0)

    def class_centers(self, generator: torch.Generator) -> torch.Tensor:
        """Smooth random prototypes ``(num_classes, 1, H, W)``: 4×4 uniform noise, bilinearly upsampled."""
        coarse = torch.rand(self.num_classes, 1, 4, 4, generator=generator)
        return F.interpolate(coarse, size=self.image_shape, mode="bilinear", align_corners=False)
