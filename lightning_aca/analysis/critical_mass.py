"""The critical mass α* from a measured success curve: the smallest α whose success reaches S*.

The critical mass α* is the smallest collective size with S(α) ≥ S*, the success level
(Hardt, Mazumdar, Mendler-Dünner, Zrnic, "Algorithmic Collective Action in Machine Learning",
ICML 2023, arXiv 2302.04262, §3). :func:`estimate_alpha_star` reads it off a sweep of (α, S)
points, possibly repeated over training seeds, with a bootstrap-over-seeds confidence interval.

Method:

1. Average S per α over all runs at that α.
2. Make the curve non-decreasing with isotonic regression
   (:func:`lightning_aca.economics.nondecreasing_fit`, each α weighted by its number of runs).
   Success grows with α in theory, so dips are noise. Isotonic regression is the least-squares
   non-decreasing fit: it pools a dip with its neighbours. A running maximum would instead keep
   every lucky high point, so one noisy run at small α could declare S* reached and bias α*
   downwards.
3. Take the first α whose fitted S reaches S* and interpolate linearly in log α between
   it and the previous α, because sweeps are log-spaced and curves are S-shaped in log α. If the
   smallest α already reaches S*, only α* ≤ α_min is known; nothing is extrapolated.
4. Bootstrap: resample seeds with replacement, keeping each seed's whole curve, and recompute α*.
   Replicates that never reach S* count as α* = +∞ and those that reach it at their
   smallest α as α* = −∞ (below the range), so they stay in the percentiles rather than being
   dropped, which would bias the interval towards reachable, i.e. small, values. An interval end
   falling on such a replicate is reported as ``math.inf`` (above the tested range) or ``0.0``
   (below it): that is what happens once more than (1 − confidence)/2 of the replicates lie
   outside the range on that side.

The critical number of members m* (:class:`MembersStar`) is α* counted in members: on one training
set of n points a collective of size α has m = α·n members, so m* = α*·n, its interval the
interval's ends times n. Comparing m* across data sizes n asks whether success follows the number
of members rather than the fraction α.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lightning_aca.economics import nondecreasing_fit
from lightning_aca.validation import non_negative_int, real

__all__ = ["AlphaStar", "MembersStar", "estimate_alpha_star"]


class _CriticalSize(ABC):
    """What α* and m* share as text: an estimate, its interval and the tested range (set by subclasses)."""

    low: float | None
    high: float | None
    reached: bool
    at_smallest_alpha: bool

    @property
    @abstractmethod
    def estimate(self) -> float | None:
        """The estimate itself (α* or m*)."""

    @property
    @abstractmethod
    def tested_range(self) -> tuple[float, float]:
        """The smallest and largest size tested, in the estimate's unit."""

    def format_bound(self, value: float) -> str:
        """An interval end as text: ``≤`` the smallest tested below the range, ``>`` the largest above it, else the number."""
        if value == 0.0:
            return f"≤ {self.tested_range[0]:.3g}"
        if math.isinf(value):
            return f"> {self.tested_range[1]:.3g}"
        return f"{value:.3g}"

    def cells(self) -> list[str]:
        """Estimate, low and high as table cells: ``≤`` before an estimate reached at the smallest size, ``–`` where none."""
        estimate = "–"
        if self.reached:
            estimate = f"≤ {self.estimate:.3g}" if self.at_smallest_alpha else f"{self.estimate:.3g}"
        if self.low is None or self.high is None:
            return [estimate, "–", "–"]
        return [estimate, self.format_bound(self.low), self.format_bound(self.high)]

    def _with_interval(self, text: str) -> str:
        if self.low is None or self.high is None:
            return text
        return f"{text} [{self.format_bound(self.low)}, {self.format_bound(self.high)}]"


@dataclass(frozen=True)
class AlphaStar(_CriticalSize):
    """The critical mass α* estimated from a success curve, with a bootstrap interval over seeds.

    Attributes:
        alpha_star: estimated α*; the smallest α tested if ``at_smallest_alpha``; ``None`` if S*
            is not reached in the tested range.
        low: lower end of the confidence interval; ``0.0`` when it falls below the tested range;
            ``None`` when no interval was computed (one seed, ``n_bootstrap=0``, or not reached).
        high: upper end of the confidence interval; ``math.inf`` when it falls above the tested
            range (too many replicates never reach S*); ``None`` as for ``low``.
        reached: whether the monotone mean curve reaches S* within the tested α.
        success_level: the success level S* that defines α*.
        n_seeds: number of distinct seeds (1 when no seeds were given).
        at_smallest_alpha: S* is already reached at the smallest α tested, so only
            α* ≤ ``alpha_star`` is known.
        max_mean_success: largest per-α mean success observed.
        alpha_at_max: the α at which ``max_mean_success`` was observed.
        alpha_range: smallest and largest α tested.
        grid_cell: the two neighbouring tested α between which the mean curve crosses S* (α*
            interpolated inside it); ``None`` when S* is not reached or reached at the smallest α.
            An interval narrower than this cell rests on the interpolation: a finer grid inside
            the cell tests it.
    """

    alpha_star: float | None
    low: float | None
    high: float | None
    reached: bool
    success_level: float
    n_seeds: int
    at_smallest_alpha: bool
    max_mean_success: float
    alpha_at_max: float
    alpha_range: tuple[float, float]
    grid_cell: tuple[float, float] | None = None

    def __str__(self) -> str:
        if not self.reached:
            return f"not reached (max S = {self.max_mean_success:.3g} at α = {self.alpha_at_max:.3g})"
        if self.at_smallest_alpha:
            text = f"α* ≤ {self.alpha_star:.3g} (reached at the smallest α tested)"
        else:
            text = f"α* = {self.alpha_star:.3g}"
        text = self._with_interval(text)
        if self.grid_cell is not None:
            text += f" in the grid cell {self.grid_cell[0]:.3g}–{self.grid_cell[1]:.3g}"
        return text

    @property
    def estimate(self) -> float | None:
        return self.alpha_star

    @property
    def tested_range(self) -> tuple[float, float]:
        return self.alpha_range


@dataclass(frozen=True)
class MembersStar(_CriticalSize):
    """The critical number of members m* = α*·n: the critical mass counted in members on n training points.

    Since a collective of size α on one training set of n points has m = α·n members, m* is α*·n and
    its interval is α*'s interval times n; it is defined only for runs sharing one n (Hardt et al.
    2023, arXiv 2302.04262, §3, counted in members rather than as a fraction).

    Attributes:
        members_star: m* = α*·n; ``None`` if S* is not reached in the tested range.
        low: lower end of the interval; ``0.0`` below the tested range; ``None`` without an interval.
        high: upper end of the interval; ``math.inf`` above the tested range; ``None`` as for ``low``.
        reached: whether S* is reached within the tested α.
        at_smallest_alpha: S* is already reached at the smallest α tested (only m* ≤ ``members_star``).
        n_train: the training-set size n.
        members_range: the tested α range times n.

    Example:
        >>> alpha_star = estimate_alpha_star([0.001, 0.01, 0.1], [0.2, 0.6, 1.0], success_level=0.8)
        >>> print(MembersStar.from_alpha_star(alpha_star, 4000))
        m* = 126
    """

    members_star: float | None
    low: float | None
    high: float | None
    reached: bool
    at_smallest_alpha: bool
    n_train: int
    members_range: tuple[float, float]

    @classmethod
    def from_alpha_star(cls, alpha_star: AlphaStar, n_train: int) -> MembersStar:
        """m* of ``alpha_star`` on a training set of ``n_train`` points: every α-valued field times n."""
        n_train = non_negative_int("n_train", n_train)

        def times_n(value: float | None) -> float | None:
            return None if value is None else value * n_train

        low, high = alpha_star.alpha_range
        return cls(
            members_star=times_n(alpha_star.alpha_star),
            low=times_n(alpha_star.low),
            high=times_n(alpha_star.high),
            reached=alpha_star.reached,
            at_smallest_alpha=alpha_star.at_smallest_alpha,
            n_train=n_train,
            members_range=(low * n_train, high * n_train),
        )

    def __str__(self) -> str:
        if not self.reached:
            return f"m* not reached (at most {self.members_range[1]:.3g} members tested)"
        if self.at_smallest_alpha:
            text = f"m* ≤ {self.members_star:.3g} (reached at the fewest members tested)"
        else:
            text = f"m* = {self.members_star:.3g}"
        return self._with_interval(text)

    @property
    def estimate(self) -> float | None:
        return self.members_star

    @property
    def tested_range(self) -> tuple[float, float]:
        return self.members_range


def _crossing(alphas: np.ndarray, sums: np.ndarray, counts: np.ndarray, success_level: float) -> float:
    """α* of one curve: interpolated in log α; −inf if reached at its smallest α, +inf if never."""
    observed = counts > 0
    alphas, means, weights = alphas[observed], sums[observed] / counts[observed], counts[observed]
    fitted = nondecreasing_fit(means, weights)
    above = np.flatnonzero(fitted >= success_level)
    if above.size == 0:
        return math.inf
    i = int(above[0])
    if i == 0:
        return -math.inf
    fraction = (success_level - fitted[i - 1]) / (fitted[i] - fitted[i - 1])
    log_low, log_high = math.log(alphas[i - 1]), math.log(alphas[i])
    return math.exp(log_low + fraction * (log_high - log_low))


def _as_vector(name: str, values: Sequence[float] | np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of numbers, got shape {array.shape}.")
    if not np.all(np.isfinite(array)):
        bad = int(np.flatnonzero(~np.isfinite(array))[0])
        raise ValueError(f"{name} must be finite, got {array[bad]!r} at index {bad}.")
    return array


def estimate_alpha_star(
    alphas: Sequence[float] | np.ndarray,
    successes: Sequence[float] | np.ndarray,
    success_level: float = 0.9,
    seeds: Sequence[object] | np.ndarray | None = None,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    random_state: int | None = 0,
) -> AlphaStar:
    """Estimate the critical mass α* = min{α : S(α) ≥ S*} from measured (α, S) points.

    The empirical counterpart of the critical mass in Hardt et al. 2023 (arXiv 2302.04262, §3):
    mean success per α, made non-decreasing by isotonic regression, interpolated linearly in log α;
    the interval resamples seeds with replacement (see the module docstring for the method and how
    replicates outside the tested range are handled).

    Args:
        alphas: collective size α of each run, all > 0 (interpolation is in log α).
        successes: measured success S of each run, in [0, 1]; same length as ``alphas``.
        success_level: success level S* defining α*, in (0, 1] (default 0.9).
        seeds: seed label of each run, same length as ``alphas``; runs sharing a label form one
            curve for the bootstrap. ``None`` treats all runs as one seed (no interval).
        n_bootstrap: number of bootstrap replicates, ≥ 0; 0 skips the interval.
        confidence: coverage of the percentile interval, in (0, 1).
        random_state: seed for ``np.random.default_rng`` used by the bootstrap.

    Example:
        >>> result = estimate_alpha_star([0.001, 0.01, 0.1], [0.2, 0.6, 1.0], success_level=0.8)
        >>> round(result.alpha_star, 4)
        0.0316
        >>> print(result)
        α* = 0.0316 in the grid cell 0.01–0.1
    """
    alpha_values = _as_vector("alphas", alphas)
    success_values = _as_vector("successes", successes)
    if success_values.size != alpha_values.size:
        raise ValueError(
            f"alphas and successes must have the same length, got {alpha_values.size} and {success_values.size}."
        )
    if np.any(alpha_values <= 0):
        bad = int(np.flatnonzero(alpha_values <= 0)[0])
        raise ValueError(f"alphas must be > 0 for log-α interpolation, got {alpha_values[bad]!r} at index {bad}.")
    if np.any((success_values < 0) | (success_values > 1)):
        bad = int(np.flatnonzero((success_values < 0) | (success_values > 1))[0])
        raise ValueError(f"successes must be in [0, 1], got {success_values[bad]!r} at index {bad}.")
    success_level = real("success_level", success_level, low=0.0, high=1.0, low_open=True)
    confidence = real("confidence", confidence, low=0.0, high=1.0, low_open=True, high_open=True)
    n_bootstrap = non_negative_int("n_bootstrap", n_bootstrap)
    if seeds is None:
        seed_index = np.zeros(alpha_values.size, dtype=int)
    else:
        seed_labels = np.asarray(seeds)
        if seed_labels.shape != alpha_values.shape:
            raise ValueError(f"seeds must have one label per run ({alpha_values.size}), got shape {seed_labels.shape}.")
        seed_index = np.unique(seed_labels, return_inverse=True)[1].reshape(-1)
    n_seeds = int(seed_index.max()) + 1

    grid, alpha_index = np.unique(alpha_values, return_inverse=True)
    sums = np.zeros((n_seeds, grid.size))
    counts = np.zeros((n_seeds, grid.size))
    np.add.at(sums, (seed_index, alpha_index), success_values)
    np.add.at(counts, (seed_index, alpha_index), 1.0)

    mean_curve = sums.sum(axis=0) / counts.sum(axis=0)
    best = int(np.argmax(mean_curve))
    estimate = _crossing(grid, sums.sum(axis=0), counts.sum(axis=0), success_level)
    reached = estimate != math.inf
    at_smallest = estimate == -math.inf
    alpha_star = float(grid[0]) if at_smallest else (estimate if reached else None)

    low = high = None
    if reached and n_seeds > 1 and n_bootstrap > 0:
        rng = np.random.default_rng(random_state)
        draws = rng.multinomial(n_seeds, np.full(n_seeds, 1.0 / n_seeds), size=n_bootstrap)
        replicate_sums, replicate_counts = draws @ sums, draws @ counts
        replicates = np.array(
            [_crossing(grid, s, c, success_level) for s, c in zip(replicate_sums, replicate_counts, strict=True)]
        )
        tail = (1.0 - confidence) / 2.0
        ends = np.quantile(replicates, tail, method="lower"), np.quantile(replicates, 1.0 - tail, method="higher")
        low, high = (0.0 if end == -math.inf else float(end) for end in ends)

    return AlphaStar(
        alpha_star=alpha_star,
        low=low,
        high=high,
        reached=reached,
        success_level=success_level,
        n_seeds=n_seeds,
        at_smallest_alpha=at_smallest,
        max_mean_success=float(mean_curve[best]),
        alpha_at_max=float(grid[best]),
        alpha_range=(float(grid[0]), float(grid[-1])),
        grid_cell=_cell(grid, alpha_star) if reached and not at_smallest else None,
    )


def _cell(grid: np.ndarray, alpha_star: float) -> tuple[float, float]:
    """The neighbouring tested α around ``alpha_star`` (the same α twice when it is a tested one)."""
    upper = int(np.searchsorted(grid, alpha_star, side="left"))
    if grid[upper] == alpha_star:
        return float(alpha_star), float(alpha_star)
    return float(grid[upper - 1]), float(grid[upper])
