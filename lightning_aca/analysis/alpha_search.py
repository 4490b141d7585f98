"""Where to train next when searching for the critical mass α*: bracket it, k-section it in log α, replicate seeds.

The critical mass α* is the smallest collective size whose success reaches S* (Hardt, Mazumdar,
Mendler-Dünner, Zrnic, ICML 2023, arXiv 2302.04262, §3). A grid spends most of its runs far from
α*; :class:`AlphaSearch` instead looks at the runs finished so far, fits them with
:func:`~lightning_aca.analysis.critical_mass.estimate_alpha_star` (the monotone fit and bootstrap
interval ``aca-report`` uses) and says which (α, seed) runs decide α* next. One step's runs form
one round; a round places up to k = ``points_per_round`` new α values, since where rounds are
trained as one stack of models a round costs about the same whatever its size:

1. **Start**: ``initial`` α values log-spaced *inside* the range (the ends are tried only if the
   fit points beyond the inner values), each with the first ``explore_seeds`` seeds.
2. **Bracket**: while the fitted curve stays below S*, try up to k α log-spaced above the largest
   α tried, the range's upper end the last of them; while it already reaches S* at the smallest α
   tried, likewise below it down to the lower end. An end run with every seed that still does not
   bracket α* ends the search: "not reached" (S* above the curve over the range) or "below range"
   (α* ≤ the lower end).
3. **Cut**: the bracket is the pair of tried α next to the estimate α̂, the *tolerance window*
   α̂·(1 ± tol). While the bracket does not lie in the window, try up to k α log-spaced strictly
   inside it (k-section: the bracket shrinks by a factor k + 1 in log α a round), no more than cut
   it into parts half the window wide, √((1 + tol)/(1 − tol)) as a ratio: such a part lies in the
   window unless α̂ falls at its very bottom. A lone point that leaves only such parts gets every
   seed at once: it will be an end of the next bracket, which lies in the window, where every seed
   must run anyway. With k = 1 the cut is a bisection while the bracket spans more than
   ((1 + tol)/(1 − tol))², then α̂·(1 ∓ tol/2) on each side that has no tried α within the window.
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
import numbers
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


def _inside(low: float, high: float, n: int) -> list[float]:
    """``n`` α values log-spaced strictly inside (low, high)."""
    start, stop = math.log(low), math.log(high)
    return [_rounded(math.exp(start + (stop - start) * i / (n + 1))) for i in range(1, n + 1)]


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
            and cut; the rest are added at the bracket's ends.
        n_bootstrap: bootstrap replicates of α*'s interval (``aca-report``'s default: 1000).
        points_per_round: k, the most α values one step places while bracketing and cutting: k
            points k-section the bracket, 1 bisects it (``hydra/sweeper=critical_mass``'s default: 4).

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
    points_per_round: int = 1

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
        k = self.points_per_round
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise ValueError(
                f"points_per_round must be a positive int (the most α values a round tries per setting), got {k!r}: "
                "give a whole number such as 3 (k-section of the bracket) or 1 (bisection)."
            )
        object.__setattr__(self, "points_per_round", int(k))

    def initial_alphas(self) -> list[float]:
        """The first step's α values: ``initial`` points log-spaced strictly inside ``alpha_range``."""
        return _inside(*self.alpha_range, self.initial)

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

    def _parts(self, ratio: float) -> int:
        """Into how many parts a span of α (``ratio``: its upper over its lower end) is cut for each to be
        at most half the tolerance window wide in log α."""
        half_window = math.log((1 + self.tolerance) / (1 - self.tolerance)) / 2
        return max(1, math.ceil(math.log(ratio) / half_window - 1e-9))

    def _cut(self, ran: dict[float, set[int]], below: float, above: float) -> list[tuple[float, int]]:
        """The runs that k-section the bracket (below, above); a lone last cut with every seed."""
        parts = self._parts(above / below)
        points = [a for a in _inside(below, above, min(self.points_per_round, max(parts - 1, 1))) if below < a < above]
        if parts <= 2 and len(points) == 1:
            return self._missing(ran, points[0])
        return [run for a in dict.fromkeys(points) for run in self._explore(a)]

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
            if not beyond:
                runs = self._missing(ran, tried[-1] if not fit.reached else tried[0])
            else:  # up to k points out to the range's end, the end one of them
                span = sorted((tried[-1] if not fit.reached else tried[0], end))
                n = min(self.points_per_round, self._parts(span[1] / span[0]))
                runs = [run for a in sorted({_rounded(end), *_inside(*span, n - 1)}) for run in self._explore(a)]
            return self._next(runs, fit, None, n_runs, stop=status)

        estimate = float(fit.alpha_star)
        below = max(a for a in tried if a < estimate)
        above = min(a for a in tried if a >= estimate * (1 - 1e-9))
        bracket = (below, above)
        window = (estimate * (1 - self.tolerance), estimate * (1 + self.tolerance))
        complete = not self._missing(ran, below) and not self._missing(ran, above)
        if complete and self._within(fit, bracket, window):
            return SearchStep("converged", fit, bracket, (), n_runs)
        outside = below < window[0] or above > window[1]
        if above / below > ((1 + self.tolerance) / (1 - self.tolerance)) ** 2 or (
            outside and self.points_per_round > 1
        ):
            if cut := self._cut(ran, below, above):
                return self._next(cut, fit, bracket, n_runs)
        elif outside:  # one point a round: α̂ · (1 ∓ tol/2) where the bracket leaves the window
            flanks = []
            if below < window[0]:
                flanks += self._explore(estimate * (1 - self.tolerance / 2))
            if above > window[1]:
                flanks += self._explore(estimate * (1 + self.tolerance / 2))
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
