import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import Dataset, Subset, TensorDataset

from lightning_aca import CollectiveDataset, FeatureOnlyPlanting, LabelFlip, PixelPatch, SignalErasing, SignalPlanting
from lightning_aca.collective import SignalEvaluationDataset, dataset_labels
from lightning_aca.collective.collectives import Collective
from lightning_aca.collective.membership import select_disjoint_members
from lightning_aca.collective.strategies import SignalStrategy

PLANT = SignalPlanting(PixelPatch(2, value=1.0), target_class=0)


def base(n=100):
    g = torch.Generator().manual_seed(0)
    return TensorDataset(torch.rand(n, 1, 8, 8, generator=g) * 0.5, torch.arange(n) % 10)


class DictDataset(Dataset):
    def __init__(self, inner):
        self.inner = inner

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        x, y = self.inner[i]
        return {"image": x, "label": int(y), "id": i}


def test_members_modified_others_untouched():
    b = base()
    ds = CollectiveDataset(b, PLANT, alpha=0.2, seed=3)
    assert len(ds) == 100 and len(ds.members) == 20
    for i in range(100):
        (x, y), (x0, y0) = ds[i], b[i]
        if i in set(ds.members):
            assert torch.equal(x, PixelPatch(2, value=1.0)(x0)) and y.item() == 0 and y.dtype == y0.dtype
        else:
            assert torch.equal(x, x0) and y.item() == y0.item()
    assert ds.labels[ds.members].eq(0).all()
    assert ds.population_alpha == 0.2


def test_item_structure_kept_for_dicts_and_extra_fields():
    d = CollectiveDataset(DictDataset(base()), PLANT, 0.5, input_key="image", label_key="label")
    item = d[int(d.members[0])]
    assert set(item) == {"image", "label", "id"} and item["label"] == 0 and isinstance(item["label"], int)
    three = TensorDataset(torch.zeros(10, 1, 4, 4), torch.arange(10), torch.arange(10) * 7)
    t = CollectiveDataset(three, SignalPlanting(PixelPatch(1), target_class=1), 1.0)
    assert isinstance(t[3], tuple) and len(t[3]) == 3 and t[3][2].item() == 21
    flagged = CollectiveDataset(base(), PLANT, 0.1, return_membership=True)
    assert sum(bool(flagged[i][2]) for i in range(100)) == 10
    fd = CollectiveDataset(
        DictDataset(base()), PLANT, 0.1, input_key="image", label_key="label", return_membership=True
    )
    assert sum(fd[i]["is_member"] for i in range(100)) == 10


def test_same_members_as_membership_function_and_nested():
    small = CollectiveDataset(base(), PLANT, 0.1, seed=5).members
    big = CollectiveDataset(base(), PLANT, 0.3, seed=5).members
    assert set(small) <= set(big)
    assert np.array_equal(small, CollectiveDataset(base(), PLANT, 0.1, seed=5).members)


def test_feature_only_planting_recruits_only_target_class():
    ds = CollectiveDataset(base(), FeatureOnlyPlanting(PixelPatch(2), target_class=3), alpha=0.5, seed=0)
    assert len(ds.members) == 5  # round(0.5 * 10 eligible)
    assert all(base()[int(i)][1].item() == 3 for i in ds.members)
    assert ds.population_alpha == pytest.approx(0.05)
    x, y = ds[int(ds.members[0])]
    assert y.item() == 3 and x[0, -1, -1].item() == 1.0


@given(
    classes=st.lists(st.integers(0, 8), min_size=1, max_size=4, unique=True),
    alpha=st.sampled_from([0.1, 0.5, 1.0]),
    seed=st.integers(0, 50),
)
@settings(max_examples=25, deadline=None)
def test_member_classes_draw_members_from_those_classes_only(classes, alpha, seed):
    ds = CollectiveDataset(base(), SignalPlanting(PixelPatch(2), target_class=0, member_classes=classes), alpha, seed)
    true_labels = base().tensors[1]
    assert set(true_labels[ds.members].tolist()) <= set(classes)
    assert len(ds.members) == round(alpha * 10 * len(classes))  # 10 points per class
    assert all(ds[int(i)][1].item() == 0 for i in ds.members)  # relabelled to y* as with every member
    wider = CollectiveDataset(base(), SignalPlanting(PixelPatch(2), 0, member_classes=[*classes, 9]), alpha, seed)
    assert len(wider.members) >= len(ds.members)


@pytest.mark.parametrize(
    ("member_classes", "error", "match"),
    [
        (1, TypeError, "member_classes must be a list"),
        ([1, 1], ValueError, "distinct"),
        ([-1], ValueError, "member_classes"),
    ],
)
def test_bad_member_classes_name_the_parameter(member_classes, error, match):
    with pytest.raises(error, match=match):
        SignalPlanting(PixelPatch(2), target_class=0, member_classes=member_classes)


def test_member_classes_absent_from_the_data_is_an_error():
    with pytest.raises(ValueError, match="none of the 100 training points is eligible"):
        CollectiveDataset(base(), SignalPlanting(PixelPatch(2), target_class=0, member_classes=[42]), 0.1)


def test_erasing_and_label_flip():
    er = CollectiveDataset(base(), SignalErasing(PixelPatch(2)), 0.1)
    i = int(er.members[0])
    assert er[i][1].item() == base()[i][1].item() and er[i][0][0, -1, -1].item() == 1.0
    lf = CollectiveDataset(base(), LabelFlip(target_class=9), 0.1)
    j = int(lf.members[0])
    assert torch.equal(lf[j][0], base()[j][0]) and lf[j][1].item() == 9


def test_lazy_no_copy_of_base():
    b = base(1000)
    ds = CollectiveDataset(b, PLANT, 0.5)
    assert ds.dataset is b
    assert all(not isinstance(v, torch.Tensor) or v.numel() < 1000 * 64 for v in vars(ds).values())


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"alpha .* \[0\.0, 1\.0\]"):
        CollectiveDataset(base(), PLANT, alpha=1.5)
    with pytest.raises(ValueError, match="target_class=12 is not a class"):
        CollectiveDataset(base(), SignalPlanting(PixelPatch(2), target_class=12), 0.1)
    with pytest.raises(ValueError, match="target_class=12 is not a class"):
        CollectiveDataset(base(), SignalPlanting(PixelPatch(2), target_class=12), 0.1, num_classes=10)
    with pytest.raises(ValueError, match="larger than the 8x8 image"):
        CollectiveDataset(base(), SignalPlanting(PixelPatch(9), target_class=1), 0.1)
    with pytest.raises(TypeError, match="Strategy"):
        CollectiveDataset(base(), "plant", 0.1)
    with pytest.raises(ValueError, match="target_class must be a non-negative class index"):
        SignalPlanting(PixelPatch(2), target_class=-1)
    with pytest.raises(TypeError, match="target_class must be a non-negative class index"):
        LabelFlip(True)
    with pytest.raises(TypeError, match="needs target_class"):
        SignalPlanting(PixelPatch(2))
    with pytest.raises(KeyError, match="label_key"):
        CollectiveDataset(DictDataset(base()), PLANT, 0.1)
    with pytest.raises(TypeError, match="seed must be a non-negative int"):
        CollectiveDataset(base(), PLANT, 0.1, seed=1.0)
    with pytest.raises(TypeError, match="num_classes must be a positive int"):
        CollectiveDataset(base(), PLANT, 0.1, num_classes=True)


def test_every_strategy_says_whether_it_carries_a_signal():
    patch = PixelPatch(2)
    for strategy in (SignalPlanting(patch, 0), FeatureOnlyPlanting(patch, 0), SignalErasing(patch)):
        assert isinstance(strategy, SignalStrategy) and strategy.signal is patch and strategy.batched_inputs
    assert LabelFlip(0).signal is None and LabelFlip(0).batched_inputs
    assert not SignalPlanting(_ItemOnlySignal(2), 1).batched_inputs
    with pytest.raises(TypeError, match="SignalErasing signal must be a Signal"):
        SignalErasing("patch")


@pytest.mark.parametrize(
    "make",
    [
        lambda empty: CollectiveDataset(empty, PLANT, 0.1),
        lambda empty: CollectiveDataset(empty, PLANT, 0.0),
        lambda empty: CollectiveDataset(empty, FeatureOnlyPlanting(PixelPatch(2), 0), 0.5),
        lambda empty: CollectiveDataset(empty, SignalErasing(PixelPatch(2)), 0.1, injection="collate"),
    ],
)
def test_an_empty_training_set_says_so(make):
    empty = TensorDataset(torch.zeros(0, 1, 8, 8), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match=r"^the training set is empty"):
        make(empty)


@pytest.mark.parametrize("strategy", [PLANT, SignalErasing(PixelPatch(2)), LabelFlip(0)])
def test_an_empty_test_set_says_so(strategy):
    empty = TensorDataset(torch.zeros(0, 1, 8, 8), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match=r"^the test set is empty"):
        SignalEvaluationDataset(empty, strategy)
    with pytest.raises(ValueError, match=r"^the test set is empty"):
        SignalEvaluationDataset(empty, strategy, num_classes=10)


@pytest.mark.parametrize("alpha", [torch.tensor(0.2), torch.tensor(0.2, dtype=torch.float64), np.float64(0.2)])
def test_alpha_of_any_real_number_type_gives_the_members_of_the_float(alpha):
    want = CollectiveDataset(base(), PLANT, 0.2, seed=4).members
    got = CollectiveDataset(base(), PLANT, alpha, seed=4)
    assert np.array_equal(got.members, want) and isinstance(got.alpha, float)


def test_integer_images_refuse_a_patch_value_that_does_not_fit_them():
    images = torch.randint(0, 256, (20, 1, 8, 8), dtype=torch.uint8)
    images[:, 0, 0, 0] = 255
    data = TensorDataset(images, torch.arange(20) % 2)
    for value in (1.0, 1, 0.5, 300):
        with pytest.raises(ValueError, match=r"PixelPatch value=.*torch\.uint8"):
            CollectiveDataset(data, SignalPlanting(PixelPatch(2, value=value), 0), 0.5)
        with pytest.raises(ValueError, match=r"PixelPatch value=.*torch\.uint8"):
            SignalEvaluationDataset(data, SignalPlanting(PixelPatch(2, value=value), 0))
    ds = CollectiveDataset(data, SignalPlanting(PixelPatch(2, value=255), 0), 0.5)
    assert (ds[int(ds.members[0])][0][0, -2:, -2:] == 255).all()
    # scikit-learn's raw digits: integers 0–16
    digits = TensorDataset(
        torch.randint(0, 17, (20, 1, 8, 8)).index_fill_(3, torch.tensor([0]), 16), images[:, 0, 0, 0]
    )
    with pytest.raises(ValueError, match=r"value=1\.0 looks like a value for images in \[0, 1\].*reach 16"):
        CollectiveDataset(digits, SignalErasing(PixelPatch(2, value=1.0)), 0.5)
    assert CollectiveDataset(digits, SignalErasing(PixelPatch(2, value=16)), 0.5).members.size == 10


def test_labels_read_from_subsets_and_attributes():
    b = base()
    sub = Subset(b, [5, 7, 9])
    assert dataset_labels(sub).tolist() == [5, 7, 9]
    assert dataset_labels(DictDataset(b), label_key="label").tolist()[:3] == [0, 1, 2]
    with pytest.raises(KeyError, match="label_key"):
        dataset_labels(DictDataset(b))


def test_signal_evaluation_set_excludes_target_and_carries_signal():
    b = base()
    ev = SignalEvaluationDataset(b, PLANT)
    assert len(ev) == 90
    for i in range(len(ev)):
        x, y = ev[i]
        assert y.item() == 0 and x[0, -1, -1].item() == 1.0
    assert all(b[int(j)][1].item() != 0 for j in ev.indices)
    er = SignalEvaluationDataset(b, SignalErasing(PixelPatch(2)), return_clean=True)
    x, y, clean, true = er[4]
    assert len(er) == 100 and y.item() == true.item() == 4 and torch.equal(clean, b[4][0])
    with pytest.raises(ValueError, match="no point to evaluate"):
        SignalEvaluationDataset(TensorDataset(torch.zeros(3, 1, 4, 4), torch.zeros(3, dtype=torch.long)), PLANT)


class _ItemOnlySignal(PixelPatch):
    """A signal that is only valid per item (a batch would be wrong): must not be batched."""

    supports_batches = False

    def __call__(self, x):
        assert x.dim() == 3, "called on a batch"
        return super().__call__(x)


@settings(max_examples=50, deadline=None)
@given(
    indices=st.lists(st.integers(0, 99), min_size=1, max_size=40),
    alpha=st.sampled_from([0.0, 0.1, 0.5, 1.0]),
    flag=st.booleans(),
    strategy=st.sampled_from(
        [
            PLANT,
            FeatureOnlyPlanting(PixelPatch(2), target_class=3),
            SignalErasing(PixelPatch(1)),
            LabelFlip(2),
            SignalPlanting(_ItemOnlySignal(2), target_class=1),
        ]
    ),
)
def test_batched_fetch_equals_item_fetch(indices, alpha, flag, strategy):
    ds = CollectiveDataset(base(), strategy, alpha, seed=1, return_membership=flag)
    batched = ds.__getitems__(indices)
    for got, i in zip(batched, indices, strict=True):
        want = ds[i]
        assert type(got) is type(want) and len(got) == len(want)
        assert all(torch.equal(torch.as_tensor(a), torch.as_tensor(b)) for a, b in zip(got, want, strict=True))


@pytest.mark.parametrize(
    "strategy", [PLANT, SignalErasing(PixelPatch(1)), LabelFlip(2), SignalPlanting(_ItemOnlySignal(2), target_class=1)]
)
@pytest.mark.parametrize("return_clean", [False, True])
def test_evaluation_set_batched_fetch_equals_item_fetch(strategy, return_clean):
    indices = [5, 0, 17, 3, 3, 40]
    for data, keys in ((base(), {}), (DictDataset(base()), {"input_key": "image", "label_key": "label"})):
        ev = SignalEvaluationDataset(data, strategy, return_clean=return_clean, **keys)
        for got, i in zip(ev.__getitems__(indices), indices, strict=True):
            want = ev[i]
            assert type(got) is type(want) and len(got) == len(want)
            pairs = (
                zip(got.values(), want.values(), strict=True) if isinstance(want, dict) else zip(got, want, strict=True)
            )
            assert all(torch.equal(torch.as_tensor(a), torch.as_tensor(b)) for a, b in pairs)


@settings(max_examples=40, deadline=None)
@given(
    indices=st.lists(st.integers(0, 99), min_size=1, max_size=40),
    alpha=st.sampled_from([0.0, 0.1, 0.5, 1.0]),
    flag=st.booleans(),
    dicts=st.booleans(),
    strategy=st.sampled_from(
        [PLANT, FeatureOnlyPlanting(PixelPatch(2), target_class=3), SignalErasing(PixelPatch(1)), LabelFlip(2)]
    ),
)
def test_collate_injection_equals_item_injection(indices, alpha, flag, dicts, strategy):
    from torch.utils.data._utils.collate import default_collate

    data, keys = (DictDataset(base()), {"input_key": "image", "label_key": "label"}) if dicts else (base(), {})
    by_item = CollectiveDataset(data, strategy, alpha, seed=3, return_membership=flag, **keys)
    by_collate = CollectiveDataset(data, strategy, alpha, seed=3, return_membership=flag, injection="collate", **keys)
    want = default_collate(by_item.__getitems__(indices))
    got = by_collate.collate_fn()(by_collate.__getitems__(indices))
    pairs = [(got[k], want[k]) for k in want] if dicts else list(zip(got, want, strict=True))
    assert type(got) is type(want) and len(got) == len(want)
    assert all(torch.equal(a, b) and a.dtype == b.dtype for a, b in pairs)


def test_collate_injection_leaves_the_base_data_and_fails_clearly_without_its_collate():
    from torch.utils.data import DataLoader

    data = base()
    before = data.tensors[0].clone()
    ds = CollectiveDataset(data, PLANT, 1.0, injection="collate")
    # a collate returning views of the base storage must not let h write through to it
    views = ds.collate_fn(lambda items: [data.tensors[0][:3], data.tensors[1][:3]])
    assert (views(ds.__getitems__([0, 1, 2]))[1] == 0).all() and torch.equal(data.tensors[0], before)
    with pytest.raises(TypeError, match=r"collate_fn=dataset\.collate_fn"):
        next(iter(DataLoader(ds, batch_size=4)))
    x, y = next(iter(DataLoader(ds, batch_size=4, collate_fn=ds.collate_fn())))
    assert (y == 0).all() and torch.equal(x, torch.stack([ds[i][0] for i in range(4)]))
    with pytest.raises(ValueError, match="injection='collate'"):
        CollectiveDataset(base(), PLANT, 0.1).collate_fn()


def test_collate_injection_needs_a_batch_capable_signal_and_batch_injection_is_gone():
    with pytest.raises(ValueError, match="supports_batches"):
        CollectiveDataset(base(), SignalPlanting(_ItemOnlySignal(2), target_class=1), 0.1, injection="collate")
    with pytest.raises(ValueError, match="injection"):
        CollectiveDataset(base(), PLANT, 0.1, injection="device")
    with pytest.raises(ValueError, match=r"injection='batch' was removed: use injection='collate'"):
        CollectiveDataset(base(), PLANT, 0.1, injection="batch")
    assert not hasattr(CollectiveDataset, "inject")


# -- several collectives (Karan, Vincent, Karahalios, Sundaram 2025) ---------------------------------
FIRST = SignalPlanting(PixelPatch(2, value=1.0), target_class=0)
SECOND = SignalPlanting(PixelPatch(2, value=1.0, location="top_left"), target_class=1)


def two(first=0.2, second=0.1, first_strategy=FIRST):
    return [Collective("first", first_strategy, first), Collective("second", SECOND, second)]


def test_each_member_submits_its_own_collectives_h_and_others_are_untouched():
    b = base()
    ds = CollectiveDataset(b, collectives=two(), seed=3)
    first, second = ds.members_of("first"), ds.members_of("second")
    assert len(first) == 20 and len(second) == 10 and not set(first.tolist()) & set(second.tolist())
    assert ds.members.tolist() == sorted(first.tolist() + second.tolist())
    assert ds.is_member.sum() == 30 and ds.population_alpha == 0.3
    expected = [disjoint.tolist() for disjoint in select_disjoint_members(100, [0.2, 0.1], seed=3)]
    assert [first.tolist(), second.tolist()] == expected
    for i in range(100):
        (x, y), (x0, y0) = ds[i], b[i]
        if i in set(first.tolist()):
            assert torch.equal(x, FIRST.signal(x0)) and y.item() == 0
        elif i in set(second.tolist()):
            assert torch.equal(x, SECOND.signal(x0)) and y.item() == 1
        else:
            assert torch.equal(x, x0) and y.item() == y0.item()
    labels = ds.labels
    assert labels[first].eq(0).all() and labels[second].eq(1).all()
    outside = np.setdiff1d(np.arange(100), ds.members)
    assert torch.equal(labels[outside], b.tensors[1][outside])


def test_one_collective_in_collectives_is_the_strategy_alpha_dataset():
    one = CollectiveDataset(base(), collectives=[Collective("only", PLANT, 0.2)], seed=3, return_membership=True)
    plain = CollectiveDataset(base(), PLANT, 0.2, seed=3, return_membership=True)
    assert np.array_equal(one.members, plain.members) and np.array_equal(one.members_of("only"), plain.members)
    assert one.strategy is PLANT and one.alpha == 0.2 and repr(one) == repr(plain)
    assert plain.collectives[0].strategy is PLANT and np.array_equal(plain.members_of(), plain.members)
    for i in range(0, 100, 7):
        assert all(torch.equal(torch.as_tensor(a), torch.as_tensor(b)) for a, b in zip(one[i], plain[i], strict=True))


def test_several_collectives_name_no_single_strategy_or_alpha():
    ds = CollectiveDataset(base(), collectives=two())
    with pytest.raises(
        AttributeError, match=r"2 collectives \('first', 'second'\), so no single strategy.*collectives"
    ):
        ds.strategy  # noqa: B018
    with pytest.raises(AttributeError, match="no single alpha"):
        ds.alpha  # noqa: B018
    with pytest.raises(ValueError, match=r"2 collectives \['first', 'second'\]; pass collective="):
        ds.members_of()
    with pytest.raises(KeyError, match=r"no collective named 'third'"):
        ds.members_of("third")
    assert "first: alpha=0.2, members=20" in repr(ds) and "second: alpha=0.1, members=10" in repr(ds)


def test_collectives_or_strategy_and_alpha_never_both_and_errors_name_the_collective():
    with pytest.raises(ValueError, match=r"either strategy=/alpha= .* or collectives="):
        CollectiveDataset(base(), PLANT, 0.1, collectives=two())
    with pytest.raises(TypeError, match="needs strategy and alpha"):
        CollectiveDataset(base())
    with pytest.raises(TypeError, match="needs alpha"):
        CollectiveDataset(base(), PLANT)
    with pytest.raises(ValueError, match="names must be unique"):
        CollectiveDataset(base(), collectives=[Collective("a", PLANT, 0.1), Collective("a", FIRST, 0.1)])
    with pytest.raises(ValueError, match=r"alphas\[1\]=0.6 asks for 60 members.*alphas\[1\] is collective 'second'"):
        CollectiveDataset(base(), collectives=two(second=0.6))
    with pytest.raises(ValueError, match=r"target_class=12 is not a class of the training set"):
        CollectiveDataset(base(), collectives=[*two(), Collective("third", SignalPlanting(PixelPatch(1), 12), 0.1)])
    with pytest.raises(ValueError, match="supports_batches"):
        item_only = SignalPlanting(_ItemOnlySignal(2), target_class=1)
        CollectiveDataset(base(), collectives=two(first_strategy=item_only), injection="collate")


def test_eligibility_is_each_collectives_own():
    only_threes = FeatureOnlyPlanting(PixelPatch(2), target_class=3)
    ds = CollectiveDataset(base(), collectives=[Collective("threes", only_threes, 0.2), Collective("any", SECOND, 0.1)])
    labels = base().tensors[1]
    assert labels[ds.members_of("threes")].eq(3).all() and len(ds.members_of("threes")) == 2  # round(0.2 * 10)
    assert len(ds.members_of("any")) == 10


@settings(max_examples=40, deadline=None)
@given(
    indices=st.lists(st.integers(0, 99), min_size=1, max_size=40),
    alphas=st.sampled_from([(0.1, 0.2, 0.1), (0.0, 0.3, 0.1), (0.33, 0.33, 0.0), (0.3, 0.0, 0.33)]),
    flag=st.booleans(),
    dicts=st.booleans(),
)
def test_several_collectives_give_the_same_batches_by_item_batched_fetch_and_collate(indices, alphas, flag, dicts):
    from torch.utils.data._utils.collate import default_collate

    data, keys = (DictDataset(base()), {"input_key": "image", "label_key": "label"}) if dicts else (base(), {})
    erasing = SignalErasing(PixelPatch(1, location="top_right"))
    collectives = [*two(*alphas[:2]), Collective("erasing", erasing, alphas[2])]  # each at most 1/3 of the points
    kwargs = dict(seed=2, return_membership=flag, collectives=collectives, **keys)
    by_item = CollectiveDataset(data, **kwargs)
    by_collate = CollectiveDataset(data, injection="collate", **kwargs)
    items = [by_item[i] for i in indices]
    want = default_collate(items)
    for got in (
        default_collate(by_item.__getitems__(indices)),
        by_collate.collate_fn()(by_collate.__getitems__(indices)),
    ):
        pairs = [(got[k], want[k]) for k in want] if dicts else list(zip(got, want, strict=True))
        assert len(got) == len(want) and all(torch.equal(a, b) and a.dtype == b.dtype for a, b in pairs)
