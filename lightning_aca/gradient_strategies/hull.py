"""Linear programs over the convex hull of the members' gradient "atoms".

The set of average gradients a large collective can produce is the convex hull of the atoms
{∇ℓ(θ; z) : z admissible} (see :mod:`lightning_aca.gradient_strategies.theory`). Two questions about it are
linear programs over weights w ≥ 0, Σw = 1, on a finite set of atoms: how far the hull reaches
along a direction (:func:`hull_radius`, for the critical mass α*) and which combination comes closest
to a given point (:func:`hull_weights`, for the members' construction).

Both programs run in an orthonormal basis of the span of the atoms: atoms of softmax
cross-entropy have rows summing to zero over classes, so in parameter coordinates the equality
constraints are linearly dependent, which leaves the solver's answer off by up to 10⁻³. A point's
component outside the span is one no member can produce.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

# atoms usually come in float32 (relative rounding ≈ 1e-7): directions that weak are noise, not span
_RANK_TOLERANCE = 1e-5


def _span(atoms: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """The atoms as a float64 array ``(J, P)`` and an orthonormal basis ``(P, r)`` of their span."""
    atoms = torch.as_tensor(atoms)
    if atoms.dim() != 2 or atoms.shape[0] == 0:
        raise ValueError(f"atoms must have shape (J, P) with J >= 1, got {tuple(atoms.shape)}.")
    a = atoms.detach().double().cpu().numpy()
    _, values, rows = np.linalg.svd(a, full_matrices=False)
    rank = int((values > _RANK_TOLERANCE * max(values.max(initial=0.0), 1e-300)).sum())
    return a, rows[:rank].T


def _vector(value: Tensor, size: int, name: str) -> np.ndarray:
    vector = torch.as_tensor(value).detach().double().cpu().numpy().reshape(-1)
    if vector.shape[0] != size:
        raise ValueError(f"{name} has {vector.shape[0]} entries, atoms have {size} columns.")
    return vector


def _solve(cost: np.ndarray, equality: np.ndarray, rhs: np.ndarray, bounds: list, what: str) -> np.ndarray:
    """HiGHS's simplex, then its interior-point method when the simplex ends without a verdict."""
    from scipy.optimize import linprog

    for method in ("highs", "highs-ipm"):
        result = linprog(cost, A_eq=equality, b_eq=rhs, bounds=bounds, method=method)
        if result.status == 0:
            return result.x
    raise ValueError(f"{what}: the linear program failed ({result.message}).")


def hull_radius(atoms: Tensor, direction: Tensor) -> float:
    """ρ(u) = max{λ ≥ 0 : λ·u/‖u‖ ∈ conv(atoms)}, by linear programming.

    Variables: weights w ≥ 0 on the J atoms with Σw = 1, and λ ≥ 0; constraint Σ_j w_j a_j = λ·û;
    maximize λ. Needs 0 ∈ conv(atoms) (true for the label atoms of softmax cross-entropy, see
    :mod:`lightning_aca.gradient_strategies.theory`); otherwise raises ``ValueError``. A direction leaving the
    atoms' span has radius 0.

    Args:
        atoms: ``(J, P)``, one candidate gradient per row.
        direction: ``(P,)``, non-zero.

    Example:
        >>> square = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
        >>> round(hull_radius(square, torch.tensor([1.0, 0.0])), 6), round(hull_radius(square, torch.tensor([1.0, 1.0])), 6)
        (1.0, 1.414214)
    """
    a, basis = _span(atoms)
    u = _vector(direction, a.shape[1], "direction")
    norm = np.linalg.norm(u)
    if not norm > 0:
        raise ValueError("direction must be non-zero.")
    u = u / norm
    inside = basis.T @ u
    if np.linalg.norm(u - basis @ inside) > _RANK_TOLERANCE:
        return 0.0
    n_atoms, rank = a.shape[0], basis.shape[1]
    cost = np.zeros(n_atoms + 1)
    cost[-1] = -1.0
    equality = np.zeros((rank + 1, n_atoms + 1))
    equality[:rank, :n_atoms] = (a @ basis).T
    equality[:rank, -1] = -inside
    equality[rank, :n_atoms] = 1.0
    rhs = np.zeros(rank + 1)
    rhs[rank] = 1.0
    solution = _solve(cost, equality, rhs, [(0, None)] * (n_atoms + 1), "hull_radius: does the hull contain 0?")
    return float(solution[-1])


def hull_weights(atoms: Tensor, point: Tensor, direction: Tensor | None = None) -> tuple[Tensor, float]:
    """Weights w on the simplex whose combination Σ_j w_j·atoms_j is closest to ``point`` (a linear program).

    Closest in the L1 norm of the coordinates of an orthonormal basis of the atoms' span (the part of
    ``point`` outside the span cannot be produced). With ``direction``, the aim is the segment
    {point + t·direction : t ∈ [0, 1]}: the program finds the hull point closest to the segment and,
    among those (up to 0.1% of the step), the largest t. Returns ``(w, t)`` (``t = 0.0`` without a
    direction). The residual is 0 when the aim meets the hull.

    Example:
        >>> atoms = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]])
        >>> weights, _ = hull_weights(atoms, torch.tensor([0.5, 1.0]))
        >>> weights.tolist()
        [0.25, 0.25, 0.5]
        >>> round(hull_weights(atoms, torch.tensor([0.0, 0.0]), direction=torch.tensor([4.0, 0.0]))[1], 6)
        0.5
    """
    a, basis = _span(atoms)
    aim = basis.T @ _vector(point, a.shape[1], "point")
    n_atoms, rank = a.shape[0], basis.shape[1]
    # variables: w (J), the positive and negative parts of the residual (r each), then t
    cost = np.concatenate([np.zeros(n_atoms), np.ones(2 * rank), [0.0]])
    equality = np.zeros((rank + 1, n_atoms + 2 * rank + 1))
    equality[:rank, :n_atoms] = (a @ basis).T
    equality[:rank, n_atoms : n_atoms + rank] = -np.eye(rank)
    equality[:rank, n_atoms + rank : n_atoms + 2 * rank] = np.eye(rank)
    equality[rank, :n_atoms] = 1.0
    bounds = [(0, None)] * (n_atoms + 2 * rank) + [(0, 0)]
    if direction is not None:
        step = basis.T @ _vector(direction, a.shape[1], "direction")
        equality[:rank, -1] = -step
        bounds[-1] = (0, 1)
        # a small reward for t: the residual comes first (up to 0.1% of the step), then the largest t
        cost[-1] = -1e-3 * max(np.abs(step).sum(), 1e-12)
    rhs = np.concatenate([aim, [1.0]])
    solution = _solve(cost, equality, rhs, bounds, "the members' construction")
    weights = np.clip(solution[:n_atoms], 0.0, None)
    return torch.as_tensor(weights / weights.sum(), dtype=torch.as_tensor(atoms).dtype), float(solution[-1])
