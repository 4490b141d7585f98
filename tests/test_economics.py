import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from lightning_aca.economics import (
    Equilibrium,
    Participation,
    SuccessCurve,
    membership_advantage,
    nondecreasing_fit,
    parse_costs,
    participation_equilibria,
    response,
    smallest_benefit,
    tipping_size,
)

UNIFORM = parse_costs("uniform:0,1")


def linear(s0, slope):
    return lambda a: s0 + slope * np.asarray(a)


def step(at):
    return lambda a: np.where(np.asarray(a) >= at, 1.0, 0.0)


def logistic(middle, width):
    return lambda a: 1.0 / (1.0 + np.exp(-(np.asarray(a) - middle) / width))


def naive(benefit, **kwargs):
    return Participation(UNIFORM, benefit, **kwargs)


def test_linear_success_has_the_closed_form_fixed_point_and_slope():
    # α = b·(s0 + kα)  ⇔  α = b·s0 / (1 − b·k), slope b·k
    (eq,) = participation_equilibria(linear(0.1, 0.5), naive(0.8), alpha_max=1.0)
    assert eq.alpha == pytest.approx(0.08 / 0.6, abs=1e-10)
    assert eq.slope == pytest.approx(0.4, abs=1e-6)
    assert eq.stable and not eq.at_range_end
    assert eq.success == pytest.approx(0.1 + 0.5 * 0.08 / 0.6, abs=1e-10)


def test_step_success_has_a_stable_zero_a_tipping_point_at_the_step_and_a_stable_top():
    eqs = participation_equilibria(step(0.2), naive(0.6), alpha_max=1.0)
    assert [round(eq.alpha, 9) for eq in eqs] == [0.0, 0.2, 0.6]
    assert [eq.stable for eq in eqs] == [True, False, True]
    assert eqs[1].slope > 1e3  # the jump of S
    assert tipping_size(eqs) == pytest.approx(0.2, abs=1e-9)
    # b* = F⁻¹(a)/1 = a: at b just above the step the collective can hold at the step
    assert smallest_benefit(step(0.2), naive(0.6), success_level=0.9, alpha_max=1.0) == pytest.approx(0.2, abs=1e-9)


def test_benefit_beyond_the_range_ends_at_the_largest_alpha():
    eqs = participation_equilibria(step(0.2), naive(0.9), alpha_max=0.5)
    assert eqs[-1].alpha == 0.5 and eqs[-1].at_range_end and eqs[-1].stable
    assert tipping_size(eqs) == pytest.approx(0.2, abs=1e-9)


def test_logistic_success_has_three_equilibria_the_middle_one_tips():
    curve, b = logistic(0.3, 0.05), 0.5
    eqs = participation_equilibria(curve, naive(b), alpha_max=1.0)
    assert [eq.stable for eq in eqs] == [True, False, True]
    for eq in eqs:
        s = float(curve(eq.alpha))
        assert eq.alpha == pytest.approx(b * s, abs=1e-10)  # a fixed point of α = F(b·S(α)) = b·S(α)
        assert eq.slope == pytest.approx(b * s * (1 - s) / 0.05, rel=1e-4)  # b·S′(α)
    assert eqs[0].alpha < 0.01 and 0.3 < eqs[1].alpha < 0.45 and eqs[2].alpha > 0.45
    assert tipping_size(eqs) == eqs[1].alpha


def test_smallest_benefit_by_hand_on_a_linear_curve():
    # b(α) = α/(s0 + kα) grows with α, so b* = α*/S*, α* = (S* − s0)/k
    assert smallest_benefit(linear(0.1, 2.0), naive(1.0), 0.9, alpha_max=0.45) == pytest.approx(0.4 / 0.9, rel=1e-9)
    # a privacy term p: b(α) = (α + p)/(s0 + kα), still increasing when s0 > k·p
    model = naive(1.0, privacy_cost=0.02, epsilon=1.0)
    p = 0.02 * math.tanh(1.0)
    assert model.privacy_term == pytest.approx(p)
    assert smallest_benefit(linear(0.1, 2.0), model, 0.9, alpha_max=0.45) == pytest.approx((0.4 + p) / 0.9, rel=1e-9)


@pytest.mark.parametrize("middle, width, level", [(0.3, 0.05, 0.9), (0.1, 0.02, 0.8), (0.05, 0.01, 0.95)])
def test_smallest_benefit_is_where_a_successful_stable_equilibrium_appears(middle, width, level):
    curve = logistic(middle, width)
    b_star = smallest_benefit(curve, naive(1.0), level, alpha_max=1.0)

    def successful(benefit):
        return [eq for eq in participation_equilibria(curve, naive(benefit), 1.0) if eq.stable and eq.success >= level]

    assert successful(b_star * 1.001)
    assert not successful(b_star * 0.999)


def test_exponential_costs_use_the_quantile():
    # linear S = α, exponential costs of mean 1: b(α) = −ln(1 − α)/α, increasing, so b* = b(α*) at α* = S*
    costs = parse_costs("exponential:1")
    b_star = smallest_benefit(lambda a: np.asarray(a), Participation(costs), 0.5, alpha_max=1.0)
    assert b_star == pytest.approx(-math.log(0.5) / 0.5, rel=1e-9)


def test_free_riders_let_the_collective_collapse():
    # S = s0 + kα: each member adds k/N, so R = F(b·k/N) is constant and b* = α*·N/k
    population, curve = 1000, linear(0.1, 2.0)
    model = Participation(UNIFORM, 1.0, "free_rider", population=population)
    (eq,) = participation_equilibria(curve, model, alpha_max=0.45)
    assert eq.alpha == pytest.approx(2.0 / population, rel=1e-6)
    assert eq.success < 0.11
    naive_star = smallest_benefit(curve, naive(1.0), 0.9, alpha_max=0.45)
    rider_star = smallest_benefit(curve, model, 0.9, alpha_max=0.45)
    assert rider_star == pytest.approx(0.4 * population / 2.0, rel=1e-6)
    assert rider_star / naive_star == pytest.approx(0.9 * population / 2.0, rel=1e-6)


def test_not_reachable_when_success_stays_below_the_level():
    assert smallest_benefit(linear(0.1, 0.5), naive(1.0), 0.9, alpha_max=1.0) is None

    # S* is met without a collective: no benefit is needed, unless joining costs something for sure,
    # which a free rider, adding nothing, never recovers
    def flat(alpha):
        return np.full(np.shape(alpha), 0.95)

    riders = Participation(UNIFORM, 1.0, "free_rider", population=100)
    assert smallest_benefit(flat, riders, 0.9, alpha_max=1.0) == 0.0
    private = Participation(UNIFORM, 1.0, "free_rider", population=100, privacy_cost=0.1)
    assert smallest_benefit(flat, private, 0.9, alpha_max=1.0) is None


def test_success_curve_interpolates_in_log_alpha_and_is_flat_beyond_its_range():
    curve = SuccessCurve.fit([0.0, 0.01, 0.1, 0.2], [0.1, 0.3, 0.2, 0.9], [5, 5, 5, 5])
    assert curve.successes == pytest.approx((0.1, 0.25, 0.25, 0.9))
    assert float(curve(0.005)) == pytest.approx(0.175)
    assert float(curve(math.sqrt(0.1 * 0.2))) == pytest.approx(0.575)
    assert float(curve(0.5)) == 0.9 and curve.alpha_max == 0.2
    model = naive(1.0)
    assert smallest_benefit(curve, model, 0.9) == pytest.approx(0.2 / 0.9)
    assert response(curve, model, [0.2])[0] == pytest.approx(0.2)  # clipped at α_max


def test_membership_advantage_by_hand():
    assert membership_advantage(1.0) == pytest.approx(math.tanh(1.0))
    # (2ε, δ(1 + e^ε)) for a replaced record: (e^{2ε} − 1 + 2δ′)/(e^{2ε} + 1)
    eps, delta = 0.5, 1e-3
    group_delta = delta * (1 + math.exp(eps))
    expected = (math.exp(2 * eps) - 1 + 2 * group_delta) / (math.exp(2 * eps) + 1)
    assert membership_advantage(eps, delta) == pytest.approx(expected)
    assert membership_advantage(None) == membership_advantage(math.inf) == 1.0
    assert membership_advantage(0.0) == 0.0


def test_tipping_size_ignores_stable_and_range_end_points():
    eqs = [Equilibrium(0.01, 0.1, 0.2, True), Equilibrium(0.2, 0.9, 3.0, False, at_range_end=True)]
    assert tipping_size(eqs) is None


@settings(max_examples=25, deadline=None)
@given(
    middle=st.floats(0.05, 0.6),
    width=st.floats(0.01, 0.2),
    benefit=st.floats(0.05, 2.0),
)
def test_every_equilibrium_is_a_fixed_point_and_stability_alternates(middle, width, benefit):
    curve, model = logistic(middle, width), naive(benefit)
    eqs = participation_equilibria(curve, model, alpha_max=1.0)
    assert eqs
    for eq in eqs:
        assert float(response(curve, model, eq.alpha, 1.0)) == pytest.approx(eq.alpha, abs=1e-9)
    # the naive response is increasing: crossings alternate, and the lowest and highest are stable
    transversal = [eq for eq in eqs if abs(eq.slope - 1.0) > 1e-3]
    assert [eq.stable for eq in transversal] == [i % 2 == 0 for i in range(len(transversal))]


@pytest.mark.parametrize(
    "text, message",
    [
        ("gamma:1", "unknown distribution 'gamma'"),
        ("uniform:0", "uniform takes 2"),
        ("uniform:1,0", "0 ≤ LOW < HIGH"),
        ("uniform:-1,1", "0 ≤ LOW < HIGH"),
        ("exponential:a", "must be numbers"),
        ("exponential:-2", "MEAN must be"),
        ("lognormal:1,nan", "lognormal takes 2 finite"),
    ],
)
def test_bad_cost_text_names_the_form(text, message):
    with pytest.raises(ValueError, match=message):
        parse_costs(text)


@given(st.text(max_size=20))
def test_any_cost_text_parses_or_says_what_is_allowed(text):
    try:
        costs = parse_costs(text)
    except ValueError as error:
        assert "costs" in str(error)
    else:
        assert costs.support()[0] >= 0


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"benefit": -1.0}, ValueError, "benefit must be"),
        ({"rule": "greedy"}, ValueError, "rule must be one of"),
        ({"rule": "free_rider"}, ValueError, "needs population"),
        ({"population": 0, "rule": "free_rider"}, ValueError, "population must be"),
        ({"privacy_cost": -0.1}, ValueError, "privacy_cost must be"),
        ({"delta": 2.0}, ValueError, "delta must be"),
        ({"costs": stats.norm()}, ValueError, "costs must be non-negative"),
        ({"costs": "uniform:0,1"}, TypeError, "frozen continuous distribution"),
    ],
)
def test_bad_participation_arguments_name_the_parameter(kwargs, error, message):
    with pytest.raises(error, match=message):
        Participation(**({"costs": UNIFORM} | kwargs))


def test_bad_curves_name_the_problem():
    with pytest.raises(ValueError, match="needs alpha_max"):
        participation_equilibria(linear(0.1, 1.0), naive(1.0))
    with pytest.raises(ValueError, match="non-decreasing"):
        smallest_benefit(lambda a: 1.0 - np.asarray(a), naive(1.0), 0.5, alpha_max=1.0)
    with pytest.raises(ValueError, match="same shape"):
        participation_equilibria(lambda a: 0.5, naive(1.0), alpha_max=1.0)
    with pytest.raises(ValueError, match=r"S in \[0, 1\]"):
        participation_equilibria(linear(0.5, 2.0), naive(1.0), alpha_max=1.0)
    with pytest.raises(ValueError, match="alpha_max must be"):
        participation_equilibria(linear(0.1, 1.0), naive(1.0), alpha_max=1.5)
    with pytest.raises(ValueError, match="non-decreasing"):
        SuccessCurve((0.0, 0.1), (0.5, 0.4))
    with pytest.raises(ValueError, match="start at 0"):
        SuccessCurve((0.01, 0.1), (0.1, 0.4))
    with pytest.raises(ValueError, match="success_level must be"):
        smallest_benefit(linear(0.1, 1.0), naive(1.0), 0.0, alpha_max=1.0)


@pytest.mark.parametrize(
    ("values", "weights", "fitted"),
    [
        # the weighted pool-adjacent-violators solutions
        ([0.95, 0.3, 0.5, 1.0], [1, 1, 1, 1], [0.5833333333333334, 0.5833333333333334, 0.5833333333333334, 1.0]),
        (
            [0.2, 0.6, 0.4, 0.9, 0.8, 1.0],
            [3, 1, 2, 1, 1, 2],
            [0.2, 0.4666666666666666, 0.4666666666666666, 0.8500000000000001, 0.8500000000000001, 1.0],
        ),
        ([0.5, 0.5, 0.1, 0.7], [1, 2, 1, 1], [0.4, 0.4, 0.4, 0.7]),
        ([0.1, 0.2, 0.3], [1, 1, 1], [0.1, 0.2, 0.3]),
        ([1.0, 0.0], [1, 3], [0.25, 0.25]),
    ],
)
def test_isotonic_fit_equals_weighted_pool_adjacent_violators(values, weights, fitted):
    result = nondecreasing_fit(np.array(values), np.array(weights, dtype=float))
    assert result == pytest.approx(fitted, abs=1e-12)
