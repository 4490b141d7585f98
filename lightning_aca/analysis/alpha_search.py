"""Where to train next when searching for the critical mass α*: bracket it, bisect in log α, replicate seeds.

The critical mass α* is the smallest collective size whose success reaches S* (Hardt, Mazumdar,
Mendler-Dünner, Zrnic, ICML 2023, arXiv 2302.04262, §3). A grid spends most of its runs far from
α*; :class:`AlphaSearch` instead looks at the runs finished so far, fits them with
:func:`~lightning_aca.analysis.critical_mass.estimate_alpha_star` (the monotone fit and bootstrap
interval ``aca-report`` uses) and says which (α, seed) runs decide α* next:

1. **Start**: ``initial`` α values log-spaced *inside* the range (the ends are tried only if the
   fit points beyond the inner values), each with the first ``explore_seeds`` seeds.
2. **Bracket**: while the fitted curve stays below S*, try the range's upper end; while it
   already reaches S* at the smallest α tried, the lower end. An end run with every seed that
   still does not bracket α* ends the search: "not reached" (S* above the curve over the range)
   or "below range" (α* ≤ the lower end).
3. **Bisect**: the bracket is the pair of tried α next to the estimate α̂. While it spans more
   than ((1 + tol)/(1 − tol))², try its midpoint in log α; once narrower, try α̂·(1 ∓ tol/2)
   on each side that has no tried α within α̂·(1 ± tol) — the *tolerance window*.
4. **Replicate**: once both bracket ends lie in the window, run the missing seeds there (and,
   while the interval still leaves the window, at the next tried α beyond), since the bootstrap
   interval resamples seeds.
5. **Stop** when every seed ran at both bracket ends and the bootstrap interval lies in the
   window ("converged"; with one seed, when the bracket does), when the replicated points leave
   nothing to run but the interval is still wider ("seeds disagree": more seeds would narrow it;
   an interval open above every tried α first gets every seed one tolerance step further up),
   or when ``max_runs`` runs are spent ("budget spent").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from lightning_aca.analysis.critical_mass import AlphaStar, estimate_alpha_star
from lightning_aca.validation import integer, positive_int, real

__all__ = ["AlphaSearch", "SearchStep"]

Status = Literal["running", "converged", "not reached", "below range", "seeds disagree", "budget spent"]


def _rounded(alpha: float) -> float:
    """α to 4 significant digits: readable run directories, and the same value a record reads back."""
    return float(f"{alpha:.4g}")


@dataclass(frozen=True)
class SearchStep:
    """One step of an :class:`AlphaSearch`: the fit of the runs so far and the runs to train next.

    Attributes:
        status: ``"running"`` while ``runs`` is non-empty; otherwise why the search stopped:
            ``"converged"``, ``"not reached"``, ``"below range"``, ``"seeds disagree"`` or
            ``"budget spent"``.
        fit: α* with its bootstrap interval from the runs so far; ``None`` before the first run.
        bracket: the tried α just below and just above the estimate α̂ (``None`` while α* is
            not bracketed).
        runs: ``(α, seed)`` pairs to train next.
        n_runs: how many runs the fit used.
    """

    status: Status
    fit: AlphaStar | None
    bracket: tuple[float, float] | None
    runs: tuple[tuple[float, int], ...]
    n_runs: int

    @property
    def done(self) -> bool:
        """Whether the search stopped (nothing left to run)."""
        return self.status != "running"


@dataclass(frozen=True)
class AlphaSearch:
    """An adaptive search for the critical mass α* of one setting (see the module docstring for the rule).

    Args:
        alpha_range: the smallest and largest α to try, 0 < low < high ≤ 1.
        seeds: the seeds each point deciding α* is trained with (distinct ints).
        success_level: the success level S* that defines α*, in (0, 1].
        tolerance: relative half-width of the tolerance window: the search converges when α*'s
            interval lies within α̂·(1 ± tolerance); in (0, 1).
        max_runs: the most runs of this setting (those found already included).
        initial: α values of the first step, log-spaced inside ``alpha_range``.
        explore_seeds: how many of ``seeds`` (the first ones) a point gets while α* is bracketed
            and bisected; the rest are added at the bracket's ends.
        n_bootstrap: bootstrap replicates of α*'s interval (``aca-report``'s default: 1000).

    Example:
        >>> search = AlphaSearch((0.001, 0.1), seeds=(0, 1), initial=3)
        >>> search.step([], [], []).runs
        ((0.003162, 0), (0.01, 0), (0.03162, 0))
        >>> step = search.step([0.003162, 0.01, 0.03162], [0.2, 0.6, 0.95], [0, 0, 0])
        >>> step.status, step.bracket, step.runs
        ('running', (0.01, 0.03162), ((0.01778, 0),))
    """

    alpha_range: tuple[float, float]
    seeds: tuple[int, ...]
    success_level: float = 0.9
    tolerance: float = 0.25
    max_runs: int = 40
    initial: int = 3
    explore_seeds: int = 1
    n_bootstrap: int = 1000

    def __post_init__(self) -> None:
        if len(self.alpha_range) != 2:
            raise ValueError(f"alpha_range must be [low, high], got {list(self.alpha_range)!r}.")
        low = real("alpha_range[0]", self.alpha_range[0], low=0.0, high=1.0, low_open=True)
        high = real("alpha_range[1]", self.alpha_range[1], low=0.0, high=1.0, low_open=True)
        if not low < high:
            raise ValueError(f"alpha_range must be [low, high] with low < high, got [{low!r}, {high!r}].")
        seeds = tuple(integer(f"seeds[{i}]", s, low=0, kind="a non-negative int") for i, s in enumerate(self.seeds))
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be a non-empty list of distinct ints, got {list(self.seeds)!r}.")
        tolerance = real("tolerance", self.tolerance, low=0.0, high=1.0, low_open=True, high_open=True)
        explore = positive_int("explore_seeds", self.explore_seeds)
        if explore > len(seeds):
            raise ValueError(f"explore_seeds must be at most the number of seeds ({len(seeds)}), got {explore}.")
        object.__setattr__(self, "alpha_range", (low, high))
        object.__setattr__(self, "seeds", seeds)
        object.__setattr__(
            self, "success_level", real("success_level", self.success_level, low=0.0, high=1.0, low_open=True)
        )
        object.__setattr__(self, "tolerance", tolerance)
        object.__setattr__(self, "max_runs", positive_int("max_runs", self.max_runs))
        object.__setattr__(self, "initial", positive_int("initial", self.initial))
        object.__setattr__(self, "explore_seeds", explore)
        object.__setattr__(self, "n_bootstrap", positive_int("n_bootstrap", self.n_bootstrap))

    def initial_alphas(self) -> list[float]:
        """The first step's α values: ``initial`` points log-spaced strictly inside ``alpha_range``."""
        low, high = (math.log(a) for a in self.alpha_range)
        return [_rounded(math.exp(low + (high - low) * i / (self.initial + 1))) for i in range(1, self.initial + 1)]

    def step(self, alphas: Sequence[float], successes: Sequence[float], seeds: Sequence[int]) -> SearchStep:
        """The fit of the finished runs (α, S, seed of each) and the runs that decide α* next.

        Runs with a seed outside ``seeds`` or an α outside ``alpha_range`` are left out.
        """
        if not len(alphas) == len(successes) == len(seeds):
            raise ValueError(
                f"alphas, successes and seeds must have one entry per run, got {len(alphas)}, {len(successes)} "
                f"and {len(seeds)}."
            )
        low, high = self.alpha_range
        kept = [
            (float(a), float(s), int(seed))
            for a, s, seed in zip(alphas, successes, seeds, strict=True)
            if int(seed) in self.seeds and low * (1 - 1e-9) <= float(a) <= high * (1 + 1e-9)
        ]
        if not kept:
            explore = self.seeds[: self.explore_seeds]
            return self._next([(a, s) for a in self.initial_alphas() for s in explore], None, None, 0)
        fit = estimate_alpha_star(
            [a for a, _, _ in kept],
            [s for _, s, _ in kept],
            success_level=self.success_level,
            seeds=[str(seed) for _, _, seed in kept],
            n_bootstrap=self.n_bootstrap,
        )
        ran: dict[float, set[int]] = {}
        for a, _, seed in kept:
            ran.setdefault(a, set()).add(seed)
        return self._decide(fit, ran, len(kept))

    def _missing(self, ran: dict[float, set[int]], alpha: float) -> list[tuple[float, int]]:
        return [(alpha, s) for s in self.seeds if s not in ran.get(alpha, set())]

    def _explore(self, alpha: float) -> list[tuple[float, int]]:
        return [(_rounded(alpha), s) for s in self.seeds[: self.explore_seeds]]

    def _next(
        self,
        runs: list[tuple[float, int]],
        fit: AlphaStar | None,
        bracket: tuple[float, float] | None,
        n_runs: int,
        stop: Status = "converged",
    ) -> SearchStep:
        """``runs`` to train next, capped by the budget; ``stop`` is the status when there are none."""
        if not runs:
            return SearchStep(stop, fit, bracket, (), n_runs)
        left = self.max_runs - n_runs
        if left <= 0:
            return SearchStep("budget spent", fit, bracket, (), n_runs)
        return SearchStep("running", fit, bracket, tuple(runs[:left]), n_runs)

    def _decide(self, fit: AlphaStar, ran: dict[float, set[int]], n_runs: int) -> SearchStep:
        tried = sorted(ran)
        low, high = self.alpha_range
        if not fit.reached or fit.at_smallest_alpha:
            end, status = (high, "not reached") if not fit.reached else (low, "below range")
            beyond = tried[-1] < high if not fit.reached else tried[0] > low
            runs = self._explore(end) if beyond else self._missing(ran, tried[-1] if not fit.reached else tried[0])
            return self._next(runs, fit, None, n_runs, stop=status)

        estimate = float(fit.alpha_star)
        below = max(a for a in tried if a < estimate)
        above = min(a for a in tried if a >= estimate * (1 - 1e-9))
        bracket = (below, above)
        window = (estimate * (1 - self.tolerance), estimate * (1 + self.tolerance))
        complete = not self._missing(ran, below) and not self._missing(ran, above)
        if complete and self._within(fit, bracket, window):
            return SearchStep("converged", fit, bracket, (), n_runs)
        if above / below > ((1 + self.tolerance) / (1 - self.tolerance)) ** 2:
            return self._next(self._explore(math.sqrt(below * above)), fit, bracket, n_runs)
        flanks = []
        if below < window[0]:
            flanks += self._explore(estimate * (1 - self.tolerance / 2))
        if above > window[1]:
            flanks += self._explore(estimate * (1 + self.tolerance / 2))
        if flanks:
            return self._next(flanks, fit, bracket, n_runs)
        runs = self._missing(ran, below) + self._missing(ran, above)
        if not runs and fit.low is not None and fit.high is not None:
            # the interval leaves the window: complete the seeds at the tried α bracketing its end,
            # or, where a replicate leaves the tried α, at the nearest one beyond the bracket lacking some
            if fit.low < window[0]:
                beyond = reversed(tried[: tried.index(below)])
                edge = [a for a in beyond if a <= fit.low][:1] if fit.low > 0 else list(beyond)
                runs += next((m for a in edge if (m := self._missing(ran, a))), [])
            if fit.high > window[1]:
                beyond = iter(tried[tried.index(above) + 1 :])
                edge = [a for a in beyond if a >= fit.high][:1] if math.isfinite(fit.high) else list(beyond)
                runs += next((m for a in edge if (m := self._missing(ran, a))), [])
                if not runs and math.isinf(fit.high) and tried[-1] < self.alpha_range[1]:
                    # the interval is open above every tried α: every seed one tolerance step further up
                    step = (1 + self.tolerance) / (1 - self.tolerance)
                    runs += self._missing(ran, _rounded(min(tried[-1] * step, self.alpha_range[1])))
        return self._next(runs, fit, bracket, n_runs, stop="seeds disagree")

    def _within(self, fit: AlphaStar, bracket: tuple[float, float], window: tuple[float, float]) -> bool:
        """Whether α* is located to the tolerance: its interval (one seed: its bracket) lies in the window."""
        if len(self.seeds) == 1:
            low, high = bracket
        elif fit.low is None or fit.high is None:
            return False
        else:
            low, high = fit.low, fit.high
        return window[0] * (1 - 1e-9) <= low and high <= window[1] * (1 + 1e-9)
