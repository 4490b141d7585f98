import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from lightning_aca.gradient_strategies.functional import (
    check_feature_bounds,
    clip_per_sample,
    control_member_sum,
    linear_softmax_gradients,
    neutralization_member_sum,
)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 6), d=st.integers(1, 5), k=st.integers(2, 5), seed=st.integers(0, 10_000))
def test_closed_form_gradients_equal_autograd(n, d, k, seed):
    g = torch.Generator().manual_seed(seed)
    layer = nn.Linear(d, k).double()
    with torch.no_grad():
        layer.weight.copy_(torch.randn(k, d, generator=g, dtype=torch.float64))
        layer.bias.copy_(torch.randn(k, generator=g, dtype=torch.float64))
    x = 3 * torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randint(k, (n,), generator=g)
    expected = []
    for i in range(n):
        loss = nn.functional.cross_entropy(layer(x[i : i + 1]), y[i : i + 1])
        grads = torch.autograd.grad(loss, [layer.weight, layer.bias])
        expected.append(torch.cat([t.reshape(-1) for t in grads]))
    got = linear_softmax_gradients(layer.weight.detach(), layer.bias.detach(), x, y)
    torch.testing.assert_close(got, torch.stack(expected))
    # ‖∇ℓ‖ ≤ √2·‖[x, 1]‖ (the member-gradient bound's per-point inequality)
    assert torch.all(got.norm(dim=1) <= 2**0.5 * torch.cat([x, torch.ones(n, 1, dtype=x.dtype)], 1).norm(dim=1))


def test_gradients_flatten_image_inputs():
    x = torch.rand(3, 1, 2, 2)
    flat = linear_softmax_gradients(torch.zeros(2, 4), torch.zeros(2), x, torch.tensor([0, 1, 0]))
    assert flat.shape == (3, 2 * 4 + 2)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-50, 50), min_size=2, max_size=8), st.floats(0.01, 10))
def test_clipping_matches_the_dp_sgd_formula(values, c):
    g = torch.tensor([values, [v / 100 for v in values]], dtype=torch.float64)
    clipped = clip_per_sample(g, c)
    norms = g.norm(dim=1)
    torch.testing.assert_close(clipped, g * (c / (norms + 1e-6)).clamp(max=1.0)[:, None])
    assert torch.all(clipped.norm(dim=1) <= c + 1e-9)
    assert clip_per_sample(g, None) is g


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(2, 128),
    lr=st.floats(1e-3, 1.0),
    rate=st.floats(0.01, 1.0),
)
def test_control_sum_contracts_the_gap_by_one_minus_rate(seed, n, lr, rate):
    g = torch.Generator().manual_seed(seed)
    theta, target, rest = (torch.randn(6, generator=g, dtype=torch.float64) for _ in range(3))
    members = control_member_sum(theta - target, rest, normalizer=n, lr=lr, rate=rate)
    after = theta - lr / n * (members + rest)
    torch.testing.assert_close(after - target, (1 - rate) * (theta - target))


def test_neutralization_sum_cancels_the_rest():
    rest = torch.tensor([1.0, -2.0])
    assert torch.equal(neutralization_member_sum(rest) + rest, torch.zeros(2))


@pytest.mark.parametrize(
    ("bounds", "error"),
    [
        ((1.0, 0.0), ValueError),
        ((0.0, float("inf")), ValueError),
        ((0.0,), TypeError),
        ("ab", TypeError),
        (None, TypeError),
    ],
)
def test_feature_bounds_must_be_an_increasing_finite_pair(bounds, error):
    with pytest.raises(error, match="feature_bounds"):
        check_feature_bounds(bounds)


def test_feature_bounds_accept_numbers_of_any_kind():
    assert check_feature_bounds((torch.tensor(0), 1)) == (0.0, 1.0)
