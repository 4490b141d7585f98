"""AlphaSearch: where the next runs go, and when the search stops, on known S(α) curves plus noise."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lightning_aca.analysis.alpha_search import AlphaSearch


def logistic(alpha, alpha_50, slope=3.0):
    """A success curve S-shaped in log α: S(alpha_50) = 0.5."""
    return 1.0 / (1.0 + math.exp(-slope * (math.log(alpha) - math.log(alpha_50))))


def critical_mass(alpha_50, slope=3.0, level=0.9):
    return alpha_50 * math.exp(math.log(level / (1 - level)) / slope)


def search_until_done(search, curve, noise=0.03, seed=0):
    """Run the search on ``curve`` plus Gaussian noise (a fixed draw per (α, seed)); its last step and runs."""
    alphas, successes, seeds, steps = [], [], [], 0
    while True:
        step = search.step(alphas, successes, seeds)
        if step.done:
            return step, list(zip(alphas, seeds, strict=True)), steps
        steps += 1
        assert step.runs and len(set(step.runs)) == len(step.runs)
        for alpha, run_seed in step.runs:
            assert (alpha, run_seed) not in zip(alphas, seeds, strict=True), "a finished run was proposed again"
            rng = np.random.default_rng([seed, run_seed, round(alpha * 1e6)])
            alphas.append(alpha)
            successes.append(float(np.clip(curve(alpha) + rng.normal(0, noise), 0, 1)))
            seeds.append(run_seed)


def test_first_step_is_initial_points_inside_the_range_with_the_explore_seeds():
    step = AlphaSearch((0.01, 0.16), seeds=(3, 4, 5), initial=3, explore_seeds=2).step([], [], [])
    assert step.status == "running" and step.fit is None and step.n_runs == 0
    assert step.runs == ((0.02, 3), (0.02, 4), (0.04, 3), (0.04, 4), (0.08, 3), (0.08, 4))


@pytest.mark.parametrize("alpha_50", [0.006, 0.02, 0.05])
def test_finds_alpha_star_within_the_tolerance_and_stops(alpha_50):
    search = AlphaSearch((0.01, 0.2), seeds=(0, 1, 2), tolerance=0.25, n_bootstrap=200)
    step, runs, steps = search_until_done(search, lambda a: logistic(a, alpha_50))
    truth = critical_mass(alpha_50)
    assert step.status == "converged"
    fit = step.fit
    assert fit.low >= fit.alpha_star * 0.75 - 1e-12 and fit.high <= fit.alpha_star * 1.25 + 1e-12
    assert abs(fit.alpha_star / truth - 1) <= 0.25
    # every seed ran at both ends of the final bracket, and far fewer runs than a 10-point grid's 30
    assert all((a, s) in runs for a in step.bracket for s in (0, 1, 2))
    assert len(runs) == step.n_runs <= 15 and steps <= 7


def test_not_reached_when_success_level_is_above_the_curve_over_the_range():
    search = AlphaSearch((0.01, 0.2), seeds=(0, 1, 2), n_bootstrap=200)
    step, runs, _ = search_until_done(search, lambda a: 0.6 * logistic(a, 0.05))
    assert step.status == "not reached" and not step.fit.reached
    assert {s for a, s in runs if a == 0.2} == {0, 1, 2}  # the upper end was confirmed with every seed
    assert len(runs) == 6
    assert str(step.fit).startswith("not reached (max S = ")


def test_below_range_when_the_smallest_alpha_already_reaches_the_success_level():
    search = AlphaSearch((0.01, 0.2), seeds=(0, 1), n_bootstrap=200)
    step, runs, _ = search_until_done(search, lambda a: logistic(a, 0.001))
    assert step.status == "below range" and step.fit.at_smallest_alpha
    assert {s for a, s in runs if a == 0.01} == {0, 1}


def test_budget_caps_the_runs():
    search = AlphaSearch((0.01, 0.2), seeds=(0, 1, 2), max_runs=4, n_bootstrap=200)
    step, runs, _ = search_until_done(search, lambda a: logistic(a, 0.02))
    assert step.status == "budget spent" and len(runs) == 4


def test_one_seed_converges_on_its_bracket():
    search = AlphaSearch((0.001, 0.1), seeds=(7,), tolerance=0.25)
    step, _, _ = search_until_done(search, lambda a: logistic(a, 0.004), noise=0.0)
    low, high = step.bracket
    assert step.status == "converged" and step.fit.low is None
    assert low >= step.fit.alpha_star * 0.75 and high <= step.fit.alpha_star * 1.25


def test_runs_outside_the_seeds_or_the_range_are_left_out():
    search = AlphaSearch((0.01, 0.2), seeds=(0,))
    assert search.step([0.5, 0.05], [1.0, 0.5], [0, 9]).n_runs == 0


@settings(max_examples=12, deadline=None)
@given(
    alpha_50=st.floats(1e-4, 1.0),
    slope=st.floats(1.0, 8.0),
    noise=st.floats(0.0, 0.15),
    n_seeds=st.integers(1, 4),
    seed=st.integers(0, 1000),
)
def test_every_search_stops_within_its_budget_and_proposes_only_new_runs_in_range(
    alpha_50, slope, noise, n_seeds, seed
):
    search = AlphaSearch((0.002, 0.3), seeds=tuple(range(n_seeds)), max_runs=30, n_bootstrap=100)
    step, runs, _ = search_until_done(search, lambda a: logistic(a, alpha_50, slope), noise=noise, seed=seed)
    assert len(runs) <= 30 and step.runs == ()
    assert all(0.002 <= a <= 0.3 for a, _ in runs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alpha_range": (0.2, 0.01)}, "alpha_range must be \\[low, high\\] with low < high"),
        ({"alpha_range": (0.0, 0.1)}, "alpha_range\\[0\\] must be a finite number in \\(0.0, 1.0\\]"),
        ({"alpha_range": (0.01,)}, "alpha_range must be \\[low, high\\]"),
        ({"seeds": (1, 1)}, "seeds must be a non-empty list of distinct ints"),
        ({"seeds": ()}, "seeds must be a non-empty list"),
        ({"tolerance": 1.0}, "tolerance must be a finite number in \\(0.0, 1.0\\)"),
        ({"explore_seeds": 3}, "explore_seeds must be at most the number of seeds \\(2\\)"),
        ({"max_runs": 0}, "max_runs must be a positive int"),
        ({"success_level": 0.0}, "success_level must be"),
    ],
)
def test_bad_arguments_name_the_parameter(kwargs, message):
    arguments = {"alpha_range": (0.01, 0.2), "seeds": (0, 1), **kwargs}
    with pytest.raises(ValueError, match=message):
        AlphaSearch(**arguments)


def test_step_needs_one_entry_per_run():
    with pytest.raises(ValueError, match="one entry per run, got 2, 1 and 2"):
        AlphaSearch((0.01, 0.2), seeds=(0,)).step([0.01, 0.02], [0.5], [0, 0])


def test_an_interval_open_above_every_tried_alpha_gets_every_seed_one_step_up():
    """Two seeds crossing S* apart (as the quickstart's do): the search closes the interval and converges."""
    search = AlphaSearch((0.0025, 0.05), seeds=(0, 1), tolerance=0.25, n_bootstrap=200)
    curves = {0: lambda a: logistic(a, 0.009), 1: lambda a: logistic(a, 0.0125)}  # α* ≈ 0.0187 and 0.026
    alphas, successes, seeds = [], [], []
    while not (step := search.step(alphas, successes, seeds)).done:
        for alpha, seed in step.runs:
            alphas.append(alpha)
            successes.append(curves[seed](alpha))
            seeds.append(seed)
    assert step.status == "converged" and step.n_runs == 10
    assert max(alphas) > step.fit.high and math.isfinite(step.fit.high)
    assert step.fit.low >= step.fit.alpha_star * 0.75 and step.fit.high <= step.fit.alpha_star * 1.25


# k-section: ``points_per_round`` α values a round


def bisection_trace():
    """The rounds of a bisecting search (k = 1) on a fixed curve with a fixed per-(α, seed) offset."""
    search = AlphaSearch((0.001, 0.2), seeds=(0, 1, 2), n_bootstrap=200, points_per_round=1)
    alphas, successes, seeds, rounds = [], [], [], []
    while not (step := search.step(alphas, successes, seeds)).done:
        rounds.append(step.runs)
        for alpha, seed in step.runs:
            offset = 0.01 * ((seed * 7 + round(alpha * 1e5)) % 5 - 2)
            alphas.append(alpha)
            successes.append(min(1.0, max(0.0, round(logistic(alpha, 0.05) + offset, 4))))
            seeds.append(seed)
    return step, rounds


def test_one_point_a_round_brackets_bisects_places_flanks_and_replicates_as_before():
    step, rounds = bisection_trace()
    assert rounds == [
        ((0.003761, 0), (0.01414, 0), (0.05318, 0)),  # start
        ((0.2, 0),),  # bracket: the upper end
        ((0.1031, 0),),  # bisect (0.05318, 0.2) in log α
        ((0.1376, 0),),  # α̂ · (1 + tol/2): the bracket's upper end leaves the window
        ((0.1031, 1), (0.1031, 2), (0.1376, 1), (0.1376, 2)),  # replicate at the bracket's ends
        ((0.1174, 0),),  # the replicates moved α̂: a flank again
        ((0.1174, 1), (0.1174, 2)),  # its missing seeds
        ((0.05318, 1), (0.05318, 2)),  # the interval leaves the window below
    ]
    assert step.status == "converged" and AlphaSearch((0.001, 0.2), seeds=(0,)).points_per_round == 1


@pytest.mark.parametrize(("alpha_50", "rounds_k1", "rounds_k4"), [(0.01, 4, 3), (0.03, 5, 4), (0.05, 6, 4)])
def test_k_section_locates_alpha_star_within_the_tolerance_in_fewer_rounds(alpha_50, rounds_k1, rounds_k4):
    truth = critical_mass(alpha_50)
    rounds = {}
    for k in (1, 4):
        search = AlphaSearch((0.01, 0.2), seeds=(0, 1, 2), n_bootstrap=200, points_per_round=k)
        step, _, rounds[k] = search_until_done(search, lambda a: logistic(a, alpha_50))
        assert step.status == "converged" and abs(step.fit.alpha_star / truth - 1) <= 0.25
        assert step.fit.low >= step.fit.alpha_star * 0.75 and step.fit.high <= step.fit.alpha_star * 1.25
    assert (rounds[1], rounds[4]) == (rounds_k1, rounds_k4)


def test_k_points_cut_a_wide_bracket_log_evenly_and_no_finer_than_half_the_window():
    """(0.01414, 0.05318) spans 3.76×: k = 3 cuts it in four equal parts in log α; parts half the window
    wide (√(1.25/0.75) ≈ 1.29×) take five points, so k = 8 places five."""
    runs = [0.003761, 0.01414, 0.05318], [0.1, 0.5, 0.95], [0, 0, 0]
    step = AlphaSearch((0.001, 0.2), seeds=(0, 1, 2), points_per_round=3).step(*runs)
    assert step.bracket == (0.01414, 0.05318)
    assert step.runs == ((0.01969, 0), (0.02742, 0), (0.03819, 0))
    ratios = np.diff(np.log([0.01414, *(a for a, _ in step.runs), 0.05318]))
    assert np.allclose(ratios, math.log(0.05318 / 0.01414) / 4, rtol=1e-3)
    many = AlphaSearch((0.001, 0.2), seeds=(0, 1, 2), points_per_round=8).step(*runs)
    assert len(many.runs) == 5 and all(0.01414 < a < 0.05318 for a, _ in many.runs)


def test_bracketing_tries_k_points_up_to_the_range_end():
    step = AlphaSearch((0.01, 0.2), seeds=(0, 1, 2), points_per_round=4).step(
        [0.02115, 0.04472, 0.09457], [0.1, 0.3, 0.6], [0, 0, 0]
    )
    # 0.09457 to 0.2 in parts half the window wide takes three points, the end one of them
    assert step.status == "running" and step.bracket is None
    assert step.runs == ((0.1214, 0), (0.1558, 0), (0.2, 0))


def test_a_bracket_in_the_window_gets_no_new_alpha_only_its_missing_seeds():
    step = AlphaSearch((0.01, 0.2), seeds=(0, 1, 2), points_per_round=4).step([0.05, 0.055], [0.85, 0.95], [0, 0])
    assert step.bracket == (0.05, 0.055)
    assert step.runs == ((0.05, 1), (0.05, 2), (0.055, 1), (0.055, 2))


def test_the_last_cut_of_one_point_gets_every_seed_at_once():
    """(0.04, 0.06) leaves the window above α̂ ≈ 0.043; its midpoint leaves two parts half the window wide,
    so it will be an end of the bracket that decides α*. One point a round places α̂·(1 + tol/2) instead."""
    runs = [0.04, 0.06], [0.88, 0.98], [0, 0]
    step = AlphaSearch((0.01, 0.2), seeds=(0, 1, 2), points_per_round=4).step(*runs)
    assert step.bracket == (0.04, 0.06)
    assert step.runs == ((0.04899, 0), (0.04899, 1), (0.04899, 2))
    assert AlphaSearch((0.01, 0.2), seeds=(0, 1, 2)).step(*runs).runs == ((0.0488, 0),)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "3"])
def test_points_per_round_must_be_a_positive_int(bad):
    with pytest.raises(ValueError, match=r"points_per_round must be a positive int .* give a whole number such as 3"):
        AlphaSearch((0.01, 0.2), seeds=(0,), points_per_round=bad)


@settings(max_examples=12, deadline=None)
@given(
    alpha_50=st.floats(1e-4, 1.0),
    slope=st.floats(1.0, 8.0),
    noise=st.floats(0.0, 0.15),
    n_seeds=st.integers(1, 4),
    k=st.integers(1, 6),
    seed=st.integers(0, 1000),
)
def test_a_round_places_at_most_k_new_alpha_in_range_and_no_run_twice(alpha_50, slope, noise, n_seeds, k, seed):
    search = AlphaSearch((0.002, 0.3), seeds=tuple(range(n_seeds)), max_runs=30, n_bootstrap=100, points_per_round=k)
    alphas, successes, seeds = [], [], []
    while not (step := search.step(alphas, successes, seeds)).done:
        assert len(set(step.runs)) == len(step.runs) and not set(step.runs) & set(zip(alphas, seeds, strict=True))
        assert all(0.002 <= a <= 0.3 for a, _ in step.runs)
        if alphas:  # after the start: at most k new α (one point a round: the two flanks)
            assert len({a for a, _ in step.runs} - set(alphas)) <= max(k, 2)
        for alpha, run_seed in step.runs:
            rng = np.random.default_rng([seed, run_seed, round(alpha * 1e6)])
            alphas.append(alpha)
            successes.append(float(np.clip(logistic(alpha, alpha_50, slope) + rng.normal(0, noise), 0, 1)))
            seeds.append(run_seed)
    assert len(alphas) <= 30
