"""stratified_split: a partition of the indices that keeps every class's share, fixed by its seed."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lightning_aca.data.split import stratified_split


@settings(max_examples=25, deadline=None)
@given(
    counts=st.lists(st.integers(8, 40), min_size=2, max_size=5),  # every part gets >= 1 point per class
    test_fraction=st.floats(0.2, 0.5),
    val_fraction=st.sampled_from([0.0, 0.25]),
    seed=st.integers(0, 3),
)
def test_parts_partition_the_indices_and_keep_each_class_share(counts, test_fraction, val_fraction, seed):
    labels = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    train, val, test = stratified_split(labels, test_fraction, val_fraction, seed)
    parts = [train, test] + ([] if val is None else [val])
    assert (val is None) == (val_fraction == 0)
    assert torch.equal(torch.cat(parts).sort().values, torch.arange(len(labels)))
    for part in parts:
        assert torch.equal(part, part.sort().values)
    held_out = torch.bincount(labels[test], minlength=len(counts))
    # scikit-learn rounds each class's share to whole points, off by at most one per class
    assert ((held_out - torch.tensor(counts) * len(test) / len(labels)).abs() <= 1).all()
    again_train, _, again_test = stratified_split(labels, test_fraction, val_fraction, seed)
    assert torch.equal(again_train, train) and torch.equal(again_test, test)


def test_too_small_a_class_names_the_fractions_and_the_fix():
    labels = torch.tensor([0] * 20 + [1] * 20 + [2])
    with pytest.raises(
        ValueError, match=r"41 points \(smallest class: 1 points\) with test_fraction=0\.2.*drop classes"
    ):
        stratified_split(labels, 0.2)
