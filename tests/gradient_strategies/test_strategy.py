import pytest
import torch
from torch.utils.data import TensorDataset

from lightning_aca import CollectiveDataModule
from lightning_aca.gradient_strategies import GradientStrategy


def _dm(target_class):
    x, y = torch.arange(40.0).reshape(20, 2), torch.arange(20) % 3
    data = TensorDataset(x, y)
    return CollectiveDataModule(
        GradientStrategy(target_class), 0.5, train_dataset=data, test_dataset=data, return_membership=True
    )


def test_members_keep_their_stored_points():
    dm = _dm(target_class=0)
    dm.setup("fit")
    for i in range(20):
        x, y, _ = dm.train_dataset[i]
        assert torch.equal(x, torch.tensor([2.0 * i, 2.0 * i + 1])) and int(y) == i % 3
    assert sum(dm.train_dataset[i][2] for i in range(20)) == 10


def test_class_goal_evaluates_other_classes_against_target_class():
    dm = _dm(target_class=0)
    labels = [int(item[1]) for item in dm.signal_test_dataset]
    assert len(labels) == 13 and set(labels) == {0}  # 20 points, 7 of class 0 left out


def test_no_class_goal_evaluates_every_point_against_its_label():
    dm = _dm(target_class=None)
    assert [int(item[1]) for item in dm.signal_test_dataset] == [i % 3 for i in range(20)]


@pytest.mark.parametrize(("value", "error"), [(-1, ValueError), (True, TypeError), (1.0, TypeError)])
def test_bad_target_class(value, error):
    with pytest.raises(error, match="target_class"):
        GradientStrategy(target_class=value)


def test_target_class_of_any_integer_kind():
    assert GradientStrategy(torch.tensor(2)).target_class == 2
