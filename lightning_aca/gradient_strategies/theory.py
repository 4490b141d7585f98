"""When can the collective's gradients make θ* stationary? The critical mass α* of gradient neutralization.

Hardt, Mazumdar, Mendler-Dünner, Zrnic, "Algorithmic Collective Action in Machine Learning",
ICML 2023 (arXiv 2302.04262), §4 (gradient neutralization) and §5 (gradient control).

The firm minimizes α·E_{P*}[ℓ(θ; z)] + (1 − α)·L_{P₀}(θ); members may submit any admissible point
z (inputs in a box, labels in range), whose gradients at θ* form the atoms A = {∇ℓ(θ*; z)}. With
g = ∇L_{P₀}(θ*), G = ‖g‖ and ρ the radius of conv A along −g, a large collective can make θ*
stationary iff

    α ≥ α* = G / (G + ρ)                               (:func:`neutralization_alpha_star`).

Every atom has norm ≤ B, so ρ ≤ B and the norm bound G/(G + B)
(:func:`lightning_aca.theory.gradient_neutralization_alpha_bound`) is necessary, never sufficient.
Over a finite candidate set the computed ρ can only be smaller, so the computed α* is an upper
estimate, exact as the candidates fill the admissible set. Gradient control needs the same α to
hold the model at θ*. Under DP-SGD every atom is clipped to norm C (B becomes min(B, C)); the
Gaussian noise is a zero-mean random walk no collective can cancel.

Derived here, not quoted from the paper; derivations, assumptions and provenance: ``docs/theory.md``.
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
