"""Colored MNIST: real MNIST-5k digits whose stroke colour spuriously predicts the label.

Arjovsky, Bottou, Gulrajani, Lopez-Paz, "Invariant Risk Minimization", 2019, §5.1 (Colored
MNIST): y says whether the digit is ≥ 5 and the digit is drawn red or green, the colour agreeing
with y far more often in training than at test. Here the split follows Waterbirds (Sagawa et al.
2020, §2.1), as every :class:`~lightning_aca.data.spurious.SpuriousDataModule` does.
"""

from __future__ import annotations

from torch import Tensor

from lightning_aca.data.mnist5k import load_mnist5k_tensors
from lightning_aca.data.spurious import SpuriousDataModule


class ColoredMNISTDataModule(SpuriousDataModule):
    """MNIST-5k digits drawn in red or green, the colour agreeing with the label in training.

    :class:`~lightning_aca.data.spurious.SpuriousDataModule` on MNIST-5k, a the stroke colour:
    the grey digit becomes the red channel (a = 0) or the green channel (a = 1) of a ``3×28×28``
    image in [0, 1], the other channels black. Groups: 0 small red, 1 small green, 2 large red,
    3 large green. ``label_noise=0.25`` is Arjovsky et al.'s variant. ``path`` is a local copy of
    ``mnist_5k.csv.gz`` (``None`` reads the shipped file); the other arguments are the base's.

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
