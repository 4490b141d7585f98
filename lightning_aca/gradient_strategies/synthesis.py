"""Choosing the members' points: given a gradient sum S to produce, find m admissible points whose gradients add up to S.

One construction per model family (:mod:`lightning_aca.gradient_strategies.families`): for linear
softmax models the convex-hull construction of :mod:`lightning_aca.gradient_strategies.theory`
(:func:`synthesize_from_hull`), for any differentiable model a local search over labels and inputs
(:func:`synthesize_by_search`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import Tensor

from lightning_aca.gradient_strategies.functional import clip_per_sample, linear_softmax_gradients
from lightning_aca.gradient_strategies.hull import hull_weights

GradientFn = Callable[[Tensor, Tensor], Tensor]


def round_counts(weights: Tensor, total: int) -> Tensor:
    """Integer counts summing to ``total``, proportional to ``weights`` (largest-remainder rounding).

    Example:
        >>> round_counts(torch.tensor([0.5, 0.3, 0.2]), 4).tolist()
        [2, 1, 1]
    """
    scaled = weights.double() * total / weights.sum()
    counts = scaled.floor().long()
    missing = total - int(counts.sum())
    if missing > 0:
        counts[torch.argsort(scaled - counts, descending=True)[:missing]] += 1
    return counts


def _refine_inputs(
    gradients: GradientFn,
    member_sum: Tensor,
    inputs: Tensor,
    labels: Tensor,
    feature_bounds: tuple[float, float],
    clip_norm: float | None,
    steps: int,
) -> Tensor:
    """Adam steps on the inputs (labels fixed, inputs kept in the box) towards Σ clip(∇ℓ) = member_sum."""
    if steps == 0:
        return inputs
    low, high = feature_bounds
    free = inputs.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([free], lr=0.01 * (high - low))
    best, best_loss = inputs.detach(), float("inf")
    for _ in range(steps + 1):
        optimizer.zero_grad()
        loss = (clip_per_sample(gradients(free, labels), clip_norm).sum(0) - member_sum).pow(2).sum()
        value = float(loss.detach())
        if value < best_loss:
            best, best_loss = free.detach().clone(), value
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            free.clamp_(low, high)
    return best


def label_atoms(gradients: GradientFn, inputs: Tensor, num_classes: int, clip_norm: float | None) -> Tensor:
    """clip(∇ℓ(θ; x, y)) for every input x and every label y: ``(len(inputs)·K, P)``, input-major."""
    labels = torch.arange(num_classes).repeat(len(inputs))
    return clip_per_sample(gradients(inputs.repeat_interleave(num_classes, 0), labels), clip_norm)


def candidate_atoms(weight: Tensor, bias: Tensor, candidates: Tensor, clip_norm: float | None = None) -> Tensor:
    """:func:`label_atoms` of a linear softmax model θ = (``weight``, ``bias``) at the candidate inputs."""
    return label_atoms(partial(linear_softmax_gradients, weight, bias), candidates, weight.shape[0], clip_norm)


def synthesize_from_hull(
    weight: Tensor,
    bias: Tensor,
    member_sum: Tensor,
    count: int,
    candidates: Tensor,
    feature_bounds: tuple[float, float],
    clip_norm: float | None = None,
    refine_steps: int = 25,
    atoms: Tensor | None = None,
    direction: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """``count`` points (inputs ``(count, d)``, labels) for a linear softmax model whose gradients sum to ``member_sum``.

    The convex-hull construction (module docstring): candidate atoms are
    clip(∇ℓ(θ; c, y)) for every candidate input c and label y, θ = (``weight``, ``bias``).
    ``atoms`` may pass those atoms precomputed (in the order candidate-major, label-minor). With
    ``direction`` the aim is the segment member_sum + t·direction, t ∈ [0, 1], reached at the
    largest t the hull allows (see :func:`hull_weights`).
    """
    num_classes = weight.shape[0]
    if atoms is None:
        atoms = candidate_atoms(weight, bias, candidates, clip_norm)
    weights, fraction = hull_weights(atoms, member_sum / count, None if direction is None else direction / count)
    if direction is not None:
        member_sum = member_sum + fraction * direction
    chosen = torch.repeat_interleave(torch.arange(len(weights)), round_counts(weights, count))
    inputs = candidates[chosen // num_classes].to(weight.dtype)
    labels = chosen % num_classes
    gradients = partial(linear_softmax_gradients, weight, bias)
    return _refine_inputs(gradients, member_sum, inputs, labels, feature_bounds, clip_norm, refine_steps), labels


def synthesize_by_search(
    gradients: GradientFn,
    member_sum: Tensor,
    inputs: Tensor,
    labels: Tensor,
    num_classes: int,
    feature_bounds: tuple[float, float],
    clip_norm: float | None = None,
    rounds: int = 2,
    steps: int = 20,
) -> tuple[Tensor, Tensor]:
    """Members' inputs and labels from a local search that starts at ``inputs``/``labels``.

    ``gradients(x, y)`` returns the per-sample gradients ``(m, P)`` at the current model, differentiable
    in ``x``. Each of ``rounds`` rounds relabels every member in turn (the label whose gradient, swapped
    in, leaves the smallest residual ‖Σ − member_sum‖) and then takes ``steps`` Adam steps on the inputs.
    """
    low, high = feature_bounds
    inputs = inputs.detach().clamp(low, high)
    labels = labels.clone()
    for _ in range(rounds):
        with torch.no_grad():
            m = len(inputs)
            every = label_atoms(gradients, inputs, num_classes, clip_norm).reshape(m, num_classes, -1)
            residual = every[torch.arange(m), labels].sum(0) - member_sum
            for i in range(m):
                without = residual - every[i, labels[i]]
                best = int((without[None, :] + every[i]).norm(dim=1).argmin())
                residual = without + every[i, best]
                labels[i] = best
        inputs = _refine_inputs(gradients, member_sum, inputs, labels, feature_bounds, clip_norm, steps)
    return inputs, labels
