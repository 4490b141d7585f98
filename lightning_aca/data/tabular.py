"""Tables as model inputs: numeric columns standardized and categorical ones one-hot, fit on training rows.

The usual encoding of tabular benchmarks (UCI Adult, Bank Marketing): each numeric column x
becomes (x − mean) / std with the training split's mean and (population) std, each categorical
column one indicator per category seen in training (sorted; a test value never seen in training
encodes as all zeros). Only training rows are looked at, so nothing about the test split leaks
into the features. ``feature_names`` says which input index holds which feature, e.g. to plant
a signal with :class:`~lightning_aca.collective.signals.FeatureAssignment`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import TensorDataset

from lightning_aca.data.in_memory import InMemoryDataModule
from lightning_aca.data.reader import Table, first_non_number, to_numbers


class TabularEncoder:
    """Standardize numeric columns and one-hot encode categorical ones, fit on the training rows only.

    Outputs the numeric columns first, in the order given, then one block of indicators per
    categorical column (categories sorted; ``"?"`` is a category like any other). A missing
    number (NaN, or a :data:`~lightning_aca.data.reader.MISSING` string such as ``"?"``) encodes
    as 0, the training mean, and is left out of the training statistics. Built on scikit-learn's
    ``StandardScaler`` and ``OneHotEncoder(handle_unknown="ignore")``.

    Args:
        numeric: names of the numeric columns.
        categorical: names of the categorical columns.

    Example:
        >>> encoder = TabularEncoder(["age"], ["sex"])
        >>> train = {"age": np.array(["20", "40"]), "sex": np.array(["M", "F"])}
        >>> encoder.fit(train).feature_names
        ['age', 'sex=F', 'sex=M']
        >>> encoder.transform({"age": np.array(["30", "60"]), "sex": np.array(["M", "X"])}).tolist()
        [[0.0, 0.0, 1.0], [3.0, 0.0, 0.0]]
    """

    def __init__(self, numeric: Sequence[str], categorical: Sequence[str]) -> None:
        self.numeric, self.categorical = list(numeric), list(categorical)
        overlap = sorted(set(self.numeric) & set(self.categorical))
        if overlap:
            raise ValueError(f"columns {overlap} are listed as both numeric and categorical.")
        if not self.numeric + self.categorical:
            raise ValueError("TabularEncoder needs at least one numeric or categorical column.")
        self.feature_names: list[str] = []
        self._scaler = self._one_hot = None

    @property
    def num_features(self) -> int:
        """Width of the encoded rows (numeric columns + one indicator per training category)."""
        self._check_fitted()
        return len(self.feature_names)

    def fit(self, table: Mapping[str, np.ndarray]) -> TabularEncoder:
        """Learn means, standard deviations and categories from the training rows ``table``."""
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        names = list(self.numeric)
        if self.numeric:
            self._scaler = StandardScaler().fit(self._numbers(table))
        if self.categorical:
            self._one_hot = OneHotEncoder(
                handle_unknown="ignore",
                sparse_output=False,
                dtype=np.float32,
                feature_name_combiner=lambda column, category: f"{column}={category}",
            ).fit(self._strings(table))
            names += self._one_hot.get_feature_names_out(self.categorical).tolist()
        self.feature_names = names
        return self

    def transform(self, table: Mapping[str, np.ndarray]) -> Tensor:
        """``(rows, num_features)`` float32 features of ``table``."""
        self._check_fitted()
        parts = []
        if self.numeric:
            parts.append(np.nan_to_num(self._scaler.transform(self._numbers(table)), nan=0.0).astype(np.float32))
        if self.categorical:
            parts.append(self._one_hot.transform(self._strings(table)))
        return torch.from_numpy(np.concatenate(parts, axis=1))

    def _check_fitted(self) -> None:
        if not self.feature_names:
            raise RuntimeError("TabularEncoder is not fitted: call fit(training rows) first.")

    def _column(self, table: Mapping[str, np.ndarray], name: str) -> np.ndarray:
        if name not in table:
            raise ValueError(f"column {name!r} is not in the table; its columns are {list(table)}.")
        return table[name]

    def _numbers(self, table: Mapping[str, np.ndarray]) -> np.ndarray:
        columns = []
        for name in self.numeric:
            values = self._column(table, name)
            numbers = values.astype(np.float64) if values.dtype.kind == "f" else to_numbers(values)
            if numbers is None:
                bad = values[first_non_number(values)]
                raise ValueError(
                    f"numeric column {name!r} holds the non-numeric value {str(bad)!r}; list it as categorical instead."
                )
            if np.isinf(numbers).any():
                raise ValueError(f"numeric column {name!r} holds an infinite value; give finite numbers or NaN.")
            columns.append(numbers)
        return np.stack(columns, axis=1)

    def _strings(self, table: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.stack([self._column(table, name).astype(object) for name in self.categorical], axis=1)


class TabularDataModule(InMemoryDataModule):
    """Rows of a table as ``(features, label)`` tensors, encoded by a :class:`TabularEncoder` fit on training rows.

    Subclasses read their rows in :meth:`build` and hand them to :meth:`encode`; ``encoder``,
    ``feature_names`` and ``input_shape`` are available once the module is set up (asking for
    them sets it up).
    """

    def __init__(self, batch_size: int, num_workers: int = 0) -> None:
        super().__init__(batch_size, num_workers)
        self.encoder: TabularEncoder | None = None

    def encode(
        self, encoder: TabularEncoder, train: Table, train_labels: Tensor, test: Table, test_labels: Tensor
    ) -> tuple[TensorDataset, TensorDataset]:
        """Fit ``encoder`` on the ``train`` rows and encode both splits."""
        self.encoder = encoder.fit(train)
        return (
            TensorDataset(encoder.transform(train), train_labels),
            TensorDataset(encoder.transform(test), test_labels),
        )

    @property
    def feature_names(self) -> list[str]:
        """The name of each input feature: numeric column names, then ``column=category``."""
        self.setup()
        return self.encoder.feature_names

    @property
    def input_shape(self) -> tuple[int]:
        """``(num_features,)``: the encoded width."""
        self.setup()
        return (self.encoder.num_features,)
