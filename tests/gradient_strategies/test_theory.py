import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lightning_aca.gradient_strategies.families import box_candidates
from lightning_aca.gradient_strategies.functional import linear_softmax_gradients
from lightning_aca.gradient_strategies.hull import hull_radius
from lightning_aca.gradient_strategies.synthesis import candidate_atoms
from lightning_aca.gradient_strategies.theory import linear_member_gradient_bound, neutralization_alpha_star
from lightning_aca.theory import gradient_neutralization_alpha_bound

# K = 2 classes, d = 1 feature, θ = 0 (p = (½, ½)), box [-2, 2]. Flat layout [W00, W10, b0, b1].
# Atom of (x, y=0): (−x/2, x/2, −½, ½); of (x, y=1): the negative. In reduced coordinates (W10, b1) the
# atoms are ±½·(x, 1), x ∈ [-2, 2]: their hull is the rectangle [-1, 1] × [-½, ½], and every full vector
# is √2 times longer than its reduced one.
ZERO_W, ZERO_B = torch.zeros(2, 1, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
ATOMS = candidate_atoms(ZERO_W, ZERO_B, box_candidates(64, (1,), (-2.0, 2.0), seed=0).double())


def test_member_bound_matches_hand_computation():
    assert linear_member_gradient_bound((-3.0, 3.0), 2) == pytest.approx(math.sqrt(38))  # √2·√(2·9 + 1)
    assert linear_member_gradient_bound((0.0, 1.0), 64) == pytest.approx(math.sqrt(2 * 65))
    assert linear_member_gradient_bound((-1.0, 5.0), 1) == pytest.approx(math.sqrt(52))  # max(1, 25) = 25
    assert linear_member_gradient_bound((-3.0, 3.0), 2, clip_norm=0.5) == 0.5


@pytest.mark.parametrize(
    ("direction", "radius"),
    [
        ((0.0, 0.0, -1.0, 1.0), math.sqrt(2) / 2),  # pure bias: reduced ½
        ((-1.0, 1.0, 0.0, 0.0), math.sqrt(2)),  # pure weight: reduced R/2 = 1
        ((-1.0, 1.0, -1.0, 1.0), 1.0),  # diagonal: reaches b = ½ at reduced length ½·√2
    ],
)
def test_hull_radius_matches_the_rectangle(direction, radius):
    assert hull_radius(ATOMS, torch.tensor(direction)) == pytest.approx(radius, abs=1e-9)


def test_alpha_star_matches_hand_computation():
    # data (x, y): (1, 0), (2, 0), (-1, 1), (-2, 1) at θ = 0: mean gradient (−¾, ¾, 0, 0), G = ¾√2;
    # the hull reaches √2 along −g (pure weight), so α* = ¾√2 / (¾√2 + √2) = 3/7.
    x = torch.tensor([[1.0], [2.0], [-1.0], [-2.0]], dtype=torch.float64)
    g = linear_softmax_gradients(ZERO_W, ZERO_B, x, torch.tensor([0, 0, 1, 1])).mean(0)
    torch.testing.assert_close(g, torch.tensor([-0.75, 0.75, 0.0, 0.0], dtype=torch.float64))
    assert neutralization_alpha_star(g, ATOMS) == pytest.approx(3 / 7)
    # the norm bound G/(G + B), B = √2·√(4 + 1), is far lower: necessary, not sufficient
    norm_bound = gradient_neutralization_alpha_bound(0.75 * math.sqrt(2), linear_member_gradient_bound((-2.0, 2.0), 1))
    assert norm_bound == pytest.approx(0.75 * math.sqrt(2) / (0.75 * math.sqrt(2) + math.sqrt(10)))
    assert norm_bound < 3 / 7


def test_stationary_target_needs_no_collective():
    assert neutralization_alpha_star(torch.zeros(4), ATOMS) == 0.0


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(2, 3), clip=st.sampled_from([None, 0.5, 2.0]))
def test_norm_bound_never_exceeds_alpha_star(seed, k, clip):
    g = torch.Generator().manual_seed(seed)
    weight, bias = torch.randn(k, 2, generator=g), torch.randn(k, generator=g)
    x, y = 2 * torch.randn(50, 2, generator=g), torch.randint(k, (50,), generator=g)
    base = linear_softmax_gradients(weight, bias, x, y).mean(0)
    atoms = candidate_atoms(weight, bias, box_candidates(128, (2,), (-3.0, 3.0), seed), clip)
    bound = linear_member_gradient_bound((-3.0, 3.0), 2, clip)
    alpha_star = neutralization_alpha_star(base, atoms)
    assert gradient_neutralization_alpha_bound(float(base.norm()), bound) <= alpha_star + 1e-9
    # more candidates can only widen the hull, so the estimate of α* can only fall
    more = torch.cat([atoms, candidate_atoms(weight, bias, box_candidates(128, (2,), (-3.0, 3.0), seed + 1), clip)])
    assert neutralization_alpha_star(base, more) <= alpha_star + 1e-9


def test_hull_radius_rejects_bad_input():
    with pytest.raises(ValueError, match="non-zero"):
        hull_radius(ATOMS, torch.zeros(4))
    with pytest.raises(ValueError, match="contain 0"):
        hull_radius(torch.tensor([[1.0, 1.0], [2.0, 1.0]]), torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="entries"):
        hull_radius(ATOMS, torch.ones(3))
    # no atom has rows that do not sum to zero over classes: nothing reaches along (1, 1, 0, 0)
    assert hull_radius(ATOMS, torch.tensor([1.0, 1.0, 0.0, 0.0])) == 0.0
    with pytest.raises(ValueError, match="num_features"):
        linear_member_gradient_bound((0.0, 1.0), 0)
    with pytest.raises(TypeError, match="num_features"):
        linear_member_gradient_bound((0.0, 1.0), True)
    with pytest.raises(ValueError, match="clip_norm"):
        linear_member_gradient_bound((0.0, 1.0), 1, clip_norm=0.0)


def test_float32_atoms_with_a_rank_deficient_span_give_the_float64_answer():
    # rows of softmax atoms sum to zero over classes, so their span is rank-deficient; float32 rounding
    # adds ~1e-7 noise in the missing directions, which must not be taken for span
    g = torch.Generator().manual_seed(3)
    weight, bias = torch.randn(3, 2, generator=g, dtype=torch.float64), torch.randn(3, generator=g, dtype=torch.float64)
    candidates = box_candidates(128, (2,), (-3.0, 3.0), seed=3).double()
    exact = candidate_atoms(weight, bias, candidates)
    rounded = candidate_atoms(weight.float(), bias.float(), candidates.float())
    direction = exact[5] - exact[40]
    assert hull_radius(rounded, direction.float()) == pytest.approx(hull_radius(exact, direction), rel=1e-4)
