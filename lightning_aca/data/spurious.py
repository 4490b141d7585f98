"""Waterbirds-like spurious-correlation sets built offline from digits, and the digits-in-8×8 one.

Sagawa, Koh, Hashimoto, Liang, "Distributionally Robust Neural Networks for Group Shifts", ICLR
2020, §2.1 and Appendix C.1 (Waterbirds): a label y, a visible attribute a (the background) that
agrees with y for 95% of each class in training, test sets with each class split equally between
the two backgrounds, and m = |A|·|Y| groups, one per (y, a).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.utils.data import TensorDataset

from lightning_aca.data.digits import load_digits_tensors
from lightning_aca.data.in_memory import InMemoryDataModule
from lightning_aca.data.split import stratified_split
from lightning_aca.validation import fraction, non_negative_int, one_of, real


def agreeing_attribute(labels: Tensor, agreement: float, generator: torch.Generator) -> Tensor:
    """Binary attribute with exactly ``round(agreement · n_y)`` points of each class y having a = y.

    The points of class y with a = y are drawn by ``generator``; the others have a = 1 − y.

    Example:
        >>> a = agreeing_attribute(torch.tensor([0] * 10 + [1] * 10), 0.8, torch.Generator().manual_seed(0))
        >>> (a[:10] == 0).sum().item(), (a[10:] == 1).sum().item()
        (8, 8)
    """
    attribute = 1 - labels
    for y in (0, 1):
        index = (labels == y).nonzero().squeeze(1)
        chosen = index[torch.randperm(len(index), generator=generator)[: round(agreement * len(index))]]
        attribute[chosen] = y
    return attribute


class SpuriousDataModule(InMemoryDataModule):
    """A binary label y and a visible attribute a that agrees with y at a set rate in training only.

    Sagawa et al. 2020, §2.1 (Waterbirds): y = 1 if the source's digit is ≥ 5, else 0. In the
    training split a = y for exactly ``round(correlation · n_y)`` points of each class y (drawn
    by ``seed``) and a ≠ y for the rest; in the test split a = y for half of each class, so a
    carries no information about y. Items are ``(x, y, group)`` with group = 2·y + a, one group
    per (y, a). With ``label_noise`` > 0, ``round(label_noise · n)`` labels of each split are
    flipped before a is drawn (Arjovsky et al. 2019, Colored MNIST: 25%), so a agrees with the
    observed label and the digit's shape predicts it for only ``1 − label_noise`` of the points.

    Subclasses give the digits (:meth:`digits`) and how a shows in the image (:meth:`render`).

    Args:
        correlation: fraction of training points with a = y, in [0, 1] (Waterbirds: 0.95).
        batch_size: training and evaluation batch size.
        test_fraction: fraction of the digits held out (stratified by digit); the validation
            loader serves the test split.
        split_seed: seed of the train/test split.
        seed: seed of the label flips and the attribute assignment.
        label_noise: fraction of each split's labels flipped, in [0, 1] (Arjovsky et al.: 0.25).
        num_workers: DataLoader workers.
    """

    num_classes = 2
    num_groups = 4

    def __init__(
        self,
        correlation: float,
        batch_size: int,
        test_fraction: float,
        split_seed: int,
        seed: int,
        label_noise: float = 0.0,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size, num_workers)
        self.correlation = fraction("correlation", correlation)
        self.test_fraction = real("test_fraction", test_fraction, low=0, high=1, low_open=True, high_open=True)
        self.split_seed = non_negative_int("split_seed", split_seed)
        self.seed = non_negative_int("seed", seed)
        self.label_noise = fraction("label_noise", label_noise)

    @abstractmethod
    def digits(self) -> tuple[Tensor, Tensor]:
        """``(images, digit labels 0–9)`` of the whole source."""

    @abstractmethod
    def render(self, images: Tensor, attribute: Tensor) -> Tensor:
        """The inputs: ``images`` with the attribute ``(N,)`` made visible."""

    def split_indices(self, digits: Tensor) -> tuple[Tensor, Tensor]:
        """``(train, test)`` indices into :meth:`digits`: ``test_fraction`` held out, stratified by digit."""
        train_idx, _, test_idx = stratified_split(digits, self.test_fraction, seed=self.split_seed)
        return train_idx, test_idx

    def build(self) -> tuple[TensorDataset, TensorDataset]:
        images, digits = self.digits()
        train_idx, test_idx = self.split_indices(digits)
        generator = torch.Generator().manual_seed(self.seed)
        train = self._split(images[train_idx], digits[train_idx], self.correlation, generator)
        return train, self._split(images[test_idx], digits[test_idx], 0.5, generator)

    def _split(self, images: Tensor, digits: Tensor, agreement: float, generator: torch.Generator) -> TensorDataset:
        labels = (digits >= 5).long()
        if self.label_noise > 0:
            flipped = torch.randperm(len(labels), generator=generator)[: round(self.label_noise * len(labels))]
            labels[flipped] = 1 - labels[flipped]
        attribute = agreeing_attribute(labels, agreement, generator)
        return TensorDataset(self.render(images, attribute), labels, 2 * labels + attribute)

    def group_counts(self, split: str = "train") -> Tensor:
        """Points per group ``(4,)`` of the ``"train"`` or ``"test"`` split."""
        one_of("split", split, ("train", "test"))
        self.setup()
        dataset = self.train_dataset if split == "train" else self.test_dataset
        return torch.bincount(dataset.tensors[2], minlength=self.num_groups)


class SpuriousDigitsDataModule(SpuriousDataModule):
    """Digits with a background that spuriously predicts the label: Waterbirds in 8×8 pixels.

    :class:`SpuriousDataModule` on scikit-learn's digits (x a ``1×8×8`` float tensor in [0, 1]),
    a = 1 meaning "background on": every pixel raised by ``background`` (in [0, 1]) and clipped
    to [0, 1]. Groups: 0 small digit on no background, 1 small digit on background, 2 large digit
    on no background, 3 large digit on background. The other arguments are the base's.

    Example:
        >>> dm = SpuriousDigitsDataModule(correlation=0.9)
        >>> dm.setup("fit")
        >>> x, y, group = dm.train_dataset[0]
        >>> tuple(x.shape), y.dtype, group.dtype
        ((1, 8, 8), torch.int64, torch.int64)
        >>> dm.group_counts("train").tolist(), dm.group_counts("test").tolist()
        ([608, 67, 67, 605], [113, 113, 112, 112])
    """

    input_shape = (1, 8, 8)

    def __init__(
        self,
        correlation: float = 0.9,
        batch_size: int = 64,
        test_fraction: float = 0.25,
        split_seed: int = 0,
        seed: int = 0,
        background: float = 0.3,
    ) -> None:
        super().__init__(correlation, batch_size, test_fraction, split_seed, seed)
        self.background = fraction("background", background)

    def digits(self) -> tuple[Tensor, Tensor]:
        return load_digits_tensors()

    def render(self, images: Tensor, attribute: Tensor) -> Tensor:
        return (images + self.background * attribute.view(-1, 1, 1, 1).float()).clamp(0.0, 1.0)


def observed_groups(batch: Sequence[Tensor]) -> Tensor:
    """Groups 2·y + a of a training batch, from the labels as submitted.

    A collective may change labels (``SignalPlanting`` sets y*), while the item's group field
    still encodes the original (y, a). The firm forms groups from what it observes, so Group DRO
    on collective data should use this: ``GroupDRO(num_groups=4, groups=observed_groups)``.

    Example:
        >>> observed_groups((None, torch.tensor([0, 0]), torch.tensor([3, 0]))).tolist()
        [1, 0]
    """
    return 2 * batch[1] + batch[2] % 2
