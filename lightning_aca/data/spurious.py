"""A Waterbirds-like spurious-correlation set built offline from scikit-learn's digits.

Sagawa, Koh, Hashimoto, Liang, "Distributionally Robust Neural Networks for Group Shifts", ICLR
2020, §2.1 and Appendix C.1 (Waterbirds): a label y, a visible attribute a (the background) that
agrees with y for 95% of each class in training, test sets with each class split equally between
the two backgrounds, and m = |A|·|Y| groups, one per (y, a). Here y says whether the digit is
≥ 5 and a switches a grey background on.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.utils.data import TensorDataset

from lightning_aca.data.digits import load_digits_tensors
from lightning_aca.data.in_memory import InMemoryDataModule
from lightning_aca.validation import fraction, non_negative_int, one_of, real


def _agreeing_attribute(labels: Tensor, agreement: float, generator: torch.Generator) -> Tensor:
    """Binary attribute with exactly round(agreement · n_y) points of each class y having a = y."""
    attribute = 1 - labels
    for y in (0, 1):
        index = (labels == y).nonzero().squeeze(1)
        chosen = index[torch.randperm(len(index), generator=generator)[: round(agreement * len(index))]]
        attribute[chosen] = y
    return attribute


class SpuriousDigitsDataModule(InMemoryDataModule):
    """Digits with a background that spuriously predicts the label: Waterbirds in 8×8 pixels.

    Label y = 1 if the digit is ≥ 5, else 0. Attribute a = 1 means "background on": every pixel
    is raised by ``background`` and clipped to [0, 1]. In the training split, a = y for exactly
    ``round(correlation · n_y)`` points of each class y (drawn by ``seed``), and a ≠ y for the
    rest; in the test split a = y for half of each class, so a carries no information about y.
    Items are ``(x, y, group)`` with x a ``1×8×8`` float tensor in [0, 1], and group = 2·y + a
    (Sagawa et al. 2020, §2.1: one group per (y, a)): 0 small digit on no background, 1 small
    digit on background, 2 large digit on no background, 3 large digit on background.

    Args:
        correlation: fraction of training points with a = y, in [0, 1] (Waterbirds: 0.95).
        batch_size: training and evaluation batch size.
        test_fraction: fraction of the 1,797 digits held out (stratified by digit); the
            validation loader serves the test split.
        split_seed: seed of the train/test split.
        seed: seed of the attribute assignment.
        background: brightness added to every pixel of a point with a = 1, in [0, 1].

    Example:
        >>> dm = SpuriousDigitsDataModule(correlation=0.9)
        >>> dm.setup("fit")
        >>> x, y, group = dm.train_dataset[0]
        >>> tuple(x.shape), y.dtype, group.dtype
        ((1, 8, 8), torch.int64, torch.int64)
        >>> dm.group_counts("train").tolist(), dm.group_counts("test").tolist()
        ([608, 67, 67, 605], [113, 113, 112, 112])
    """

    num_classes = 2
    num_groups = 4
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
        super().__init__(batch_size)
        self.correlation = fraction("correlation", correlation)
        self.test_fraction = real("test_fraction", test_fraction, low=0, high=1, low_open=True, high_open=True)
        self.split_seed = non_negative_int("split_seed", split_seed)
        self.seed = non_negative_int("seed", seed)
        self.background = fraction("background", background)

    def build(self) -> tuple[TensorDataset, TensorDataset]:
        from sklearn.model_selection import train_test_split

        images, digits = load_digits_tensors()
        train_idx, test_idx = train_test_split(
            torch.arange(len(digits)).numpy(),
            test_size=self.test_fraction,
            stratify=digits.numpy(),
            random_state=self.split_seed,
        )
        generator = torch.Generator().manual_seed(self.seed)
        train = self._split(images, digits, sorted(train_idx), self.correlation, generator)
        return train, self._split(images, digits, sorted(test_idx), 0.5, generator)

    def _split(
        self, images: Tensor, digits: Tensor, index: list[int], agreement: float, generator: torch.Generator
    ) -> TensorDataset:
        index = torch.as_tensor(index)
        labels = (digits[index] >= 5).long()
        attribute = _agreeing_attribute(labels, agreement, generator)
        x = images[index] + self.background * attribute.view(-1, 1, 1, 1).float()
        return TensorDataset(x.clamp(0.0, 1.0), labels, 2 * labels + attribute)

    def group_counts(self, split: str = "train") -> Tensor:
        """Points per group ``(4,)`` of the ``"train"`` or ``"test"`` split."""
        one_of("split", split, ("train", "test"))
        self.setup()
        dataset = self.train_dataset if split == "train" else self.test_dataset
        return torch.bincount(dataset.tensors[2], minlength=self.num_groups)


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
