"""When can the collective's gradients make a target θ* stationary? Thresholds, derived here.

Hardt, Mazumdar, Mendler-Dünner, Zrnic, "Algorithmic Collective Action in Machine Learning",
ICML 2023 (arXiv 2302.04262), §4 (gradient neutralization) and §5 (gradient control). Only the
paper's abstract could be read in this repository (the search tool stores no more of it), so the
statements below are derived from first principles, not quoted, and no theorem numbers are cited.

**Setting.** The firm minimizes L(θ) = α·E_{P*}[ℓ(θ; z)] + (1 − α)·L_{P₀}(θ). The collective's
members may submit any admissible point z (inputs in a box, labels in range); their gradient
"atoms" at θ form the set A(θ) = {∇ℓ(θ; z) : z admissible}.

**Neutralization feasibility.** θ* is stationary iff the members' average gradient is
ḡ* = −((1 − α)/α)·g with g = ∇L_{P₀}(θ*), G = ‖g‖. Averages of m members' atoms are convex
combinations with weights in (1/m)ℕ; as m grows they fill conv A (Carathéodory: a point of conv A
is a combination of at most P + 1 atoms, P the number of parameters, so m members reach it up to
an O(P/m) rounding error). For softmax cross-entropy 0 ∈ conv A (at any input x, the K label
atoms weighted by p(x) sum to Σ_y p_y(p − e_y) = 0), so conv A meets the ray along u = −g/G in a
segment [0, ρ(u)·u], ρ the hull's radius in direction u. Hence

    feasible  ⇔  (1 − α)·G/α ≤ ρ(u)  ⇔  α ≥ α* = G / (G + ρ(u)).

Every atom has norm ≤ B, so ρ(u) ≤ B and the norm bound G/(G + B)
(:func:`lightning_aca.theory.gradient_neutralization_threshold`) is necessary, never sufficient:
it assumes members could point their gradient anywhere, while atoms (p − e_y)·[x, 1]ᵀ of a linear
model tie the bias part to the weight part. Computing ρ over a finite candidate set Ã ⊂ A gives
ρ̃ ≤ ρ, so G/(G + B) ≤ α* ≤ G/(G + ρ̃): :func:`neutralization_critical_alpha` is an upper
estimate that is exact as the candidates fill the admissible set (the linear programs are in
:mod:`lightning_aca.online.hull`).

**Gradient control.** At θ_t = θ* the control target (:func:`~lightning_aca.online.functional.control_member_sum`)
is exactly the neutralization target, so holding the model at θ* needs the same α ≥ α*; above
it, near θ* the target stays inside the members' hull and each step contracts the gap by (1 − κ).
Below it θ* is not a fixed point: the residual gradient at θ* keeps pushing the model away.

**DP-SGD.** Per-sample clipping to norm C replaces every atom a by a·min(1, C/‖a‖) (members and
the rest alike): B becomes min(B, C), G becomes ‖E[clip_C ∇ℓ(θ*)]‖, and ρ is computed on the
clipped atoms. The Gaussian noise is a zero-mean random walk no collective can cancel.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lightning_aca.online.functional import check_feature_bounds
from lightning_aca.online.hull import hull_radius


def linear_member_gradient_bound(
    feature_bounds: tuple[float, float], num_features: int, clip_norm: float | None = None
) -> float:
    """B = √2·√(d·max(lo², hi²) + 1): the largest gradient norm a member's point can give a linear softmax model.

    For logits W·x + b and cross-entropy, ‖∇ℓ(θ; x, y)‖ = ‖p − e_y‖·‖[x, 1]‖ with ‖p − e_y‖ < √2
    (approached when the model puts all its mass on a wrong class) and ‖[x, 1]‖ largest at a corner
    of the box [lo, hi]^d. The bound holds for every θ and number of classes; under DP-SGD with
    clipping norm C the firm sees at most min(B, C).

    Args:
        feature_bounds: ``(lo, hi)``, the box every input entry of a member's point stays in.
        num_features: d, the number of input entries.
        clip_norm: C, DP-SGD's per-sample clipping norm, or ``None``.

    Example:
        >>> round(linear_member_gradient_bound((-3.0, 3.0), num_features=1), 6)  # √2·√10
        4.472136
        >>> linear_member_gradient_bound((-3.0, 3.0), num_features=1, clip_norm=1.0)
        1.0
    """
    low, high = check_feature_bounds(feature_bounds)
    if isinstance(num_features, bool) or not isinstance(num_features, int) or num_features < 1:
        raise ValueError(f"num_features must be a positive int, got {num_features!r}.")
    bound = math.sqrt(2.0) * math.sqrt(num_features * max(low * low, high * high) + 1.0)
    if clip_norm is not None:
        if not clip_norm > 0:
            raise ValueError(f"clip_norm (DP-SGD's C) must be > 0, got {clip_norm!r}.")
        bound = min(bound, float(clip_norm))
    return bound


def neutralization_critical_alpha(base_gradient: Tensor, atoms: Tensor) -> float:
    """α* = G / (G + ρ(−g)): the smallest collective that can make θ* stationary with these atoms.

    Derived in the module docstring: with g = ∇L_{P₀}(θ*) (``base_gradient``) and the members'
    achievable gradients ``atoms`` at θ*, neutralization is feasible for a large collective iff
    α ≥ α*. Returns 0.0 when g = 0 (θ* is already stationary) and 1.0 when no atom points along −g.

    Example:
        >>> square = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
        >>> neutralization_critical_alpha(torch.tensor([3.0, 0.0]), square)  # G = 3, ρ = 1
        0.75
    """
    g = torch.as_tensor(base_gradient).detach().double().reshape(-1)
    norm = float(g.norm())
    if norm == 0.0:
        return 0.0
    radius = hull_radius(atoms, -g)
    return norm / (norm + radius) if radius > 0 else 1.0
