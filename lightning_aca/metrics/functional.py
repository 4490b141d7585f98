"""Functional forms of the collective's metrics: the math, no state.

Hardt et al. 2023, §3: success of signal planting is S(α) = Pr_{x∼P₀}[f(g(x)) = y*], estimated
on held-out inputs whose true label is not y*; for erasing, the collective wants
f(g(x)) = f(x). Sagawa et al. 2020 (Group DRO) judge models by their worst group's accuracy.
``preds`` may be logits or probabilities ``(N, C)`` or predicted labels ``(N,)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from lightning_aca.runs.keys import key_names, metric_key
from lightning_aca.validation import positive_int


def predicted_labels(preds: Tensor) -> Tensor:
    """Labels from logits/probabilities ``(N, C)`` (argmax) or from labels ``(N,)`` (as is)."""
    if preds.dim() == 2:
        return preds.argmax(dim=1)
    if preds.dim() == 1 and not preds.is_floating_point():
        return preds
    raise ValueError(
        f"preds must be logits/probabilities of shape (N, C) or integer labels of shape (N,), "
        f"got dtype {preds.dtype} and shape {tuple(preds.shape)}."
    )


def success_hits(preds: Tensor, success_labels: Tensor | int, top_k: int = 1) -> Tensor:
    """Boolean ``(N,)``: whether each prediction is a success (the label is among the top-k)."""
    top_k = positive_int("top_k", top_k)
    n = preds.shape[0]
    labels = torch.as_tensor(success_labels, device=preds.device).long().expand(n)
    if top_k == 1:
        return predicted_labels(preds) == labels
    if preds.dim() != 2:
        raise ValueError(
            f"top_k={top_k} needs logits or probabilities of shape (N, C), got shape {tuple(preds.shape)}."
        )
    if top_k > preds.shape[1]:
        raise ValueError(f"top_k={top_k} exceeds the number of classes {preds.shape[1]}.")
    return (preds.topk(top_k, dim=1).indices == labels[:, None]).any(dim=1)


def collective_success(preds: Tensor, success_labels: Tensor | int, top_k: int = 1) -> Tensor:
    """S = fraction of signal-carrying evaluation inputs predicted as the success label.

    Hardt et al. 2023, §3, S(α) = Pr[f(g(x)) = y*]; pass ``success_labels=y*`` (an int) or the
    per-input labels a :class:`SignalEvaluationDataset` yields.

    Example:
        >>> collective_success(torch.tensor([0, 0, 3, 0]), 0)
        tensor(0.7500)
    """
    hits = success_hits(preds, success_labels, top_k)
    return hits.float().mean() if hits.numel() else torch.tensor(float("nan"))


def agreement_hits(preds_signal: Tensor, preds_clean: Tensor) -> Tensor:
    """Boolean ``(N,)``: whether the prediction on g(x) equals the prediction on x."""
    a, b = predicted_labels(preds_signal), predicted_labels(preds_clean)
    if a.shape != b.shape:
        raise ValueError(f"preds_signal and preds_clean must describe the same inputs, got {a.shape} and {b.shape}.")
    return a == b


def prediction_agreement(preds_signal: Tensor, preds_clean: Tensor) -> Tensor:
    """Fraction of inputs with f(g(x)) = f(x): the erasing collective's goal (Hardt et al. §3).

    Example:
        >>> prediction_agreement(torch.tensor([1, 2, 3]), torch.tensor([1, 2, 0]))
        tensor(0.6667)
    """
    return agreement_hits(preds_signal, preds_clean).float().mean()


def group_correct_counts(preds: Tensor, labels: Tensor, groups: Tensor, num_groups: int) -> tuple[Tensor, Tensor]:
    """Per-group ``(correct, total)`` counts, each of shape ``(num_groups,)``."""
    groups = groups.long()
    if groups.numel() and (groups.min() < 0 or groups.max() >= num_groups):
        raise ValueError(
            f"groups must lie in [0, {num_groups - 1}] (num_groups={num_groups}), got {groups.unique().tolist()}."
        )
    correct = (predicted_labels(preds) == labels).long()
    zeros = torch.zeros(num_groups, dtype=torch.long, device=preds.device)
    return zeros.scatter_add(0, groups, correct), zeros.scatter_add(0, groups, torch.ones_like(correct))


def worst_group_accuracy(preds: Tensor, labels: Tensor, groups: Tensor, num_groups: int) -> Tensor:
    """Minimum over groups present of the group's accuracy (Sagawa et al. 2020, §2).

    Example:
        >>> worst_group_accuracy(torch.tensor([0, 1, 1, 1]), torch.tensor([0, 1, 0, 1]), torch.tensor([0, 0, 1, 1]), 2)
        tensor(0.5000)
    """
    correct, total = group_correct_counts(preds, labels, groups, num_groups)
    return lowest_group_accuracy(correct, total)


def lowest_group_accuracy(correct: Tensor, total: Tensor) -> Tensor:
    """The lowest accuracy over groups with at least one point (NaN when none has any)."""
    present = total > 0
    if not present.any():
        return torch.tensor(float("nan"))
    return (correct[present].float() / total[present]).min()


def collective_sizes(sizes: Sequence[tuple[str, float, int]], n: int) -> dict[str, float]:
    """Each collective's size as set (α), as realised (population α) and in members, keyed for logging.

    ``sizes`` holds ``(name, α, members)`` per collective on a training set of ``n`` points. One
    collective gives ``aca/alpha``, ``aca/population_alpha`` and ``aca/members``; several give each
    key per collective as ``aca/<key>/<name>``.

    Example:
        >>> collective_sizes([("collective", 0.02, 27)], 1347)["aca/members"]
        27.0
        >>> sorted(collective_sizes([("first", 0.02, 27), ("second", 0.0, 0)], 1347))[:2]
        ['aca/alpha/first', 'aca/alpha/second']
    """
    values: dict[str, float] = {}
    for named, (_, alpha, members) in zip(key_names([name for name, _, _ in sizes]), sizes, strict=True):
        values[metric_key("alpha", named)] = float(alpha)
        values[metric_key("population_alpha", named)] = members / max(n, 1)
        values[metric_key("members", named)] = float(members)
    return values
