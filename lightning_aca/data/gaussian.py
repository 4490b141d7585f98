"""A tabular synthetic set: Gaussian classes in a box, for experiments with linear models.

Small, offline and of any size, with features of known range: the setting in which the
gradient strategies (Hardt et al. 2023, §4–5) have
thresholds that can be computed by hand. Class ``k`` has mean ``(separation / 2)·(cos 2πk/K,
sin 2πk/K, 0, …)`` (for two classes: ``±(separation / 2)·e₁``); features are the mean plus
``noise``·N(0, I), clipped to ``[-bound, bound]``.
"""

from __future__ import annotations

import math

import torch

from lightning_aca.data.in_memory import _NoisyClassesDataModule
from lightning_aca.validation import non_negative_real, positive_int, positive_real


def gaussian_class_means(num_classes: int, num_features: int, separation: float) -> torch.Tensor:
    """Class means ``(K, d)``: K points evenly spaced on a circle of radius ``separation / 2`` in the first two features.

    Example:
        >>> gaussian_class_means(2, 3, separation=2.0).tolist()
        [[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]]
    """
    angles = 2 * math.pi * torch.arange(num_classes, dtype=torch.float64) / num_classes
    means = torch.zeros(num_classes, num_features, dtype=torch.float64)
    means[:, 0] = torch.cos(angles)
    if num_features > 1:
        means[:, 1] = torch.sin(angles)
    # cos(π) and sin(π) are ±1e-16 in floating point; exact zeros keep the geometry readable
    means[means.abs() < 1e-12] = 0.0
    return (separation / 2 * means).float()


class GaussianDataModule(_NoisyClassesDataModule):
    """Gaussian classes: y uniform over K classes, x = clip(μ_y + noise·ε, −bound, bound), ε ~ N(0, I).

    Validation serves the test set. Items are ``(x, y)``: ``x`` a float vector of ``num_features``,
    ``y`` an int64 class index.

    Args:
        n_train, n_test: number of training and test points.
        num_features: d, the input dimension (≥ 2 when there are more than two classes).
        num_classes: K ≥ 2.
        separation: distance between the means of two classes on opposite sides of the circle.
        noise: standard deviation of every feature around the class mean (> 0).
        bound: features are clipped to ``[-bound, bound]`` (> 0), the box members' points stay in.
        seed: seed of the generator that draws both sets.
        batch_size: loader batch size.

    Example:
        >>> dm = GaussianDataModule(n_train=100, n_test=20, num_features=3)
        >>> dm.setup()
        >>> tuple(dm.train_dataset.tensors[0].shape), len(dm.test_dataset)
        ((100, 3), 20)
    """

    def __init__(
        self,
        n_train: int = 2000,
        n_test: int = 1000,
        num_features: int = 2,
        num_classes: int = 2,
        separation: float = 2.0,
        noise: float = 1.0,
        bound: float = 4.0,
        seed: int = 0,
        batch_size: int = 64,
    ) -> None:
        super().__init__(n_train, n_test, num_classes, positive_real("noise", noise), seed, batch_size)
        self.num_features = positive_int("num_features", num_features)
        self.input_shape = (self.num_features,)
        if self.num_classes > 2 and self.num_features < 2:
            raise ValueError(
                f"num_features={num_features} cannot hold {num_classes} class means on a circle; use num_features >= 2."
            )
        self.separation = non_negative_real("separation", separation)
        self.bound = positive_real("bound", bound)

    @property
    def feature_bounds(self) -> tuple[float, float]:
        """The box ``(-bound, bound)`` every feature lies in."""
        return (-self.bound, self.bound)

    _value_range = feature_bounds

    def class_centers(self, generator: torch.Generator) -> torch.Tensor:
        """The class means (:func:`gaussian_class_means`); ``generator`` is not drawn from."""
        return gaussian_class_means(self.num_classes, self.num_features, self.separation)
