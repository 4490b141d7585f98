import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from lightning_aca.theory import (
    dp_member_bound,
    dp_success_ceiling,
    estimate_uniqueness,
    feature_label_alpha_star,
    feature_label_success_bound,
    gradient_neutralization_alpha_bound,
)

unit = st.floats(0.0, 1.0)
positive_alpha = st.floats(1e-6, 1.0)
small_epsilon = st.floats(0.0, 0.4)


def test_bound_matches_hand_computation_without_suboptimality():
    # (1 − 0.1)/0.1 = 9;  9 · Δ · ξ = 9 · 0.5 · 0.02 = 0.09;  1 − 0.09 = 0.91
    assert feature_label_success_bound(alpha=0.1, xi=0.02, delta=0.5) == pytest.approx(0.91)


def test_bound_matches_hand_computation_with_suboptimality():
    # 0.91 as above, minus ε/((1 − ε)α) = 0.01/(0.99 · 0.1) = 0.101010…;  0.91 − 0.101010 = 0.808990
    assert feature_label_success_bound(alpha=0.1, xi=0.02, delta=0.5, epsilon=0.01) == pytest.approx(0.808990, abs=1e-6)


def test_bound_for_the_whole_population_is_one_minus_suboptimality_term():
    # α = 1: the (1 − α) term vanishes; 1 − 0.2/0.8 = 0.75
    assert feature_label_success_bound(alpha=1.0, xi=0.7, delta=1.0, epsilon=0.2) == pytest.approx(0.75)


def test_bound_can_be_vacuous():
    # (1 − 0.001)/0.001 · 1 · 0.5 = 499.5;  1 − 499.5 = −498.5 (no guarantee, not clipped)
    assert feature_label_success_bound(alpha=0.001, xi=0.5, delta=1.0) == pytest.approx(-498.5)


@given(alpha=positive_alpha, delta=unit)
def test_unique_signal_gives_certain_success(alpha, delta):
    assert feature_label_success_bound(alpha, xi=0.0, delta=delta) == 1.0
    assert feature_label_success_bound(alpha, xi=1e-12, delta=delta) == pytest.approx(1.0, abs=1e-6)


@given(alpha=st.floats(0.01, 1.0), xi=unit, delta=unit)
def test_bound_tends_to_one_as_xi_vanishes(alpha, xi, delta):
    assert 1.0 - feature_label_success_bound(alpha, xi * 1e-9, delta) <= 1e-9 * (1.0 - alpha) / alpha + 1e-12


@given(a=positive_alpha, b=positive_alpha, xi=unit, delta=unit, epsilon=small_epsilon)
def test_bound_increases_with_alpha(a, b, xi, delta, epsilon):
    low, high = sorted((a, b))
    assert feature_label_success_bound(low, xi, delta, epsilon) <= feature_label_success_bound(
        high, xi, delta, epsilon
    ) + 1e-9 * (1 + abs(feature_label_success_bound(low, xi, delta, epsilon)))


@given(alpha=positive_alpha, a=unit, b=unit, delta=unit)
def test_bound_decreases_with_xi(alpha, a, b, delta):
    low, high = sorted((a, b))
    assert feature_label_success_bound(alpha, high, delta) <= feature_label_success_bound(alpha, low, delta)


def test_critical_mass_matches_hand_computation():
    # α* = (Δξ + ε/(1 − ε)) / (1 − S* + Δξ) = (0.5 · 0.02 + 0) / (1 − 0.9 + 0.01) = 0.01/0.11 = 0.090909…
    assert feature_label_alpha_star(success_level=0.9, xi=0.02, delta=0.5) == pytest.approx(0.01 / 0.11)
    # with ε = 0.01: ε/(1 − ε) = 0.010101…;  (0.01 + 0.010101)/0.11 = 0.182736…
    assert feature_label_alpha_star(success_level=0.9, xi=0.02, delta=0.5, epsilon=0.01) == pytest.approx(
        0.0201010101 / 0.11
    )


@given(level=st.floats(0.0, 0.99), xi=st.floats(1e-4, 1.0), delta=st.floats(1e-4, 1.0), epsilon=st.floats(0.0, 0.05))
def test_alpha_star_is_the_smallest_alpha_reaching_the_success_level(level, xi, delta, epsilon):
    alpha_star = feature_label_alpha_star(level, xi, delta, epsilon)
    if alpha_star is None:
        assert feature_label_success_bound(1.0, xi, delta, epsilon) < level
        return
    assert 0.0 < alpha_star <= 1.0
    assert feature_label_success_bound(alpha_star, xi, delta, epsilon) == pytest.approx(level, abs=1e-9)
    below = alpha_star * (1 - 1e-6)
    assert feature_label_success_bound(below, xi, delta, epsilon) < level


def test_critical_mass_unreachable_and_trivial_cases():
    # α = 1 gives at most 1 − 0.1/0.9 = 0.888… < 0.9
    assert feature_label_alpha_star(success_level=0.9, xi=0.1, delta=0.5, epsilon=0.1) is None
    assert feature_label_alpha_star(success_level=1.0, xi=0.1, delta=0.5, epsilon=0.01) is None
    assert feature_label_alpha_star(success_level=1.0, xi=0.0, delta=0.5) == 0.0


def test_critical_mass_shrinks_with_uniqueness():
    masses = [feature_label_alpha_star(0.9, xi, delta=1.0) for xi in (0.1, 0.01, 0.001, 0.0001)]
    assert masses == sorted(masses, reverse=True)
    assert masses[-1] < 1e-3


def test_gradient_neutralization_alpha_bound_matches_hand_computation():
    # G/(G + B) = 3/(3 + 1) = 0.75: then α·B = 0.75 = (1 − α)·G = 0.25 · 3
    assert gradient_neutralization_alpha_bound(3.0, 1.0) == pytest.approx(0.75)
    assert gradient_neutralization_alpha_bound(0.0, 1.0) == 0.0


@given(g=st.floats(0.0, 1e6), b=st.floats(1e-6, 1e6))
def test_gradient_neutralization_alpha_bound_balances_the_gradients(g, b):
    alpha = gradient_neutralization_alpha_bound(g, b)
    assert 0.0 <= alpha < 1.0
    # α·B = (1 − α)·G  ⇔  α·(G + B) = G (this form avoids cancellation in 1 − α near 1)
    assert alpha * (g + b) == pytest.approx(g, rel=1e-12, abs=1e-300)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 1.5}, "alpha"),
        ({"alpha": math.nan}, "alpha"),
        ({"xi": -0.1}, "xi"),
        ({"xi": 1.1}, "xi"),
        ({"delta": 2.0}, "delta"),
        ({"epsilon": 1.0}, "epsilon"),
        ({"epsilon": -0.01}, "epsilon"),
    ],
)
def test_bound_rejects_bad_inputs_naming_the_parameter(kwargs, name):
    arguments = {"alpha": 0.1, "xi": 0.1, "delta": 0.5, "epsilon": 0.0, **kwargs}
    with pytest.raises(ValueError, match=rf"^{name} must be a finite number in [\[(].*got {kwargs[name]!r}"):
        feature_label_success_bound(**arguments)


@given(alpha=st.one_of(st.floats(max_value=0.0), st.floats(min_value=1.0, exclude_min=True)))
def test_any_alpha_outside_the_unit_interval_is_rejected(alpha):
    with pytest.raises(ValueError, match=r"alpha must be a finite number in \(0\.0, 1\.0\]"):
        feature_label_success_bound(alpha, 0.1, 0.5)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"success_level": 1.2}, "success_level"),
        ({"xi": -1.0}, "xi"),
        ({"delta": 1.01}, "delta"),
        ({"epsilon": 1.0}, "epsilon"),
    ],
)
def test_critical_mass_rejects_bad_inputs(kwargs, name):
    arguments = {"success_level": 0.9, "xi": 0.1, "delta": 0.5, "epsilon": 0.0, **kwargs}
    with pytest.raises(ValueError, match=rf"^{name} must be a finite number in"):
        feature_label_alpha_star(**arguments)


@pytest.mark.parametrize(
    ("args", "name"),
    [((-1.0, 1.0), "base_gradient_norm"), ((1.0, 0.0), "member_gradient_bound"), ((1.0, math.inf), "member")],
)
def test_gradient_threshold_rejects_bad_inputs(args, name):
    with pytest.raises(ValueError, match=rf"^{name}"):
        gradient_neutralization_alpha_bound(*args)


def _stamp(batch: torch.Tensor) -> torch.Tensor:
    # idempotent signal: a 2x2 patch of ones in the top-left corner
    out = batch.clone()
    out[..., :2, :2] = 1.0
    return out


def test_uniqueness_counts_inputs_already_carrying_an_idempotent_signal():
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(100, 1, 5, 5, generator=generator) * 0.5
    images[:7] = _stamp(images[:7])
    # 7 of the 100 images already carry the patch: ξ̂ = 0.07
    assert estimate_uniqueness(images, _stamp) == pytest.approx(0.07)
    assert estimate_uniqueness(images, _stamp, batch_size=9) == pytest.approx(0.07)
    assert estimate_uniqueness(images.numpy(), _stamp) == pytest.approx(0.07)


def test_uniqueness_of_a_blend_counts_only_fixed_points():
    pattern = torch.ones(3)

    def blend(batch):
        return torch.lerp(batch, pattern, 0.5)

    inputs = torch.zeros(4, 3)
    inputs[1] = 1.0  # the only fixed point of the blend: x = pattern
    assert estimate_uniqueness(inputs, blend) == pytest.approx(0.25)


def test_uniqueness_tolerance():
    inputs = torch.zeros(2, 4, dtype=torch.float64)
    inputs[0, :] = 1.0 + 1e-8

    def ones(batch):
        return torch.ones_like(batch)

    assert estimate_uniqueness(inputs, ones) == pytest.approx(0.5)
    assert estimate_uniqueness(inputs, ones, atol=0.0) == 0.0


def test_uniqueness_rejects_bad_inputs():
    with pytest.raises(ValueError, match="inputs must have shape"):
        estimate_uniqueness(torch.zeros(0, 3), _stamp)
    with pytest.raises(ValueError, match="same shape"):
        estimate_uniqueness(torch.zeros(2, 3), lambda batch: batch[:, :2])
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        estimate_uniqueness(torch.zeros(2, 2, 2), _stamp, batch_size=0)
    with pytest.raises(ValueError, match="atol must be a finite number in"):
        estimate_uniqueness(np.zeros((2, 2, 2)), _stamp, atol=-1.0)


@pytest.mark.parametrize("value", [True, "0.5"])
def test_non_numbers_are_refused_by_type(value):
    with pytest.raises(TypeError, match="xi must be a real number"):
        feature_label_success_bound(0.1, value, 0.5)
    with pytest.raises(TypeError, match="batch_size must be a positive int"):
        estimate_uniqueness(torch.zeros(2, 2, 2), _stamp, batch_size=value)


def test_dp_ceiling_matches_hand_computation():
    # k = 2 members x 2 = 4 add/remove steps at eps = 0.5: e^2 * 0.01 + 1e-5 * (e^2 - 1) / (e^0.5 - 1)
    expected = math.exp(2.0) * 0.01 + 1e-5 * (math.exp(2.0) - 1) / (math.exp(0.5) - 1)
    assert dp_success_ceiling(0.01, 0.5, 1e-5, 2) == pytest.approx(expected) == pytest.approx(0.0739891, abs=1e-7)
    assert dp_success_ceiling(0.01, 0.5, 1e-5, 0) == pytest.approx(0.01)  # no collective: S(0) itself
    assert dp_success_ceiling(0.3, 1.0, 0.0, 10_000) == 1.0  # capped, no overflow


def test_member_bound_matches_hand_computation_and_grows_like_one_over_epsilon():
    # c = 1e-5 / (e^0.5 - 1); m >= ln((0.9 + c) / (0.01 + c)) / (2 * 0.5) = 4.498...
    assert dp_member_bound(0.9, 0.01, 0.5, 1e-5) == 5
    bounds = [dp_member_bound(0.9, 0.01, eps, 0.0) for eps in (0.1, 0.2, 0.4)]
    assert bounds == [math.ceil(math.log(90) / (2 * eps)) for eps in (0.1, 0.2, 0.4)] == [23, 12, 6]
    assert dp_member_bound(0.9, 0.95, 0.5, 1e-5) == 0 and dp_member_bound(0.9, 0.0, 0.5, 0.0) is None


@given(
    st.floats(0.0, 1.0),
    st.floats(0.01, 4.0),
    st.floats(0.0, 1e-3),
    st.floats(0.05, 1.0),
)
def test_member_bound_is_the_fewest_members_whose_ceiling_reaches_the_level(baseline, epsilon, delta, level):
    members = dp_member_bound(level, baseline, epsilon, delta)
    if members is None:
        assert baseline == 0.0 and delta == 0.0
        return
    assert dp_success_ceiling(baseline, epsilon, delta, members) >= level
    assert members == 0 or dp_success_ceiling(baseline, epsilon, delta, members - 1) < level


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"baseline": 1.5}, r"baseline must be"),
        ({"epsilon": 0.0}, r"epsilon must be"),
        ({"members": -1}, r"members must be a non-negative int"),
        ({"delta": float("nan")}, r"delta must be"),
    ],
)
def test_dp_ceiling_refuses_bad_input_naming_the_argument(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        dp_success_ceiling(**{"baseline": 0.1, "epsilon": 1.0, "delta": 1e-5, "members": 3, **kwargs})


@pytest.mark.parametrize("target_epsilon", [1.0, 2.0, 8.0])
def test_rdp_group_property_gives_a_looser_ceiling_than_the_chain(target_epsilon):
    """docs/theory.md §5: Mironov's RDP group property, on Opacus's RDP curve, loses to the (ε, δ) chain.

    DP-SGD as recipes/dp_digits and mnist_dp run it (n = 4,000, batch 64, 20 epochs, δ = 1/n). For a
    group of k = 2^c add/remove steps the RDP route gives (λ/k, 3^c·ρ(λ))-RDP, converted to (ε_k, δ):
    ceiling e^{ε_k}·S(0) + δ. The chain gives e^{kε}·S(0) + δ(e^{kε} − 1)/(e^ε − 1).
    """
    from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent
    from opacus.accountants.utils import get_noise_multiplier

    from lightning_aca.theory import dp_success_ceiling

    n, batch, epochs, baseline = 4000, 64, 20, 0.01
    q, steps, delta = batch / n, epochs * (n // batch), 1 / n
    orders = np.concatenate([np.linspace(1.05, 8, 40), np.geomspace(8, 4096, 120)])
    sigma = get_noise_multiplier(
        target_epsilon=target_epsilon, target_delta=delta, sample_rate=q, steps=steps, accountant="rdp"
    )
    rdp = compute_rdp(q=q, noise_multiplier=sigma, steps=steps, orders=orders)
    epsilon = float(get_privacy_spent(orders=orders, rdp=rdp, delta=delta)[0])
    for c in (1, 2, 3):  # k = 2, 4, 8 add/remove steps: m = 1, 2, 4 members
        k = 2**c
        usable = orders / k > 1
        group_epsilon = float(get_privacy_spent(orders=orders[usable] / k, rdp=rdp[usable] * 3**c, delta=delta)[0])
        assert group_epsilon > k * epsilon
        rdp_ceiling = min(1.0, math.exp(min(group_epsilon, 50.0)) * baseline + delta)
        assert dp_success_ceiling(baseline, epsilon, delta, members=k // 2) <= rdp_ceiling
