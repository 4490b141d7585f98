"""``GroupAccuracy`` and ``WorstGroupAccuracy``: accuracy per group and of the worst group."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from lightning_aca.metrics.functional import group_correct_counts, lowest_group_accuracy
from lightning_aca.validation import positive_int


class GroupAccuracy(Metric):
    """Accuracy of each of ``num_groups`` groups, as a ``(num_groups,)`` tensor (NaN if empty).

    Groups are what Group DRO protects (Sagawa et al. 2020, §2), e.g. (label, attribute) pairs,
    or collective membership.

    Example:
        >>> metric = GroupAccuracy(num_groups=2)
        >>> metric.update(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]), torch.tensor([0, 1, 1]))
        >>> metric.compute()
        tensor([1.0000, 0.5000])
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    plot_lower_bound = 0.0
    plot_upper_bound = 1.0

    def __init__(self, num_groups: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_groups = num_groups = positive_int("num_groups", num_groups)
        self.add_state("correct", default=torch.zeros(num_groups, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", default=torch.zeros(num_groups, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: Tensor, labels: Tensor, groups: Tensor) -> None:
        """Count a batch: predictions (logits or labels), true labels and group indices."""
        correct, total = group_correct_counts(preds, labels, groups, self.num_groups)
        self.correct += correct
        self.total += total

    def compute(self) -> Tensor:
        return torch.where(self.total > 0, self.correct.float() / self.total.clamp(min=1), float("nan"))

    def plot(self, val: Tensor | None = None, ax: Any = None) -> Any:
        """Plot per-group accuracies with torchmetrics' plotting."""
        return self._plot(val, ax)


class WorstGroupAccuracy(GroupAccuracy):
    """Accuracy of the worst group among those seen (Sagawa et al. 2020, §2).

    Example:
        >>> metric = WorstGroupAccuracy(num_groups=2)
        >>> metric.update(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]), torch.tensor([0, 1, 1]))
        >>> metric.compute()
        tensor(0.5000)
    """

    def compute(self) -> Tensor:
        return lowest_group_accuracy(self.correct, self.total)
