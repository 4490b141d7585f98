"""Colored MNIST: real MNIST-5k digits whose stroke colour spuriously predicts the label.

Arjovsky, Bottou, Gulrajani, Lopez-Paz, "Invariant Risk Minimization", 2019, §5.1 (Colored
MNIST): y says whether the digit is ≥ 5 and the digit is drawn red or green, the colour agreeing
with y far more often in training than at test. Here the split follows Waterbirds (Sagawa et al.
2020, §2.1): the colour agrees with y for exactly ``correlation`` of each training class and for
half of each test class, with one group per (y, colour).
"""

from __future__ import annotations

from torch import Tensor

from lightning_aca.data.mnist5k import load_mnist5k_tensors
from lightning_aca.data.spurious import SpuriousDataModule


class ColoredMNISTDataModule(SpuriousDataModule):
    """MNIST-5k digits drawn in red or green, the colour agreeing with the label in training.

    Label y = 1 if the digit is ≥ 5, else 0. Attribute a is the stroke colour: the grey digit
    becomes the red channel (a = 0) or the green channel (a = 1) of a ``3×28×28`` image in
    [0, 1], the other channels black. In the training split a = y for exactly
    ``round(correlation · n_y)`` points of each class y (drawn by ``seed``); in the test split
    for half of each class. Items are ``(x, y, group)`` with group = 2·y + a: 0 small red,
    1 small green, 2 large red, 3 large green. ``label_noise=0.25`` is Arjovsky et al.'s
    variant: a quarter of each split's labels flipped before the colours are drawn.

    Args:
        correlation: fraction of training points with a = y, in [0, 1].
        batch_size: training and evaluation batch size.
        test_fraction: fraction of the 5,000 digits held out (stratified by digit); the
            validation loader serves the test split.
        split_seed: seed of the train/test split.
        seed: seed of the label flips and the colour assignment.
        label_noise: fraction of each split's labels flipped, in [0, 1] (Arjovsky et al.: 0.25).
        path: a local copy of ``mnist_5k.csv.gz``; ``None`` reads the shipped file.
        num_workers: DataLoader workers.

    Example:
        >>> dm = ColoredMNISTDataModule()
        >>> dm.group_counts("train").tolist(), dm.group_counts("test").tolist()
        ([1900, 100, 100, 1900], [250, 250, 250, 250])
        >>> tuple(dm.train_dataset[0][0].shape)
        (3, 28, 28)
    """

    input_shape = (3, 28, 28)

    def __init__(
        self,
        correlation: float = 0.95,
        batch_size: int = 64,
        test_fraction: float = 0.2,
        split_seed: int = 0,
        seed: int = 0,
        label_noise: float = 0.0,
        path: str | None = None,
        num_workers: int = 0,
    ) -> None:
        super().__init__(correlation, batch_size, test_fraction, split_seed, seed, label_noise, num_workers)
        self.path = path

    def digits(self) -> tuple[Tensor, Tensor]:
        return load_mnist5k_tensors(self.path)

    def render(self, images: Tensor, attribute: Tensor) -> Tensor:
        colored = images.new_zeros(len(images), 3, *images.shape[2:])
        colored[attribute == 0, 0] = images[attribute == 0, 0]
        colored[attribute == 1, 1] = images[attribute == 1, 0]
        return colored
