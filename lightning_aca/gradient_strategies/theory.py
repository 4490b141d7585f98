"""When can the collective's gradients make θ* stationary? The critical mass α* of gradient neutralization.

Hardt, Mazumdar, Mendler-Dünner, Zrnic, "Algorithmic Collective Action in Machine Learning",
ICML 2023 (arXiv 2302.04262), §4 (gradient neutralization) and §5 (gradient control). With
g = ∇L_{P₀}(θ*), G = ‖g‖ and ρ the radius along −g of the convex hull of the members' achievable
gradients at θ*, a large collective can make θ* stationary iff α ≥ α* = G / (G + ρ)
(:func:`neutralization_alpha_star`); gradient control needs the same α to hold the model at θ*.
Since ρ ≤ B, the norm bound G/(G + B) (:func:`lightning_aca.theory.gradient_neutralization_alpha_bound`)
is necessary, never sufficient; over a finite candidate set the computed α* is an upper estimate.

Derived here, not quoted from the paper; derivations, assumptions (DP-SGD's clipping included) and
provenance: ``docs/theory.md`` §2–4.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lightning_aca.gradient_strategies.functional import check_feature_bounds
from lightning_aca.gradient_strategies.hull import hull_radius
from lightning_aca.validation import positive_int, positive_real


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
    num_features = positive_int("num_features", num_features)
    bound = math.sqrt(2.0) * math.sqrt(num_features * max(low * low, high * high) + 1.0)
    if clip_norm is not None:
        bound = min(bound, positive_real("clip_norm (DP-SGD's C)", clip_norm))
    return bound


def neutralization_alpha_star(base_gradient: Tensor, atoms: Tensor) -> float:
    """α* = G / (G + ρ(−g)): the smallest collective that can make θ* stationary with these atoms.

    With g = ∇L_{P₀}(θ*) (``base_gradient``) and the members' achievable gradients ``atoms`` at θ*,
    neutralization is feasible for a large collective iff α ≥ α* (module docstring; derived here,
    see ``docs/theory.md``). Returns 0.0 when g = 0 (θ* is already stationary) and 1.0 when no atom
    points along −g.

    Example:
        >>> square = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
        >>> neutralization_alpha_star(torch.tensor([3.0, 0.0]), square)  # G = 3, ρ = 1
        0.75
    """
    g = torch.as_tensor(base_gradient).detach().double().reshape(-1)
    norm = float(g.norm())
    if norm == 0.0:
        return 0.0
    radius = hull_radius(atoms, -g)
    return norm / (norm + radius) if radius > 0 else 1.0
