import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lightning_aca import select_members
from lightning_aca.collective import member_count
from lightning_aca.collective.membership import select_disjoint_members

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


@st.composite
def _feasible(draw, max_k=4):
    """(n, K, member counts, seed) with every count within its collective's 1/K share of the points."""
    n = draw(st.integers(2, 2000))
    k = draw(st.integers(2, max_k))
    counts = [draw(st.integers(0, n // k)) for _ in range(k)]
    return n, k, counts, draw(st.integers(0, 2**31))


@settings(max_examples=150, deadline=None)
@given(case=_feasible())
def test_disjoint_members_are_disjoint_exact_sorted_and_deterministic(case):
    n, _, counts, seed = case
    groups = select_disjoint_members(n, [c / n for c in counts], seed)
    assert [len(g) for g in groups] == counts
    union = np.concatenate(groups)
    assert len(set(union.tolist())) == union.size  # no point in two collectives
    assert all(g.dtype == np.int64 and np.all(np.diff(g) > 0) and np.all((g >= 0) & (g < n)) for g in groups)
    again = select_disjoint_members(n, [c / n for c in counts], seed)
    assert all(np.array_equal(a, b) for a, b in zip(groups, again, strict=True))


@settings(max_examples=150, deadline=None)
@given(case=_feasible(), data=st.data())
def test_disjoint_members_nest_in_their_own_alpha_and_ignore_the_others(case, data):
    n, k, counts, seed = case
    j = data.draw(st.integers(0, k - 1), label="moved collective")
    bigger = data.draw(st.integers(counts[j], n // k), label="its larger count")
    before = select_disjoint_members(n, [c / n for c in counts], seed)
    after = select_disjoint_members(n, [(bigger if i == j else c) / n for i, c in enumerate(counts)], seed)
    assert set(before[j].tolist()) <= set(after[j].tolist()) and len(after[j]) == bigger
    for i in range(k):
        if i != j:
            assert np.array_equal(before[i], after[i])  # another collective's alpha moved: unchanged


@settings(max_examples=100, deadline=None)
@given(
    masks=st.lists(st.lists(st.booleans(), min_size=60, max_size=60), min_size=2, max_size=3),
    fractions=st.lists(st.floats(0, 0.5), min_size=3, max_size=3),
    seed=st.integers(0, 1000),
)
def test_disjoint_members_are_eligible_or_the_error_says_which_alpha(masks, fractions, seed):
    masks = [np.array(m) for m in masks]
    alphas = fractions[: len(masks)]
    try:
        groups = select_disjoint_members(60, alphas, seed, masks)
    except ValueError as err:
        assert "alphas[" in str(err) and ("lower alphas" in str(err) or "0 members" in str(err))
        return
    for group, mask, alpha in zip(groups, masks, alphas, strict=True):
        assert mask[group].all() and len(group) == member_count(alpha, int(mask.sum()))
    union = np.concatenate(groups)
    assert len(set(union.tolist())) == union.size


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 3000), alpha=alphas, seed=st.integers(0, 2**31), masked=st.booleans())
def test_one_collective_is_exactly_select_members(n, alpha, seed, masked):
    mask = (np.arange(n) % 3 != 0) if masked else None
    eligible = n if mask is None else int(mask.sum())
    if alpha > 0 and member_count(alpha, eligible) == 0:
        alpha = 0.0
    if eligible == 0:
        return
    (only,) = select_disjoint_members(n, [alpha], seed, [mask])
    assert np.array_equal(only, select_members(n, alpha, seed, mask))


def test_a_collective_larger_than_its_share_says_how_large_it_may_be():
    # two collectives on 100 points: each draws from 50
    assert [len(g) for g in select_disjoint_members(100, [0.5, 0.5])] == [50, 50]
    with pytest.raises(
        ValueError, match=r"alphas\[1\]=0.51 asks for 51 members.*1/2 of the training set.*alpha <= 0.5"
    ):
        select_disjoint_members(100, [0.1, 0.51])
    with pytest.raises(ValueError, match=r"eligible has 1 masks for 2 collectives"):
        select_disjoint_members(100, [0.1, 0.1], eligible=[None])
    with pytest.raises(ValueError, match="alphas is empty"):
        select_disjoint_members(100, [])
    with pytest.raises(ValueError, match=r"alphas\[0\]=0.001 gives 0 members"):
        select_disjoint_members(100, [0.001, 0.1])


@st.composite
def _sized_by_max_alphas(draw):
    """(n, K, largest counts summing to at most n, counts within them, seed): pools sized by max_alphas."""
    n = draw(st.integers(2, 1500))
    k = draw(st.integers(2, 4))
    tops = []
    for _ in range(k):
        tops.append(draw(st.integers(0, n - sum(tops))))
    counts = [draw(st.integers(0, top)) for top in tops]
    return n, k, tops, counts, draw(st.integers(0, 2**31))


@settings(max_examples=200, deadline=None)
@given(case=_sized_by_max_alphas(), data=st.data())
def test_pools_sized_by_max_alphas_keep_members_disjoint_nested_and_independent(case, data):
    n, k, tops, counts, seed = case
    max_alphas = [top / n for top in tops]
    groups = select_disjoint_members(n, [c / n for c in counts], seed, max_alphas=max_alphas)
    assert [len(g) for g in groups] == counts  # any alphas up to the max_alphas fit, together up to 1
    union = np.concatenate(groups)
    assert len(set(union.tolist())) == union.size
    j = data.draw(st.integers(0, k - 1), label="moved collective")
    bigger = data.draw(st.integers(counts[j], tops[j]), label="its larger count")
    moved = [(bigger if i == j else c) / n for i, c in enumerate(counts)]
    after = select_disjoint_members(n, moved, seed, max_alphas=max_alphas)
    assert set(groups[j].tolist()) <= set(after[j].tolist()) and len(after[j]) == bigger  # nested in its own α
    for i in range(k):
        if i != j:
            assert np.array_equal(groups[i], after[i])  # independent of the other collective's α


def test_seventy_and_ten_percent_fit_with_max_alphas_and_the_cap_names_them_without():
    with pytest.raises(
        ValueError, match=r"alphas\[0\]=0.7 asks for 70 members.*1/2 of the training set.*give max_alphas"
    ):
        select_disjoint_members(100, [0.7, 0.1])
    first, second = select_disjoint_members(100, [0.7, 0.1], seed=2, max_alphas=[0.7, 0.1])
    assert len(first) == 70 and len(second) == 10 and not set(first.tolist()) & set(second.tolist())
    with pytest.raises(ValueError, match=r"alphas\[1\]=0.3 is above max_alphas\[1\]=0.1.*raise max_alphas\[1\]"):
        select_disjoint_members(100, [0.7, 0.3], max_alphas=[0.7, 0.1])
    with pytest.raises(ValueError, match=r"max_alphas has 1 values for 2 collectives"):
        select_disjoint_members(100, [0.7, 0.1], max_alphas=[0.7])
    with pytest.raises(
        ValueError, match=r"alphas\[0\]=0.9 asks for 90 members.*raise max_alphas\[0\] against the others"
    ):
        select_disjoint_members(100, [0.9, 0.5], max_alphas=[0.9, 0.9])  # together more than the training set
