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


def _mask(name: str, eligible: Sequence[bool] | np.ndarray | None, n: int) -> np.ndarray:
    """The eligibility mask of ``n`` points (``None``: every point), checked to be boolean of shape ``(n,)``."""
    mask = np.ones(n, dtype=bool) if eligible is None else np.asarray(eligible)
    if mask.dtype != bool or mask.shape != (n,):
        raise ValueError(
            f"{name} must be a boolean mask of shape ({n},), got dtype {mask.dtype} and shape {mask.shape}."
        )
    return mask


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
    eligible_idx = np.flatnonzero(_mask("eligible", eligible, n)).astype(np.int64)
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


def _pools(n: int, weights: Sequence[float], order: np.ndarray) -> list[np.ndarray]:
    """Deal the permutation ``order`` into one pool per weight, in proportion to the weights.

    Position i of ``order`` goes to the owner of the i-th place when pool j's m-th place (m = 1, 2, …)
    has priority m / w_j (D'Hondt's divisors, ties to the lower j): pool j gets at least
    ⌊n · w_j⌋ points, and equal weights deal round-robin.
    """
    places = [np.arange(1, n + 1) / w if w > 0 else np.empty(0) for w in weights]
    owners = np.concatenate([np.full(len(p), j) for j, p in enumerate(places)])
    owner_of = owners[np.lexsort((owners, np.concatenate(places)))[:n]]
    return [order[owner_of == j] for j in range(len(weights))]


def select_disjoint_members(
    n: int,
    alphas: Sequence[float],
    seed: int = 0,
    eligible: Sequence[Sequence[bool] | np.ndarray | None] | None = None,
    max_alphas: Sequence[float] | None = None,
) -> list[np.ndarray]:
    """Members of several collectives on one training set: disjoint, each nested in its own α.

    Karan, Vincent, Karahalios, Sundaram (FAccT 2025) let several collectives act on one platform;
    a user belongs to at most one. With one collective this is exactly :func:`select_members`.
    With K ≥ 2, one seeded permutation of the ``n`` points is dealt into K pools, in proportion to
    ``max_alphas`` (equal shares, i.e. round-robin, without them); collective j takes the first
    ``round(α_j · n_eligible_j)`` of its pool's eligible points in permutation order, where
    ``n_eligible_j`` counts its eligible points in the whole training set (so α_j means what α
    means for one collective). Hence collective j's members depend only on (n, its eligibility,
    α_j, seed, j, K, ``max_alphas``): nested in α_j and unchanged when another α moves. The pools
    bound the sizes: without ``max_alphas`` each collective reaches about 1/K of its eligible
    points; with them, about max_α_j / Σ max_α, so a sweep giving each collective the largest α
    it takes (0.7 and 0.1, say) can reach them all. More is a ``ValueError``.

    Args:
        n: number of training points.
        alphas: each collective's fraction of its eligible points, in [0, 1].
        seed: membership seed.
        eligible: one boolean mask of length ``n`` (or None: every point) per collective.
        max_alphas: the largest α each collective takes in the sweep (one per collective, each
            ``alphas[j] <= max_alphas[j]``); they size the pools, so keep them fixed across a sweep.

    Example:
        >>> first, second = select_disjoint_members(20, [0.2, 0.1], seed=0)
        >>> len(first), len(second), set(first.tolist()) & set(second.tolist())
        (4, 2, set())
        >>> bigger = select_disjoint_members(20, [0.3, 0.1], seed=0)
        >>> set(first.tolist()) <= set(bigger[0].tolist()), bigger[1].tolist() == second.tolist()
        (True, True)
        >>> [len(g) for g in select_disjoint_members(100, [0.7, 0.1], seed=0, max_alphas=[0.7, 0.3])]
        [70, 10]
    """
    alphas = list(alphas)
    if not alphas:
        raise ValueError("alphas is empty: give one fraction per collective.")
    masks = list(eligible) if eligible is not None else [None] * len(alphas)
    if len(masks) != len(alphas):
        raise ValueError(f"eligible has {len(masks)} masks for {len(alphas)} collectives; give one per collective.")
    if max_alphas is not None:
        max_alphas = [fraction(f"max_alphas[{j}]", a) for j, a in enumerate(max_alphas)]
        if len(max_alphas) != len(alphas):
            raise ValueError(
                f"max_alphas has {len(max_alphas)} values for {len(alphas)} collectives; give one per collective."
            )
        for j, (alpha, top) in enumerate(zip(alphas, max_alphas, strict=True)):
            if fraction(f"alphas[{j}]", alpha) > top:
                raise ValueError(
                    f"alphas[{j}]={alpha} is above max_alphas[{j}]={top}: max_alphas must bound every alpha of the "
                    f"sweep (they size the pools, so every collective's members depend on them); raise max_alphas[{j}]."
                )
    if len(alphas) == 1:  # exactly select_members, its checks and messages included
        return [select_members(n, alphas[0], seed, masks[0])]
    alphas = [fraction(f"alphas[{j}] (collective {j}'s fractional size)", a) for j, a in enumerate(alphas)]
    n = non_negative_int("n (the number of training points)", n)
    seed = non_negative_int("seed", seed)
    k = len(alphas)
    order = np.random.default_rng([seed, k]).permutation(n)
    if max_alphas is None or sum(max_alphas) == 0:  # all alphas 0 under zero max_alphas: any pools do
        weights = [1.0 / k] * k
    else:
        weights = [top / sum(max_alphas) for top in max_alphas]
    pools = _pools(n, weights, order)
    out = []
    for j, (alpha, mask) in enumerate(zip(alphas, masks, strict=True)):
        everyone = _mask(f"eligible[{j}]", mask, n)
        if alpha == 0:
            out.append(np.empty(0, dtype=np.int64))
            continue
        n_eligible = int(everyone.sum())
        wanted = member_count(alpha, n_eligible)
        if wanted == 0:
            smallest = f"; the smallest alpha with one member is {0.5 / n_eligible:.3g}" if n_eligible else ""
            raise ValueError(
                f"alphas[{j}]={alpha} gives 0 members among {n_eligible} eligible points{smallest}. "
                "Use alpha=0 explicitly for no collective."
            )
        pool = pools[j][everyone[pools[j]]]
        if wanted > pool.size:
            if max_alphas is None:
                share = f"each draws from 1/{k} of the training set"
                fix = (
                    f"lower alphas[{j}], or give max_alphas (the largest alpha each collective takes) to size the pools"
                )
            else:
                share = f"it draws from {weights[j]:.3g} of the training set (max_alphas[{j}] / sum(max_alphas))"
                fix = f"lower alphas[{j}], or raise max_alphas[{j}] against the others"
            raise ValueError(
                f"alphas[{j}]={alpha} asks for {wanted} members, but with {k} disjoint collectives {share}: at most "
                f"{pool.size} of its {n_eligible} eligible points (alpha <= {pool.size / n_eligible:.3g}); {fix}."
            )
        out.append(np.sort(pool[:wanted]).astype(np.int64))
    return out
