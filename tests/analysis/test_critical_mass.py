import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lightning_aca.analysis.critical_mass import AlphaStar, estimate_alpha_star

ALPHA_0, SLOPE = 0.01, 3.0
GRID = np.logspace(-4, 0, 25)


def logistic(alpha, scale=1.0):
    """S(α) = scale / (1 + exp(−k (log α − log α₀))), S-shaped in log α."""
    return scale / (1.0 + np.exp(-SLOPE * (np.log(alpha) - math.log(ALPHA_0))))


def true_alpha_star(success_level):
    # logistic(α) = t  ⇔  log α = log α₀ + log(t / (1 − t)) / k
    return ALPHA_0 * math.exp(math.log(success_level / (1 - success_level)) / SLOPE)


def noisy_sweep(n_seeds, noise, seed):
    rng = np.random.default_rng(seed)
    alphas = np.tile(GRID, n_seeds)
    seeds = np.repeat(np.arange(n_seeds), GRID.size)
    successes = np.clip(logistic(alphas) + rng.normal(0.0, noise, alphas.size), 0.0, 1.0)
    return alphas, successes, seeds


def test_hand_computed_log_interpolation():
    # fitted S crosses 0.8 halfway between 0.6 at α = 0.01 and 1.0 at α = 0.1:
    # log α* = (log 0.01 + log 0.1)/2  ⇒  α* = √(0.001) = 0.0316228
    result = estimate_alpha_star([0.001, 0.01, 0.1], [0.2, 0.6, 1.0], success_level=0.8)
    assert result.alpha_star == pytest.approx(math.sqrt(0.001))
    assert result.reached and not result.at_smallest_alpha
    assert result.low is None and result.high is None and result.n_seeds == 1
    assert str(result) == "α* = 0.0316 in the grid cell 0.01–0.1" and result.grid_cell == (0.01, 0.1)


@pytest.mark.parametrize("success_level", [0.5, 0.9, 0.99])
def test_logistic_curve_recovers_known_alpha_star(success_level):
    # S* = 0.9: α* = 0.01 · 9^(1/3) = 0.020801
    result = estimate_alpha_star(GRID, logistic(GRID), success_level=success_level)
    assert result.alpha_star == pytest.approx(true_alpha_star(success_level), rel=0.05)


def test_curve_that_never_reaches_the_threshold():
    result = estimate_alpha_star(GRID, logistic(GRID, scale=0.73), success_level=0.9)
    assert not result.reached
    assert result.alpha_star is None and result.low is None and result.high is None
    assert result.max_mean_success == pytest.approx(logistic(1.0, scale=0.73))
    assert result.alpha_at_max == 1.0
    assert str(result) == "not reached (max S = 0.73 at α = 1)"


def test_reached_at_the_smallest_alpha_is_not_extrapolated():
    result = estimate_alpha_star([0.001, 0.01], [0.95, 1.0], success_level=0.9)
    assert result.reached and result.at_smallest_alpha
    assert result.alpha_star == 0.001
    assert str(result) == "α* ≤ 0.001 (reached at the smallest α tested)"


def test_isotonic_fit_pools_a_lucky_early_point():
    # A running maximum would stop at α = 0.001. Isotonic regression pools 0.95, 0.3 and 0.5 into
    # 0.5833…, so the crossing lies between α = 0.1 (0.5833) and α = 1 (1.0):
    # fraction (0.9 − 0.58333)/(1 − 0.58333) = 0.76  ⇒  α* = 10^(−1 + 0.76) = 0.57544
    result = estimate_alpha_star([0.001, 0.01, 0.1, 1.0], [0.95, 0.3, 0.5, 1.0], success_level=0.9)
    assert not result.at_smallest_alpha
    assert result.alpha_star == pytest.approx(10 ** (-1 + 0.76))


@pytest.mark.parametrize("data_seed", [1, 2, 3])
def test_bootstrap_interval_over_seeds_contains_the_true_alpha_star(data_seed):
    alphas, successes, seeds = noisy_sweep(n_seeds=10, noise=0.05, seed=data_seed)
    result = estimate_alpha_star(alphas, successes, success_level=0.9, seeds=seeds)
    assert result.n_seeds == 10
    assert result.low <= true_alpha_star(0.9) <= result.high
    assert result.low <= result.alpha_star <= result.high
    assert result.alpha_star == pytest.approx(true_alpha_star(0.9), rel=0.15)
    assert str(result).startswith("α* = ") and str(result).count("[") == 1


def test_bootstrap_is_reproducible_and_narrows_with_more_seeds():
    alphas, successes, seeds = noisy_sweep(n_seeds=40, noise=0.05, seed=7)
    first = estimate_alpha_star(alphas, successes, seeds=seeds, random_state=5)
    assert first == estimate_alpha_star(alphas, successes, seeds=seeds, random_state=5)
    few = np.isin(seeds, np.arange(5))
    narrow = estimate_alpha_star(alphas, successes, seeds=seeds)
    wide = estimate_alpha_star(alphas[few], successes[few], seeds=seeds[few])
    assert narrow.high - narrow.low < wide.high - wide.low


def test_interval_upper_end_is_infinite_when_many_replicates_never_reach():
    # 8 seeds reach 1.0 at α = 1, 2 plateau at 0.6: the mean reaches 0.92 ≥ 0.9. A replicate reaches
    # 0.9 only with ≥ 8 reaching seeds, which fails with probability P(Binomial(10, 0.2) ≥ 3) ≈ 0.32,
    # far above the 2.5 % tail: the interval's upper end is above the tested range.
    alphas = np.tile([0.01, 0.1, 1.0], 10)
    seeds = np.repeat(np.arange(10), 3)
    curves = [[0.1, 0.5, 1.0]] * 8 + [[0.1, 0.5, 0.6]] * 2
    result = estimate_alpha_star(alphas, np.concatenate(curves), success_level=0.9, seeds=seeds)
    assert result.reached and result.high == math.inf
    assert str(result).endswith(", > 1] in the grid cell 0.1–1")


def test_interval_lower_end_below_the_range():
    # 6 seeds at 1.0 and 4 at 0.7 at α = 0.01: mean 0.88 < 0.9, α* = 10^(−2 + 1/6) = 0.014678.
    # A replicate with ≥ 7 high seeds reaches 0.9 at α = 0.01 (P(Binomial(10, 0.6) ≥ 7) ≈ 0.38).
    alphas = np.tile([0.01, 0.1], 10)
    seeds = np.repeat(np.arange(10), 2)
    curves = [[1.0, 1.0]] * 6 + [[0.7, 1.0]] * 4
    result = estimate_alpha_star(alphas, np.concatenate(curves), success_level=0.9, seeds=seeds)
    assert result.alpha_star == pytest.approx(10 ** (-2 + 1 / 6))
    assert result.low == 0.0
    assert str(result).startswith("α* = 0.0147 [≤ 0.01, ")


def test_no_interval_without_replicates():
    alphas, successes, seeds = noisy_sweep(n_seeds=3, noise=0.02, seed=0)
    result = estimate_alpha_star(alphas, successes, seeds=seeds, n_bootstrap=0)
    assert result.low is None and result.high is None and result.n_seeds == 3
    assert isinstance(result, AlphaStar)


@settings(max_examples=50, deadline=None)
@given(
    increments=st.lists(st.floats(0.0, 0.2), min_size=2, max_size=12),
    success_level=st.floats(0.05, 1.0),
)
def test_alpha_star_lies_in_its_bracket_for_any_monotone_curve(increments, success_level):
    successes = np.minimum(np.cumsum(increments), 1.0)
    alphas = np.logspace(-3, 0, len(successes))
    result = estimate_alpha_star(alphas, successes, success_level=success_level)
    if not result.reached:
        assert successes.max() < success_level
        return
    first = int(np.argmax(successes >= success_level))
    if first == 0:
        assert result.at_smallest_alpha and result.alpha_star == alphas[0]
    else:
        assert alphas[first - 1] < result.alpha_star <= alphas[first] * (1 + 1e-12)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alphas": [0.0, 0.1]}, "alphas must be > 0"),
        ({"alphas": [-0.1, 0.1]}, "alphas must be > 0"),
        ({"alphas": [0.1]}, "same length"),
        ({"alphas": []}, "alphas must be a non-empty"),
        ({"successes": [0.2, math.nan]}, "successes must be finite"),
        ({"successes": [0.2, 1.5]}, "successes must be in"),
        ({"success_level": 0.0}, "success_level must be a finite number in"),
        ({"success_level": 1.2}, "success_level must be a finite number in"),
        ({"seeds": [0]}, "seeds must have one label per run"),
        ({"confidence": 1.0}, "confidence must be a finite number in"),
        ({"n_bootstrap": -1}, "n_bootstrap must be a non-negative int"),
    ],
)
def test_rejects_bad_inputs(kwargs, message):
    arguments = {"alphas": [0.01, 0.1], "successes": [0.2, 0.95], **kwargs}
    with pytest.raises(ValueError, match=message):
        estimate_alpha_star(**arguments)
