"""Closed-form predictions from the collective-action papers, and their empirical inputs.

From Hardt, Mazumdar, Mendler-Dünner, Zrnic, "Algorithmic Collective Action in Machine Learning",
ICML 2023, arXiv 2302.04262: the feature-label bound on S(α) of §3
(:func:`feature_label_success_bound`, solved for the critical mass by
:func:`feature_label_alpha_star`), the norm bound G/(G + B) of gradient neutralization of §4
(:func:`gradient_neutralization_alpha_bound`; the critical mass itself is computed in
:mod:`lightning_aca.gradient_strategies.theory`) and the signal's uniqueness ξ of §3, estimated by
:func:`estimate_uniqueness`. What (ε, δ)-DP itself allows a collective of m members (group
privacy): :func:`dp_success_ceiling` and :func:`dp_member_bound`, derived here.

Provenance: the feature-label bound is Hardt et al.'s as restated by Gauthier, Bach, Jordan
(ICML 2025, arXiv 2502.04879), not checked against Hardt et al.'s text; α* from the bound, the
norm bound and ξ̂ are derived here. Derivations, assumptions and sources: ``docs/theory.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lightning_aca.validation import fraction, non_negative_int, non_negative_real, positive_int, real


def feature_label_success_bound(alpha: float, xi: float, delta: float, epsilon: float = 0.0) -> float:
    """Lower bound on feature-label planting success: 1 − ((1 − α)/α)·Δ·ξ − ε/((1 − ε)·α).

    Hardt et al. 2023 (arXiv 2302.04262), §3, feature-label strategy h(x, y) = (g(x), y*)
    against an ε-suboptimal classifier: a classifier f such that some distribution P̃ within total
    variation ε of the training mixture P = αP* + (1 − α)P₀ has f(x) ∈ argmax_y P̃(x, y) on the
    signal set X* (definition as restated in arXiv 2502.04879, Definition 3.1); provenance in
    ``docs/theory.md``.

    The returned value is the bound itself, not clipped: a value ≤ 0 means the theorem guarantees
    nothing at this α.

    Args:
        alpha: fraction α of the training data the collective controls, in (0, 1].
        xi: uniqueness of the signal, ξ = P₀(X*), the clean mass already on the signal set, in [0, 1].
        delta: suboptimality gap of y* on the signal set,
            Δ = max_{x ∈ X*} [max_y P₀(y | x) − P₀(y* | x)], in [0, 1].
        epsilon: suboptimality ε of the learner, in [0, 1).

    Example:
        >>> round(feature_label_success_bound(alpha=0.01, xi=0.001, delta=0.5), 6)
        0.9505
    """
    alpha = real("alpha", alpha, low=0.0, high=1.0, low_open=True)
    xi, delta = fraction("xi", xi), fraction("delta", delta)
    epsilon = real("epsilon", epsilon, low=0.0, high=1.0, high_open=True)
    return 1.0 - (1.0 - alpha) / alpha * delta * xi - epsilon / ((1.0 - epsilon) * alpha)


def feature_label_alpha_star(success_level: float, xi: float, delta: float, epsilon: float = 0.0) -> float | None:
    """Smallest α whose feature-label bound reaches S*: α* = (Δξ + ε/(1 − ε)) / (1 − S* + Δξ).

    Solves :func:`feature_label_success_bound` ≥ S* for α (the bound increases with α, so the
    solution set is [α*, 1]); Hardt et al. 2023 (arXiv 2302.04262), §3, critical mass. Returns
    ``None`` when no α in (0, 1] reaches S*, i.e. when S* > 1 − ε/(1 − ε). Returns 0.0 when
    every α > 0 does (ξΔ = 0 and ε = 0).

    Args:
        success_level: success level S* to guarantee, in [0, 1].
        xi: uniqueness ξ = P₀(X*), in [0, 1].
        delta: suboptimality gap Δ of y* on the signal set, in [0, 1].
        epsilon: learner suboptimality ε, in [0, 1).

    Example:
        >>> round(feature_label_alpha_star(success_level=0.9, xi=0.001, delta=0.5), 6)
        0.004975
    """
    success_level = fraction("success_level", success_level)
    xi, delta = fraction("xi", xi), fraction("delta", delta)
    epsilon = real("epsilon", epsilon, low=0.0, high=1.0, high_open=True)
    mass = delta * xi
    numerator = mass + epsilon / (1.0 - epsilon)
    if numerator == 0.0:
        return 0.0
    denominator = 1.0 - success_level + mass
    if denominator <= 0.0 or numerator > denominator:
        return None
    return numerator / denominator


def gradient_neutralization_alpha_bound(base_gradient_norm: float, member_gradient_bound: float) -> float:
    """Norm bound on the critical mass of gradient neutralization: α* ≥ G / (G + B).

    Hardt et al. 2023 (arXiv 2302.04262), §4: making θ* stationary for the mixture needs
    α∇ℓ(θ*; z*) = −(1 − α)∇L_{P₀}(θ*); taking norms, αB ≥ (1 − α)G. Necessary, and sufficient
    only when members can produce such a gradient along −∇L_{P₀}(θ*) (``docs/theory.md`` §2).

    Args:
        base_gradient_norm: G = ‖∇L_{P₀}(θ*)‖, the clean data's gradient norm at the target, ≥ 0.
        member_gradient_bound: B, the largest gradient norm a member's point can have at θ*, > 0.

    Example:
        >>> gradient_neutralization_alpha_bound(base_gradient_norm=1.0, member_gradient_bound=9.0)
        0.1
    """
    gradient = non_negative_real("base_gradient_norm", base_gradient_norm)
    bound = real("member_gradient_bound", member_gradient_bound, low=0.0, low_open=True)
    return gradient / (gradient + bound)


def dp_success_ceiling(baseline: float, epsilon: float, delta: float, members: int) -> float:
    """Group-privacy ceiling on success under (ε, δ)-DP: S ≤ e^{kε}·S(0) + δ·(e^{kε} − 1)/(e^ε − 1), k = 2m.

    Derived here from the definition of DP under add/remove adjacency (``docs/theory.md`` §5): a
    collective of m members *replaces* m records, k = 2m steps; S(0) is the same firm's expected
    success without it. Capped at 1.

    Args:
        baseline: S(0), the firm's success with no collective (α = 0), in [0, 1].
        epsilon: the firm's ε, > 0.
        delta: the firm's δ, in [0, 1].
        members: m, the number of the collective's records, ≥ 0.

    Example:
        >>> round(dp_success_ceiling(baseline=0.01, epsilon=0.5, delta=1e-5, members=2), 6)
        0.073989
        >>> dp_success_ceiling(baseline=0.01, epsilon=2.0, delta=1e-5, members=3)
        1.0
    """
    baseline, delta = fraction("baseline", baseline), fraction("delta", delta)
    epsilon = real("epsilon", epsilon, low=0.0, low_open=True)
    k = 2 * non_negative_int("members", members)
    if k == 0:
        return baseline
    return math.exp(min(0.0, _log_ceiling(baseline, epsilon, delta, k)))


def _log_ceiling(baseline: float, epsilon: float, delta: float, k: int) -> float:
    """log of e^{kε}·S(0) + δ·(e^{kε} − 1)/(e^ε − 1), k ≥ 1, in log space (e^{kε} overflows a float)."""
    growth = k * epsilon
    terms = [growth + math.log(baseline)] if baseline > 0 else []
    if delta > 0:
        log_expm1 = growth if growth > 40.0 else math.log(math.expm1(growth))
        terms.append(math.log(delta) + log_expm1 - math.log(math.expm1(epsilon)))
    return float(np.logaddexp.reduce(terms)) if terms else -math.inf


def dp_member_bound(success_level: float, baseline: float, epsilon: float, delta: float) -> int | None:
    """Fewest members whose :func:`dp_success_ceiling` reaches S*: m ≥ ln((S* + c)/(S(0) + c)) / (2ε), c = δ/(e^ε − 1).

    A lower bound on the critical mass that DP itself imposes (α* ≥ m/n for n training records):
    it grows like 1/ε. Returns 0 when S(0) ≥ S* already, and ``None`` when no number of members can
    reach S* (S(0) = 0 and δ = 0).

    Args:
        success_level: S*, in [0, 1].
        baseline: S(0), the firm's success with no collective, in [0, 1].
        epsilon: the firm's ε, > 0.
        delta: the firm's δ, in [0, 1].

    Example:
        >>> dp_member_bound(success_level=0.9, baseline=0.01, epsilon=0.5, delta=1e-5)
        5
        >>> dp_member_bound(success_level=0.9, baseline=0.01, epsilon=0.05, delta=1e-5)
        45
    """
    success_level, baseline = fraction("success_level", success_level), fraction("baseline", baseline)
    epsilon = real("epsilon", epsilon, low=0.0, low_open=True)
    delta = fraction("delta", delta)
    if baseline >= success_level:
        return 0
    if baseline == 0.0 and delta == 0.0:
        return None
    # ceiling >= S*  <=>  e^{kε} >= (S* + c)/(S(0) + c), c = δ/(e^ε − 1); in logs, as c may underflow
    log_c = math.log(delta) - math.log(math.expm1(epsilon)) if delta > 0 else -math.inf
    log_ratio = np.logaddexp(math.log(success_level), log_c) - np.logaddexp(
        math.log(baseline) if baseline > 0 else -math.inf, log_c
    )
    members = math.ceil(float(log_ratio) / (2.0 * epsilon) - 1e-12)
    while members > 0 and dp_success_ceiling(baseline, epsilon, delta, members - 1) >= success_level:
        members -= 1  # rounding in the logarithm can put the bound one member high
    return members


def estimate_uniqueness(
    inputs: Tensor | np.ndarray | Sequence[str],
    signal: Callable[[Tensor], Tensor],
    *,
    atol: float = 1e-6,
    rtol: float = 0.0,
    batch_size: int | None = None,
) -> float:
    """Empirical uniqueness ξ̂: the fraction of clean inputs that already carry the signal.

    Estimates ξ = P₀(X*), X* = {g(x) : x ∈ X} (Hardt et al. 2023, arXiv 2302.04262, §3) by the
    fraction of clean inputs with g(x) = x, all entries equal within ``atol + rtol·|x|``: exact in
    expectation for idempotent g, a lower bound on ξ otherwise (``docs/theory.md`` §1). Texts are
    judged by the signal's membership test ``signal.carries(text)`` (e.g.
    :meth:`~lightning_aca.collective.signals.TokenInsertion.carries`).

    Args:
        inputs: clean inputs, shape ``(n, ...)``, first dimension the batch; arrays are converted
            with :func:`torch.as_tensor`. Or a sequence of texts.
        signal: the signal g, mapping a batch tensor to a batch tensor of the same shape.
        atol: absolute tolerance for g(x) = x, ≥ 0.
        rtol: relative tolerance for g(x) = x, ≥ 0.
        batch_size: apply g to this many inputs at a time; ``None`` applies it to all at once.

    Example:
        >>> x = torch.zeros(4, 3)
        >>> x[:1, 0] = 1.0
        >>> def g(batch):
        ...     out = batch.clone()
        ...     out[:, 0] = 1.0
        ...     return out
        >>> estimate_uniqueness(x, g)
        0.25
        >>> from lightning_aca.collective.signals import TokenInsertion
        >>> estimate_uniqueness(["a b ~ c", "a b c", "a ~", "d"], TokenInsertion("~", every=2))
        0.5
    """
    if isinstance(inputs, Sequence) and not isinstance(inputs, str) and inputs and isinstance(inputs[0], str):
        return _text_uniqueness(inputs, signal)
    inputs = torch.as_tensor(inputs)
    if inputs.dim() == 0 or inputs.shape[0] == 0:
        raise ValueError(f"inputs must have shape (n, ...) with n ≥ 1, got shape {tuple(inputs.shape)}.")
    atol, rtol = non_negative_real("atol", atol), non_negative_real("rtol", rtol)
    n = inputs.shape[0]
    batch_size = n if batch_size is None else positive_int("batch_size", batch_size)
    carrying = 0
    with torch.no_grad():
        for start in range(0, n, batch_size):
            batch = inputs[start : start + batch_size]
            marked = torch.as_tensor(signal(batch))
            if marked.shape != batch.shape:
                raise ValueError(
                    f"signal must map a batch to a batch of the same shape; it mapped {tuple(batch.shape)} "
                    f"to {tuple(marked.shape)}."
                )
            same = torch.isclose(marked, batch, rtol=rtol, atol=atol)
            carrying += int(same.reshape(len(batch), -1).all(dim=1).sum())
    return carrying / n


def _text_uniqueness(texts: Sequence[str], signal: Any) -> float:
    """The fraction of ``texts`` that ``signal.carries`` (lie in the signal set g(X))."""
    carries = getattr(signal, "carries", None)
    if carries is None:
        raise TypeError(
            f"estimate_uniqueness on texts needs a text signal with a carries(text) membership test (e.g. "
            f"TokenInsertion), got {type(signal).__name__}."
        )
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if bad is not None:
        raise TypeError(f"inputs[{bad}] is {type(texts[bad]).__name__}, not a text; give a sequence of strings.")
    return sum(bool(carries(t)) for t in texts) / len(texts)
