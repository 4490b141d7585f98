import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lightning_aca import select_members
from lightning_aca.collective import member_count

alphas = st.floats(0, 1, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 3000), a1=alphas, a2=alphas, seed=st.integers(0, 2**31))
def test_members_are_nested_exact_and_deterministic(n, a1, a2, seed):
    lo, hi = sorted((a1, a2))
    if lo > 0 and member_count(lo, n) == 0:
        lo = 0.0
    if hi > 0 and member_count(hi, n) == 0:
        hi = 0.0
    small, big = select_members(n, lo, seed), select_members(n, hi, seed)
    assert len(small) == member_count(lo, n) == int(np.floor(lo * n + 0.5))
    assert set(small) <= set(big)
    assert np.array_equal(big, select_members(n, hi, seed))
    assert np.all(np.diff(big) > 0) and (big.size == 0 or (big[0] >= 0 and big[-1] < n))


@settings(max_examples=100, deadline=None)
@given(mask=st.lists(st.booleans(), min_size=1, max_size=500), alpha=alphas, seed=st.integers(0, 1000))
def test_members_are_eligible(mask, alpha, seed):
    mask = np.array(mask)
    k = member_count(alpha, int(mask.sum()))
    if alpha > 0 and k == 0:
        with pytest.raises(ValueError, match="alpha"):
            select_members(len(mask), alpha, seed, mask)
        return
    members = select_members(len(mask), alpha, seed, mask)
    assert len(members) == k and mask[members].all()


def test_seeds_give_different_members():
    assert not np.array_equal(select_members(1000, 0.1, 0), select_members(1000, 0.1, 1))


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan"), torch.tensor(1.5)])
def test_alpha_outside_unit_interval(alpha):
    with pytest.raises(ValueError, match=r"alpha .* must be a finite number in \[0\.0, 1\.0\]"):
        select_members(100, alpha)


@pytest.mark.parametrize("alpha", ["0.1", True, torch.tensor([0.1]), None])
def test_alpha_of_a_wrong_type_says_it_is_the_type(alpha):
    with pytest.raises(TypeError, match=r"alpha .* must be a real number"):
        select_members(100, alpha)


@pytest.mark.parametrize(
    "alpha", [torch.tensor(0.3, dtype=torch.float64), torch.tensor(0.5), np.float64(0.3), np.float32(0.5)]
)
def test_alpha_as_a_0d_tensor_or_numpy_scalar_gives_the_members_of_its_value(alpha):
    assert np.array_equal(select_members(1000, alpha, seed=2), select_members(1000, float(alpha), seed=2))


def test_an_empty_training_set_says_so():
    with pytest.raises(ValueError, match="the training set is empty"):
        select_members(0, 0.1)
    assert select_members(0, 0.0).size == 0


def test_too_small_alpha_says_so_and_zero_is_explicit():
    with pytest.raises(ValueError, match=r"0 members among 100 eligible.*alpha=0"):
        select_members(100, 0.001)
    assert select_members(100, 0.0).size == 0


def test_no_eligible_point_and_bad_mask():
    with pytest.raises(ValueError, match="eligible"):
        select_members(3, 0.5, eligible=np.zeros(3, dtype=bool))
    with pytest.raises(ValueError, match="boolean mask of shape"):
        select_members(3, 0.5, eligible=[1, 0, 1])
    with pytest.raises(ValueError, match="seed"):
        select_members(3, 0.5, seed=-1)
    with pytest.raises(TypeError, match="seed must be a non-negative int"):
        select_members(3, 0.5, seed=True)
    with pytest.raises(TypeError, match=r"n .* must be a non-negative int"):
        select_members(3.0, 0.5)
