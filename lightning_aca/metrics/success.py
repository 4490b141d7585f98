"""``CollectiveSuccess`` and ``SignalErasureSuccess``: the collective's success as torchmetrics."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from lightning_aca.metrics.functional import agreement_hits, success_hits
from lightning_aca.validation import non_negative_int, positive_int


class _Fraction(Metric):
    """hits / total, summed across batches and processes."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    plot_lower_bound = 0.0
    plot_upper_bound = 1.0

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("hits", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def _count(self, hits: Tensor) -> None:
        self.hits += hits.sum()
        self.total += hits.numel()

    def compute(self) -> Tensor:
        if self.total == 0:
            return torch.tensor(float("nan"), device=self.hits.device)
        return self.hits.float() / self.total

    def plot(self, val: Tensor | list[Tensor] | None = None, ax: Any = None) -> Any:
        """Plot the value (or a sequence of values) with torchmetrics' plotting."""
        return self._plot(val, ax)


class CollectiveSuccess(_Fraction):
    """S(α): fraction of signal-carrying evaluation inputs predicted as the success label.

    Hardt et al. 2023, §3: S(α) = Pr_{x∼P₀}[f(g(x)) = y*], estimated on held-out inputs whose
    true label is not y* (a :class:`SignalEvaluationDataset` excludes them). Give
    ``target_class=y*`` to count predictions of y*, or pass per-input success labels to
    :meth:`update`.

    Args:
        target_class: the class y*; ``None`` to take the success labels from each ``update``.
        top_k: count a success when the label is among the top-k scores (logits needed).

    Example:
        >>> metric = CollectiveSuccess(target_class=0)
        >>> metric.update(torch.tensor([[2.0, 1.0], [0.0, 3.0]]))
        >>> metric.update(torch.tensor([0, 0]))
        >>> metric.compute()
        tensor(0.7500)
    """

    def __init__(self, target_class: int | None = None, top_k: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target_class = None if target_class is None else non_negative_int("target_class", target_class)
        self.top_k = positive_int("top_k", top_k)

    def update(self, preds: Tensor, success_labels: Tensor | None = None) -> None:
        """Count a batch: ``preds`` are logits/probabilities ``(N, C)`` or labels ``(N,)``."""
        if success_labels is None:
            if self.target_class is None:
                raise ValueError(
                    "CollectiveSuccess(target_class=None) needs success_labels in update(preds, success_labels)."
                )
            success_labels = self.target_class
        self._count(success_hits(preds, success_labels, self.top_k))


class SignalErasureSuccess(_Fraction):
    """Erasure success: fraction of inputs with f(g(x)) = f(x) (Hardt et al. 2023, §3).

    The erasing collective wants the classifier to ignore the signal; this counts agreement of
    the prediction on the signal-carrying input with the prediction on the same clean input.
    (Agreement with the true label instead is :class:`CollectiveSuccess` over a
    ``SignalErasing`` evaluation set.)

    Example:
        >>> metric = SignalErasureSuccess()
        >>> metric.update(torch.tensor([1, 2, 3, 4]), torch.tensor([1, 2, 0, 4]))
        >>> metric.compute()
        tensor(0.7500)
    """

    def update(self, preds_signal: Tensor, preds_clean: Tensor) -> None:
        """Count a batch of predictions on g(x) and on x (logits or labels)."""
        self._count(agreement_hits(preds_signal, preds_clean))
