import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.func import functional_call, grad, vmap

from lightning_aca.gradient_strategies.families import box_candidates
from lightning_aca.gradient_strategies.functional import clip_per_sample, linear_softmax_gradients
from lightning_aca.gradient_strategies.synthesis import (
    hull_weights,
    round_counts,
    synthesize_by_search,
    synthesize_from_hull,
)

SQUARE = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]], dtype=torch.float64)


def test_hull_weights_reach_a_point_inside_exactly():
    weights, fraction = hull_weights(SQUARE, torch.tensor([0.2, -0.4], dtype=torch.float64))
    assert fraction == 0.0 and weights.sum() == pytest.approx(1.0) and torch.all(weights >= 0)
    torch.testing.assert_close(weights @ SQUARE, torch.tensor([0.2, -0.4], dtype=torch.float64))


def test_hull_weights_project_a_point_outside_in_l1():
    weights, _ = hull_weights(SQUARE, torch.tensor([3.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(weights @ SQUARE, torch.tensor([1.0, 0.0], dtype=torch.float64))


def test_hull_weights_go_as_far_along_the_direction_as_the_hull_allows():
    # from (0, 0.5) along (4, 0): the square ends at x = 1, i.e. t = 1/4
    _, fraction = hull_weights(SQUARE, torch.tensor([0.0, 0.5]).double(), direction=torch.tensor([4.0, 0.0]).double())
    assert fraction == pytest.approx(0.25, abs=1e-6)
    _, fraction = hull_weights(SQUARE, torch.tensor([0.0, 0.5]).double(), direction=torch.tensor([0.5, 0.0]).double())
    assert fraction == pytest.approx(1.0)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=12).filter(lambda w: sum(w) > 0), st.integers(1, 50))
def test_round_counts_sum_to_total_and_stay_within_one(weights, total):
    w = torch.tensor(weights, dtype=torch.float64)
    counts = round_counts(w, total)
    assert int(counts.sum()) == total
    assert torch.all((counts - w / w.sum() * total).abs() < 1.0)


@pytest.mark.parametrize(("classes", "clip"), [(2, None), (2, 1.0), (3, None)])
def test_hull_construction_realizes_sums_of_member_gradients(classes, clip):
    errors = []
    for seed in range(10):
        g = torch.Generator().manual_seed(seed)
        weight, bias = torch.randn(classes, 2, generator=g), torch.randn(classes, generator=g)
        # a sum that 40 admissible points do produce: random points of the box with random labels
        points, point_labels = 6 * torch.rand(40, 2, generator=g) - 3, torch.randint(classes, (40,), generator=g)
        target = clip_per_sample(linear_softmax_gradients(weight, bias, points, point_labels), clip).sum(0)
        candidates = box_candidates(256, (2,), (-3.0, 3.0), seed=1)
        inputs, labels = synthesize_from_hull(weight, bias, target, 40, candidates, (-3.0, 3.0), clip)
        achieved = clip_per_sample(linear_softmax_gradients(weight, bias, inputs, labels), clip).sum(0)
        errors.append(float((achieved - target).norm() / target.norm()))
        assert inputs.shape == (40, 2) and inputs.min() >= -3.0 and inputs.max() <= 3.0
        assert set(labels.tolist()) <= set(range(classes))
    # rounding the hull's weights to 40 members leaves a few percent that the refinement mostly removes
    assert sorted(errors)[5] < 0.03 and max(errors) < 0.1


def test_local_search_reduces_the_residual_for_an_mlp():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 3)).eval()
    params = {name: p.detach() for name, p in net.named_parameters()}

    def gradients(x, y):
        def loss(p, xi, yi):
            return nn.functional.cross_entropy(functional_call(net, p, (xi[None],)), yi[None])

        g = vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y)
        return torch.cat([g[name].reshape(len(x), -1) for name in params], dim=1)

    target = gradients(torch.rand(6, 3) * 2 - 1, torch.randint(3, (6,))).sum(0).detach()
    start_x, start_y = torch.rand(6, 3) * 2 - 1, torch.zeros(6, dtype=torch.long)
    before = float((gradients(start_x, start_y).sum(0) - target).norm())
    x, y = synthesize_by_search(gradients, target, start_x, start_y, 3, (-1.0, 1.0), rounds=2, steps=20)
    after = float((gradients(x, y).sum(0) - target).norm())
    assert after < 0.5 * before
    assert x.min() >= -1.0 and x.max() <= 1.0
