"""Who joins the collective: a pure, seeded, nested function of (n, eligibility, α, seed).

Hardt et al. 2023, §2: the collective is a fraction α of the population. Here the members are
the first ``round(α · n_eligible)`` entries of one seeded permutation of the eligible indices,
so for a fixed seed the members at α₁ < α₂ are a subset of those at α₂ and S(α) curves over α
compare nested collectives.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from lightning_aca.validation import fraction, non_negative_int


def member_count(alpha: float, n_eligible: int) -> int:
    """``round(α · n_eligible)``, rounding halves up so the count never depends on parity."""
    return math.floor(alpha * n_eligible + 0.5)


def select_members(
    n: int,
    alpha: float,
    seed: int = 0,
    eligible: Sequence[bool] | np.ndarray | None = None,
) -> np.ndarray:
    """Indices (sorted, int64) of the collective's members among ``n`` training points.

    Args:
        n: number of training points.
        alpha: fraction of the eligible points that join, in [0, 1] (any real number: a float,
            a NumPy scalar or a 0-d tensor). ``alpha=0`` means no collective; an ``alpha > 0``
            that rounds to zero members is an error.
        seed: selects the permutation; the same seed always gives the same members and
            members are nested across ``alpha``.
        eligible: optional boolean mask of length ``n`` (default: every point is eligible).

    Example:
        >>> select_members(10, 0.3, seed=0).tolist()
        [2, 4, 6]
        >>> set(select_members(10, 0.3, seed=0)) <= set(select_members(10, 0.5, seed=0))
        True
    """
    n = non_negative_int("n (the number of training points)", n)
    alpha = fraction("alpha (the collective's fractional size)", alpha)
    seed = non_negative_int("seed", seed)
    if eligible is None:
        eligible_idx = np.arange(n, dtype=np.int64)
    else:
        mask = np.asarray(eligible)
        if mask.dtype != bool or mask.shape != (n,):
            raise ValueError(
                f"eligible must be a boolean mask of shape ({n},), got dtype {mask.dtype} and shape {mask.shape}."
            )
        eligible_idx = np.flatnonzero(mask).astype(np.int64)
    if alpha == 0:
        return np.empty(0, dtype=np.int64)
    if n == 0:
        raise ValueError(f"the training set is empty: alpha={alpha} asks for a collective among 0 training points.")
    if eligible_idx.size == 0:
        raise ValueError(
            f"alpha={alpha} asks for a collective but none of the {n} training points is eligible for this "
            "strategy (e.g. FeatureOnlyPlanting needs training points whose label is target_class); "
            "check target_class or use alpha=0."
        )
    k = member_count(alpha, eligible_idx.size)
    if k == 0:
        raise ValueError(
            f"alpha={alpha} gives 0 members among {eligible_idx.size} eligible points; the smallest alpha "
            f"with one member is {0.5 / eligible_idx.size:.3g}. Use alpha=0 explicitly for no collective."
        )
    order = np.random.default_rng(seed).permutation(eligible_idx.size)
    return np.sort(eligible_idx[order[:k]])
