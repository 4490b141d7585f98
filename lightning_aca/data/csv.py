"""Any CSV file on this machine as a classification data source (e.g. UCI Bank Marketing's ``bank-full.csv``).

Rows are split into train and test (stratified by label), then encoded by a
:class:`~lightning_aca.data.tabular.TabularEncoder` fit on the training rows: numeric columns
standardized, the others one-hot. Labels are the label column's values mapped to 0..k−1 in
sorted order (numerically when they are all numbers), kept in :attr:`CSVDataModule.classes`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from lightning_aca.data.split import stratified_split
from lightning_aca.data.tabular import TabularDataModule, TabularEncoder, is_numeric, read_csv
from lightning_aca.validation import integer, non_negative_int, real


class CSVDataModule(TabularDataModule):
    """A local CSV file with a header row and a label column, as a LightningDataModule.

    The model must know the encoded width before the data is read (``input_shape``), so the
    width can be given as ``num_features`` (and the class count as ``num_classes``): set-up
    fails with the right value if either is wrong. With ``None`` they are not checked.
    After set-up, ``num_features``, ``num_classes``, :attr:`classes` and
    :attr:`feature_names` describe the data. The validation loader serves the test split.

    Args:
        path: the CSV file.
        label_column: the column holding the label.
        sep: the field delimiter (``";"`` for UCI Bank Marketing).
        categorical: the columns to one-hot encode; ``None`` takes every column (except the
            label) with a value that is not a number. All other columns are standardized.
        test_fraction: fraction of the rows held out for testing (stratified by label).
        split_seed: seed of the stratified split; the same seed gives the same split.
        num_features: the expected encoded width, checked at set-up; ``None`` to skip.
        num_classes: the expected number of classes, checked at set-up; ``None`` to skip.
        batch_size, num_workers: loader settings.

    Example:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
        ...     _ = f.write("age;job;y\\n" + "".join(f"{20 + i};{'ab'[i % 2]};{'no' if i % 3 else 'yes'}\\n" for i in range(30)))
        >>> dm = CSVDataModule(f.name, label_column="y", sep=";")
        >>> dm.setup()
        >>> dm.feature_names, dm.classes, len(dm.train_dataset), len(dm.test_dataset)
        (['age', 'job=a', 'job=b'], ['no', 'yes'], 24, 6)
    """

    def __init__(
        self,
        path: str,
        label_column: str,
        sep: str = ",",
        categorical: Sequence[str] | None = None,
        test_fraction: float = 0.2,
        split_seed: int = 0,
        num_features: int | None = None,
        num_classes: int | None = None,
        batch_size: int = 64,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size, num_workers)
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise FileNotFoundError(f"path={str(path)!r} is not a file; give the CSV file to read.")
        self.label_column = label_column
        self.sep = sep
        self.categorical = None if categorical is None else list(categorical)
        self.test_fraction = real("test_fraction", test_fraction, low=0, high=1, low_open=True, high_open=True)
        self.split_seed = non_negative_int("split_seed", split_seed)
        self.num_features = None if num_features is None else integer("num_features", num_features, low=1)
        self.num_classes = None if num_classes is None else integer("num_classes", num_classes, low=2)
        self._classes: list[str] = []

    @property
    def classes(self) -> list[str]:
        """The label column's values; label i is ``classes[i]``."""
        self.setup()
        return self._classes

    def build(self) -> tuple[TensorDataset, TensorDataset]:
        table = read_csv(self.path, self.sep)
        if self.label_column not in table:
            hint = f" (one column: is sep={self.sep!r} the file's delimiter?)" if len(table) == 1 else ""
            raise ValueError(
                f"label_column={self.label_column!r} is not a column of {self.path}; its columns are {list(table)}{hint}."
            )
        values = table.pop(self.label_column)
        self._classes, labels = _classes(values)
        self._check("num_classes", self.num_classes, len(self._classes), f"classes {self._classes}")
        counts = torch.bincount(labels)
        if counts.min() < 2:
            rare = self._classes[int(counts.argmin())]
            raise ValueError(
                f"label_column={self.label_column!r}: class {rare!r} has {int(counts.min())} row; "
                "a stratified train/test split needs at least 2 rows of every class."
            )
        unknown = sorted(set(self.categorical or ()) - set(table))
        if unknown:
            raise ValueError(f"categorical columns {unknown} are not in {self.path}; its columns are {list(table)}.")
        categorical = self.categorical
        if categorical is None:
            categorical = [name for name, column in table.items() if not is_numeric(column)]
        numeric = [name for name in table if name not in categorical]
        train, _, test = stratified_split(labels, self.test_fraction, seed=self.split_seed)
        datasets = self.encode(
            TabularEncoder(numeric, categorical),
            {name: column[train.numpy()] for name, column in table.items()},
            labels[train],
            {name: column[test.numpy()] for name, column in table.items()},
            labels[test],
        )
        width = self.encoder.num_features
        self._check(
            "num_features", self.num_features, width, f"{len(numeric)} numeric + {width - len(numeric)} one-hot"
        )
        self.num_features, self.num_classes = width, len(self._classes)
        return datasets

    def _check(self, name: str, given: int | None, actual: int, detail: str) -> None:
        if given is not None and given != actual:
            raise ValueError(
                f"{name}={given}, but {self.path} with label_column={self.label_column!r} gives {actual} ({detail}): "
                f"set {name}={actual} (aca-run: data.datamodule.{name}={actual})."
            )


def _classes(values: np.ndarray) -> tuple[list[str], torch.Tensor]:
    """The distinct label values in sorted order (numeric order if all are numbers) and each row's index."""
    distinct = np.unique(values)
    if is_numeric(distinct):
        distinct = distinct[np.argsort(distinct.astype(np.float64), kind="stable")]
    index = {value: i for i, value in enumerate(distinct.tolist())}
    return distinct.tolist(), torch.tensor([index[value] for value in values.tolist()], dtype=torch.long)
