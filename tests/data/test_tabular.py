"""TabularEncoder: training statistics only, sorted one-hot blocks, unseen categories, clear errors."""

import numpy as np
import pytest
import torch

from lightning_aca.data.tabular import TabularEncoder


def _table(**columns):
    return {name: np.array(values, dtype=str) for name, values in columns.items()}


TRAIN = _table(age=["20", "30", "40", "50"], job=["b", "a", "?", "a"], pay=["1", "1", "3", "3"])
TEST = _table(age=["35", "80"], job=["a", "zzz"], pay=["2", "5"])


def test_numeric_columns_are_standardized_with_training_statistics_only():
    encoder = TabularEncoder(["age", "pay"], ["job"]).fit(TRAIN)
    train, test = encoder.transform(TRAIN), encoder.transform(TEST)
    assert train.dtype == torch.float32 and train.shape == (4, 5)
    # train: mean 35, population std sqrt(125); pay: mean 2, std 1
    assert torch.allclose(train[:, :2].mean(0), torch.zeros(2), atol=1e-6)
    assert torch.allclose(train[:, :2].std(0, unbiased=False), torch.ones(2), atol=1e-6)
    expected = torch.tensor([[0.0, 0.0], [45 / 125**0.5, 3.0]])
    assert torch.allclose(test[:, :2], expected, atol=1e-6)  # not the test split's own mean and std


def test_categories_come_from_training_rows_sorted_and_unseen_ones_encode_as_zeros():
    encoder = TabularEncoder(["age"], ["job"]).fit(TRAIN)
    assert encoder.feature_names == ["age", "job=?", "job=a", "job=b"] and encoder.num_features == 4
    assert encoder.transform(TRAIN)[:, 1:].tolist() == [[0, 0, 1], [0, 1, 0], [1, 0, 0], [0, 1, 0]]
    assert encoder.transform(TEST)[:, 1:].tolist() == [[0, 1, 0], [0, 0, 0]]  # "zzz" never seen in training


def test_only_categorical_or_only_numeric_columns():
    assert TabularEncoder([], ["job"]).fit(TRAIN).transform(TEST).shape == (2, 3)
    assert TabularEncoder(["pay"], []).fit(TRAIN).transform(TEST).flatten().tolist() == [0.0, 3.0]


def test_errors_name_the_column_and_the_fix():
    with pytest.raises(
        ValueError, match=r"numeric column 'job' holds the non-numeric value 'b'; list it as categorical"
    ):
        TabularEncoder(["job"], []).fit(TRAIN)
    with pytest.raises(ValueError, match=r"column 'wage' is not in the table; its columns are \['age', 'job', 'pay'\]"):
        TabularEncoder(["wage"], []).fit(TRAIN)
    with pytest.raises(ValueError, match=r"\['age'\] are listed as both numeric and categorical"):
        TabularEncoder(["age"], ["age"])
    with pytest.raises(ValueError, match="at least one"):
        TabularEncoder([], [])
    with pytest.raises(RuntimeError, match="not fitted"):
        TabularEncoder(["age"], []).transform(TRAIN)
