"""The economics of joining: participation equilibria of a collective on a measured success curve S(α).

Whether a collective of size α* forms depends on what joining costs and what it brings
(Solanki, Bhange, Aïvodji, Creager, "Crowding Out The Noise", arXiv 2505.05707: their stylized
analysis of who joins). Users have participation costs c ~ F (:func:`parse_costs`), success is
worth b to a member, and a rule with an optional privacy term (:class:`Participation`) says who
joins at size α, on a success curve measured (:class:`SuccessCurve`) or analytic (any vectorized
callable). The response R(α) (:func:`response`) has fixed points (:func:`participation_equilibria`),
a tipping size (:func:`tipping_size`) and a smallest benefit b* sustaining S ≥ S*
(:func:`smallest_benefit`).

Benefits, costs and the privacy cost κ share one unit: the cost distribution's (with the default
``uniform:0,1``, the largest cost). Which parts are the paper's framing and which are choices made
here: ``docs/theory.md``, "The economics of joining".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize, stats

from lightning_aca.validation import fraction, non_negative_real, one_of, positive_int, real

__all__ = [
    "COST_FORMS",
    "RULES",
    "Equilibrium",
    "Participation",
    "SuccessCurve",
    "alpha_star",
    "membership_advantage",
    "nondecreasing_fit",
    "parse_costs",
    "participation_equilibria",
    "response",
    "smallest_benefit",
    "tipping_size",
]

#: the participation rules: join on the whole success, or on one's own marginal contribution to it
RULES = ("naive", "free_rider")

#: the text forms of :func:`parse_costs` and the distribution each names
COST_FORMS = {
    "uniform": "uniform:LOW,HIGH (uniform on [LOW, HIGH])",
    "exponential": "exponential:MEAN (exponential with mean MEAN)",
    "lognormal": "lognormal:MEDIAN,SIGMA (log-normal with median MEDIAN and log-scale σ = SIGMA)",
}

# Points per axis of the grid on which fixed points are bracketed (log- and linearly spaced).
_GRID = 2000


def parse_costs(text: str) -> Any:
    """The participation-cost distribution named by ``text``, as a scipy.stats frozen distribution.

    Forms (:data:`COST_FORMS`): ``uniform:LOW,HIGH``, ``exponential:MEAN``, ``lognormal:MEDIAN,SIGMA``.

    Example:
        >>> costs = parse_costs("uniform:0,2")
        >>> float(costs.cdf(0.5)), float(costs.ppf(0.5))
        (0.25, 1.0)
        >>> round(float(parse_costs("exponential:0.5").mean()), 6)
        0.5
    """
    if not isinstance(text, str):
        raise TypeError(f"costs must be text such as 'uniform:0,1', got {text!r} ({type(text).__name__}).")
    name, _, rest = text.partition(":")
    forms = "; ".join(COST_FORMS.values())
    if name not in COST_FORMS:
        raise ValueError(f"costs {text!r}: unknown distribution {name!r}; use one of: {forms}.")
    try:
        values = [float(part) for part in rest.split(",")] if rest else []
    except ValueError:
        raise ValueError(f"costs {text!r}: the parameters must be numbers, as in {COST_FORMS[name]}.") from None
    arity = {"uniform": 2, "exponential": 1, "lognormal": 2}[name]
    if len(values) != arity or not all(map(math.isfinite, values)):
        raise ValueError(f"costs {text!r}: {name} takes {arity} finite number(s): {COST_FORMS[name]}.")
    if name == "uniform":
        low, high = values
        if not 0.0 <= low < high:
            raise ValueError(f"costs {text!r}: uniform needs 0 ≤ LOW < HIGH, got LOW = {low:g}, HIGH = {high:g}.")
        return stats.uniform(loc=low, scale=high - low)
    if name == "exponential":
        mean = real(f"costs {text!r}: MEAN", values[0], low=0.0, low_open=True)
        return stats.expon(scale=mean)
    median = real(f"costs {text!r}: MEDIAN", values[0], low=0.0, low_open=True)
    sigma = real(f"costs {text!r}: SIGMA", values[1], low=0.0, low_open=True)
    return stats.lognorm(s=sigma, scale=median)


def membership_advantage(epsilon: float | None, delta: float = 0.0) -> float:
    """Largest advantage (TPR − FPR) of any test telling from the model whether a user joined the collective.

    A modelling choice made here, not the paper's: joining replaces a record, so the firm is
    (2ε, δ(1 + e^ε))-DP for it (group privacy), and any test between (ε′, δ′)-DP neighbours has
    TPR − FPR ≤ (e^{ε′} − 1 + 2δ′)/(e^{ε′} + 1) (Kairouz, Oh, Viswanath 2015; ``docs/theory.md`` §6).
    ``epsilon=None`` (no DP, ERM) gives 1: nothing is guaranteed.

    Example:
        >>> round(membership_advantage(1.0), 4)  # tanh(1)
        0.7616
        >>> membership_advantage(None)
        1.0
    """
    if epsilon is None:
        return 1.0
    epsilon = real("epsilon", epsilon, low=0.0, allow_inf=True)
    delta = fraction("delta", delta)
    if math.isinf(epsilon):
        return 1.0
    group_delta = delta * (1.0 + math.exp(min(epsilon, 700.0)))
    return min(1.0, math.tanh(epsilon) + 2.0 * group_delta / (math.exp(min(2.0 * epsilon, 700.0)) + 1.0))


@dataclass(frozen=True)
class SuccessCurve:
    """A measured success curve S(α): the monotone fit of per-α mean success, interpolated.

    ``alphas`` start at 0 (S(0): the firm's success without a collective) and ascend; ``successes``
    are non-decreasing, in [0, 1]. Between measured α > 0 the curve is linear in log α, as
    α* is interpolated (:mod:`lightning_aca.analysis.critical_mass`); from 0 to the smallest
    measured α it is linear in α; beyond the largest measured α (``alpha_max``) it stays at its
    last value, since nothing measured says it rises further.

    Example:
        >>> curve = SuccessCurve((0.0, 0.01, 0.1), (0.0, 0.5, 1.0))
        >>> [round(float(s), 4) for s in curve([0.005, 0.01, 10**-1.5, 1.0])]
        [0.25, 0.5, 0.75, 1.0]
    """

    alphas: tuple[float, ...]
    successes: tuple[float, ...]

    def __post_init__(self) -> None:
        alphas, successes = np.asarray(self.alphas, dtype=float), np.asarray(self.successes, dtype=float)
        if alphas.ndim != 1 or alphas.shape != successes.shape or alphas.size < 2:
            raise ValueError(
                "SuccessCurve needs alphas and successes of one length ≥ 2 (α = 0 and at least one measured α > 0), "
                f"got {alphas.shape} and {successes.shape}."
            )
        if alphas[0] != 0.0 or np.any(np.diff(alphas) <= 0) or alphas[-1] > 1.0:
            raise ValueError(f"SuccessCurve alphas must start at 0 and ascend within [0, 1], got {self.alphas}.")
        if not np.all(np.isfinite(successes)) or np.any((successes < 0) | (successes > 1)):
            raise ValueError(f"SuccessCurve successes must be in [0, 1], got {self.successes}.")
        if np.any(np.diff(successes) < 0):
            raise ValueError(
                f"SuccessCurve successes must be non-decreasing (fit them with SuccessCurve.fit), got {self.successes}."
            )
        object.__setattr__(self, "alphas", tuple(map(float, alphas)))
        object.__setattr__(self, "successes", tuple(map(float, successes)))

    @property
    def alpha_max(self) -> float:
        """The largest measured α."""
        return self.alphas[-1]

    def __call__(self, alpha: Any) -> np.ndarray:
        """S at ``alpha`` (a number or an array of them)."""
        a = np.clip(np.asarray(alpha, dtype=float), 0.0, self.alpha_max)
        knots, values = np.asarray(self.alphas[1:]), np.asarray(self.successes[1:])
        in_log = np.interp(np.log(np.maximum(a, knots[0])), np.log(knots), values)
        near_zero = self.successes[0] + (values[0] - self.successes[0]) * a / knots[0]
        return np.where(a < knots[0], near_zero, in_log)

    @classmethod
    def fit(
        cls, alphas: Sequence[float], successes: Sequence[float], weights: Sequence[float] | None = None
    ) -> SuccessCurve:
        """The curve through the weighted least-squares non-decreasing fit of (α, mean S) points, α = 0 first.

        :func:`nondecreasing_fit`, as α*'s (:mod:`lightning_aca.analysis.critical_mass`), weights the
        number of runs behind each mean.

        Example:
            >>> SuccessCurve.fit([0.0, 0.01, 0.02, 0.1], [0.1, 0.6, 0.4, 1.0]).successes
            (0.1, 0.5, 0.5, 1.0)
        """
        points = np.asarray(successes, dtype=float)
        counts = np.ones_like(points) if weights is None else np.asarray(weights, dtype=float)
        if points.shape != counts.shape or points.shape != np.shape(alphas):
            raise ValueError("SuccessCurve.fit needs alphas, successes and weights of one length.")
        return cls(tuple(alphas), tuple(np.clip(nondecreasing_fit(points, counts), 0.0, 1.0)))

    @classmethod
    def from_summary(cls, summary: Any) -> SuccessCurve:
        """The curve of one ``aca-report`` group (:class:`~lightning_aca.analysis.summary.GroupSummary`).

        S(0) is the group's mean S at α = 0 when it has such runs; otherwise the baseline
        (``aca/baseline_success``: the same success measure on the clean versions of the evaluation
        inputs) at its smallest α, the model closest to one trained without a collective.
        """
        measured = [row for row in summary.rows if row.alpha > 0]
        at_zero = [row for row in summary.rows if row.alpha == 0]
        if not measured:
            raise ValueError(f"group {summary.label!r} has no runs with α > 0: no success curve to model.")
        if at_zero:
            s0, n0 = at_zero[0].success_mean, at_zero[0].n_seeds
        elif measured[0].baseline_success_mean is not None:
            s0, n0 = measured[0].baseline_success_mean, measured[0].n_seeds
        else:
            raise ValueError(
                f"group {summary.label!r} has neither α = 0 runs nor a baseline (aca/baseline_success): "
                "S(0) is unknown; add α = 0 runs to the sweep."
            )
        return cls.fit(
            [0.0, *(row.alpha for row in measured)],
            [s0, *(row.success_mean for row in measured)],
            [n0, *(row.n_seeds for row in measured)],
        )


Curve = SuccessCurve | Callable[[np.ndarray], Any]


def nondecreasing_fit(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The weighted least-squares non-decreasing fit of ``values`` in their order (isotonic regression)."""
    return optimize.isotonic_regression(np.asarray(values, dtype=float), weights=np.asarray(weights, dtype=float)).x


@dataclass(frozen=True)
class Participation:
    """Who joins a collective: participation costs, the benefit of success, a rule and a privacy term.

    Attributes:
        costs: the users' participation costs c, a scipy.stats frozen continuous distribution
            with support in [0, ∞) (:func:`parse_costs` builds one from text).
        benefit: b, what success is worth to a member, in the costs' unit, ≥ 0.
        rule: ``naive`` (join if b·S(α) ≥ c + privacy term) or ``free_rider`` (join if
            b·[S(α + 1/N) − S(α)] ≥ c + privacy term).
        population: N, the number of users (the training set size); needed by ``free_rider``.
        privacy_cost: κ, what being identified as a member costs, in the costs' unit; the
            privacy term is κ·:func:`membership_advantage`\\ (ε, δ); 0 (default) switches it off.
        epsilon: the firm's ε; ``None`` for a firm without DP (ERM).
        delta: the firm's δ.
    """

    costs: Any
    benefit: float = 1.0
    rule: str = "naive"
    population: int | None = None
    privacy_cost: float = 0.0
    epsilon: float | None = None
    delta: float = 0.0

    def __post_init__(self) -> None:
        dist = getattr(self.costs, "dist", None)
        if not isinstance(dist, stats.rv_continuous):
            raise TypeError(
                "costs must be a scipy.stats frozen continuous distribution such as scipy.stats.uniform(0, 1) "
                f"(or parse_costs('uniform:0,1')), got {self.costs!r}."
            )
        low = float(self.costs.support()[0])
        if not low >= 0.0:
            raise ValueError(f"costs must be non-negative: the distribution's support starts at {low:g}; shift it.")
        object.__setattr__(self, "benefit", non_negative_real("benefit", self.benefit))
        object.__setattr__(self, "rule", one_of("rule", self.rule, RULES))
        object.__setattr__(self, "privacy_cost", non_negative_real("privacy_cost", self.privacy_cost))
        if self.population is not None:
            object.__setattr__(self, "population", positive_int("population", self.population))
        elif self.rule == "free_rider":
            raise ValueError("rule='free_rider' needs population (N, the training set size): S(α + 1/N) − S(α).")
        if self.epsilon is not None:
            object.__setattr__(self, "epsilon", real("epsilon", self.epsilon, low=0.0, allow_inf=True))
        object.__setattr__(self, "delta", fraction("delta", self.delta))

    @property
    def privacy_term(self) -> float:
        """What a member pays for the risk of being identified: κ·A(ε, δ), 0 when κ = 0."""
        return self.privacy_cost * membership_advantage(self.epsilon, self.delta) if self.privacy_cost else 0.0

    def gain(self, curve: Curve, alpha: np.ndarray, alpha_max: float) -> np.ndarray:
        """What success brings a member at collective size α, before b: S(α), or S(α + 1/N) − S(α)."""
        here = _success(curve, alpha, alpha_max)
        if self.rule == "naive":
            return here
        return _success(curve, np.minimum(alpha + 1.0 / self.population, alpha_max), alpha_max) - here


def _success(curve: Curve, alpha: np.ndarray, alpha_max: float) -> np.ndarray:
    """S at ``alpha`` clipped to [0, α_max] (S is held at S(α_max) beyond), checked to be in [0, 1]."""
    a = np.clip(np.asarray(alpha, dtype=float), 0.0, alpha_max)
    values = np.asarray(curve(a), dtype=float)
    if values.shape != a.shape:
        raise ValueError(
            f"curve must map an array of α to an array of S of the same shape, got shape {values.shape} for {a.shape}."
        )
    if not np.all(np.isfinite(values)) or np.any((values < -1e-12) | (values > 1 + 1e-12)):
        raise ValueError("curve must return success values S in [0, 1].")
    return np.clip(values, 0.0, 1.0)


def _range(curve: Curve, alpha_max: float | None) -> tuple[float, tuple[float, ...]]:
    """α_max (the curve's own for a measured curve) and the measured α, after checking the curve."""
    if isinstance(curve, SuccessCurve):
        top = curve.alpha_max if alpha_max is None else real("alpha_max", alpha_max, low=0.0, high=1.0, low_open=True)
        return top, curve.alphas
    if not callable(curve):
        raise TypeError(f"curve must be a SuccessCurve or a callable S(α), got {curve!r}.")
    if alpha_max is None:
        raise ValueError("an analytic curve needs alpha_max, the largest collective size α considered.")
    return real("alpha_max", alpha_max, low=0.0, high=1.0, low_open=True), ()


def _grid(alpha_max: float, knots: Sequence[float], low: float = 0.0) -> np.ndarray:
    """α in [low, α_max], dense on log and linear scales, with the measured α."""
    start = max(low, alpha_max * 1e-6)
    points = [np.geomspace(start, alpha_max, _GRID), np.linspace(low, alpha_max, _GRID), [low, alpha_max]]
    points.append([knot for knot in knots if low <= knot <= alpha_max])
    return np.unique(np.concatenate(points))


def response(curve: Curve, participation: Participation, alpha: Any, alpha_max: float | None = None) -> np.ndarray:
    """The participation response R(α) = min(F(b·gain(α) − privacy term), α_max): who joins at size α.

    F is the cost distribution's CDF and gain the rule's (:meth:`Participation.gain`). Clipping at
    α_max keeps the model on the measured range: R(α_max) = α_max means at least α_max join.

    Example:
        >>> model = Participation(parse_costs("uniform:0,1"), benefit=0.5)
        >>> [float(r) for r in response(lambda a: 0.2 + 0 * a, model, [0.0, 0.5], alpha_max=1.0)]
        [0.1, 0.1]
    """
    top, _ = _range(curve, alpha_max)
    a = np.asarray(alpha, dtype=float)
    utility = participation.benefit * participation.gain(curve, a, top) - participation.privacy_term
    return np.minimum(participation.costs.cdf(utility), top)


@dataclass(frozen=True)
class Equilibrium:
    """A participation equilibrium: a collective size α that reproduces itself, α = R(α).

    Attributes:
        alpha: the equilibrium size α.
        success: S(α) there.
        slope: the slope of the response R at α (numerical; very large at a jump of S).
        stable: whether small deviations die out (slope < 1).
        at_range_end: α is the largest measured α and at least that many would join: the
            collective may grow beyond the measured range, where S is only known to be ≥ S(α_max).
    """

    alpha: float
    success: float
    slope: float
    stable: bool
    at_range_end: bool = False


def participation_equilibria(
    curve: Curve, participation: Participation, alpha_max: float | None = None
) -> tuple[Equilibrium, ...]:
    """The fixed points of α = R(α) on [0, α_max], ascending, each with its stability.

    Sign changes of R(α) − α are bracketed on a dense grid (the measured α included) and refined
    with :func:`scipy.optimize.brentq`; a point where R only touches the diagonal between grid points
    is not found (a non-generic case). Stable means the response's slope is < 1 there.

    Example (S = 0.15 + α/2, uniform costs on [0, 1], b = 0.5: α = 0.5·(0.15 + α/2) ⇔ α = 0.1):
        >>> model = Participation(parse_costs("uniform:0,1"), benefit=0.5)
        >>> (eq,) = participation_equilibria(lambda a: 0.15 + a / 2, model, alpha_max=1.0)
        >>> round(eq.alpha, 6), round(eq.slope, 6), eq.stable
        (0.1, 0.25, True)
    """
    top, knots = _range(curve, alpha_max)

    def excess(alpha: Any) -> Any:
        return response(curve, participation, alpha, top) - np.asarray(alpha, dtype=float)

    grid = _grid(top, knots)
    values = excess(grid)
    signs = np.sign(values)
    roots = [float(a) for a, s in zip(grid, signs, strict=True) if s == 0]
    for i in np.flatnonzero(signs[:-1] * signs[1:] < 0):
        roots.append(optimize.brentq(lambda a: float(excess(a)), grid[i], grid[i + 1], xtol=top * 1e-13))
    step = top * 1e-7
    found = []
    for alpha in sorted(roots):
        low, high = max(alpha - step, 0.0), min(alpha + step, top)
        rise = response(curve, participation, high, top) - response(curve, participation, low, top)
        slope = float(rise / (high - low))
        found.append(
            Equilibrium(alpha, float(_success(curve, np.asarray(alpha), top)), slope, slope < 1.0, alpha == top)
        )
    return tuple(found)


def tipping_size(equilibria: Sequence[Equilibrium]) -> float | None:
    """The smallest unstable interior equilibrium: a collective above it grows to the next stable one.

    ``None`` when there is none (a single basin: whatever its start, the collective ends at the
    same place).

    Example:
        >>> tipping_size([Equilibrium(0.0, 0.0, 0.0, True), Equilibrium(0.05, 0.5, 9.0, False),
        ...               Equilibrium(0.2, 1.0, 0.0, True, at_range_end=True)])
        0.05
    """
    unstable = [eq.alpha for eq in equilibria if not eq.stable and eq.alpha > 0 and not eq.at_range_end]
    return min(unstable) if unstable else None


def alpha_star(curve: Curve, success_level: float, alpha_max: float | None = None) -> float | None:
    """α*: the smallest α with S(α) ≥ S* on [0, α_max]; ``None`` if S stays below S*.

    Example:
        >>> round(alpha_star(lambda a: a, success_level=0.5, alpha_max=1.0), 6)
        0.5
    """
    success_level = real("success_level", success_level, low=0.0, high=1.0, low_open=True)
    top, knots = _range(curve, alpha_max)
    grid = _grid(top, knots)
    values = _success(curve, grid, top)
    if np.any(np.diff(values) < -1e-9):
        bad = int(np.flatnonzero(np.diff(values) < -1e-9)[0])
        raise ValueError(f"curve must be non-decreasing in α; it falls after α = {grid[bad]:.4g}.")
    above = np.flatnonzero(values >= success_level)
    if above.size == 0:
        return None
    i = int(above[0])
    if i == 0:
        return 0.0

    def shortfall(alpha: float) -> float:
        return float(_success(curve, np.asarray(alpha), top)) - success_level

    return float(optimize.brentq(shortfall, grid[i - 1], grid[i], xtol=top * 1e-13))


def smallest_benefit(
    curve: Curve, participation: Participation, success_level: float, alpha_max: float | None = None
) -> float | None:
    """b*: the smallest benefit that sustains a stable equilibrium with S ≥ S* (``participation.benefit`` unused).

    b* = min over α in [α*, α_max] of (F⁻¹(α) + privacy term)/gain(α), an infimum (why:
    ``docs/theory.md`` §6), taken on a dense grid and refined with
    :func:`scipy.optimize.minimize_scalar`. ``None`` when S never reaches S* on [0, α_max], or when
    no α ≥ α* has a positive gain (free riders on a flat curve).

    Example (linear S = α on [0, 1], uniform costs on [0, 1]: b(α) = α/α = 1 for every α):
        >>> model = Participation(parse_costs("uniform:0,1"))
        >>> round(smallest_benefit(lambda a: a, model, success_level=0.5, alpha_max=1.0), 6)
        1.0
    """
    lowest = alpha_star(curve, success_level, alpha_max)
    if lowest is None:
        return None
    top, knots = _range(curve, alpha_max)

    def needed(alpha: Any) -> np.ndarray:
        a = np.asarray(alpha, dtype=float)
        cost = participation.costs.ppf(a) + participation.privacy_term
        gain = participation.gain(curve, a, top)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(gain > 0, cost / np.where(gain > 0, gain, 1.0), np.where(cost <= 0, 0.0, np.inf))

    grid = _grid(top, knots, low=lowest)
    values = needed(grid)
    best = int(np.argmin(values))
    if not np.isfinite(values[best]):
        return None
    bounds = (grid[max(best - 1, 0)], grid[min(best + 1, grid.size - 1)])
    refined = optimize.minimize_scalar(lambda a: float(needed(a)), bounds=bounds, method="bounded")
    return float(min(values[best], refined.fun))
