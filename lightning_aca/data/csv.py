"""Any CSV file on this machine as a classification data source (e.g. UCI Bank Marketing's ``bank-full.csv``).

Rows are split into train and test (stratified by label), then encoded by a
:class:`~lightning_aca.data.tabular.TabularEncoder` fit on the training rows: numeric columns
standardized, the others one-hot. Labels are the label column's values mapped to 0..k−1 in
sorted order (numerically when they are all numbers), kept in :attr:`CSVDataModule.classes`.
The file is read by :func:`~lightning_aca.data.reader.read_table`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from lightning_aca.data.reader import Table, first_non_number, is_missing, read_table, to_numbers
from lightning_aca.data.split import stratified_split
from lightning_aca.data.tabular import TabularDataModule, TabularEncoder
from lightning_aca.validation import integer, non_negative_int, real

#: what ``missing=`` may say to do with a missing or non-finite number (or a missing label)
MISSING_POLICIES = ("error", "drop", "mean")


class CSVDataModule(TabularDataModule):
    """A local CSV file with a label column, as a LightningDataModule.

    The model must know the encoded width before the data is read (``input_shape``), so the
    width can be given as ``num_features`` (and the class count as ``num_classes``): set-up
    fails with the right value if either is wrong. With ``None`` they are not checked.
    After set-up, ``num_features``, ``num_classes``, :attr:`classes` and
    :attr:`feature_names` describe the data. The validation loader serves the test split.

    A column is numeric when every value is a number or missing (empty, ``?``, ``NA``, ``nan``:
    :data:`~lightning_aca.data.reader.MISSING`). A missing or non-finite number, or a missing
    label, stops set-up with the column and file lines, unless ``missing`` says what to do.
    A categorical column with a distinct value on most rows (names, dates, case numbers) is
    warned about: it adds a feature per row and can leak the label.

    Args:
        path: the CSV file (``.gz``/``.bz2``/``.xz`` compressed or not).
        label_column: the column holding the label (its index when ``header=False`` without names).
        sep: the field delimiter (``";"`` for UCI Bank Marketing).
        categorical: the columns to one-hot encode; ``None`` takes every column (except the
            label) with a value that is neither a number nor missing. All other columns are standardized.
        header: whether the first row names the columns; ``False`` for a file without one.
        names: the column names of a file without a header; ``None`` names them by index, ``"0"``, ``"1"``, ...
        columns: the feature columns to use; ``None``: all but ``drop`` and the label.
        drop: columns to leave out (identifiers, dates, free text, other outcomes).
        missing: ``"error"`` (default), ``"drop"`` (leave out rows with a missing or non-finite
            number or label) or ``"mean"`` (a missing or non-finite number becomes the training mean;
            rows with a missing label are left out).
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
        label_column: str | int,
        sep: str = ",",
        categorical: Sequence[str | int] | None = None,
        header: bool = True,
        names: Sequence[str] | None = None,
        columns: Sequence[str | int] | None = None,
        drop: Sequence[str | int] | None = None,
        missing: str = "error",
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
        self.label_column = str(label_column)
        self.sep = sep
        if not isinstance(header, bool):
            raise TypeError(f"header must be true or false, got {header!r}.")
        self.header, self.names = header, None if names is None else [str(n) for n in names]
        self.categorical, self.columns, self.drop = (
            None if arg is None else [str(c) for c in arg] for arg in (categorical, columns, drop)
        )
        if missing not in MISSING_POLICIES:
            raise ValueError(f"missing must be one of {list(MISSING_POLICIES)}, got {missing!r}.")
        self.missing = missing
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
        table, lines = read_table(self.path, self.sep, self.header, self.names)
        if self.label_column not in table:
            hint = f" (one column: is sep={self.sep!r} the file's delimiter?)" if len(table) == 1 else ""
            raise ValueError(
                f"label_column={self.label_column!r} is not a column of {self.path}; its columns are {list(table)}{hint}."
            )
        table = self._select(table)
        values = table.pop(self.label_column)
        categorical = self.categorical
        if categorical is None:
            categorical = [name for name, column in table.items() if to_numbers(column) is None]
        numeric = [name for name in table if name not in categorical]
        raw = dict(table)
        table.update({name: self._numbers(name, table[name], lines) for name in numeric})
        keep = self._rows_to_keep(table, raw, numeric, values, lines)
        table, values = {name: column[keep] for name, column in table.items()}, values[keep]
        self._warn_identifiers(table, categorical)
        self._classes, labels = _classes(values)
        self._check("num_classes", self.num_classes, len(self._classes), f"classes {self._classes}")
        counts = torch.bincount(labels)
        if len(counts) < 2 or counts.min() < 2:
            rare = self._classes[int(counts.argmin())]
            raise ValueError(
                f"label_column={self.label_column!r} of {self.path}: class {rare!r} has {int(counts.min())} rows "
                f"of {len(labels)}; a classifier needs two classes and a stratified train/test split at least 2 rows "
                "of every class."
            )
        try:
            train, _, test = stratified_split(labels, self.test_fraction, seed=self.split_seed)
        except ValueError as err:
            raise ValueError(f"{self.path}: {err}") from None
        datasets = self.encode(
            TabularEncoder(numeric, categorical),
            {name: column[train.numpy()] for name, column in table.items()},
            labels[train],
            {name: column[test.numpy()] for name, column in table.items()},
            labels[test],
        )
        width = self.encoder.num_features
        blocks = {name: sum(f.startswith(f"{name}=") for f in self.encoder.feature_names) for name in categorical}
        widest = ", ".join(f"{name} {n}" for name, n in sorted(blocks.items(), key=lambda kv: -kv[1])[:5])
        self._check(
            "num_features",
            self.num_features,
            width,
            f"{len(numeric)} numeric + {width - len(numeric)} one-hot" + (f": {widest}" if widest else ""),
        )
        self.num_features, self.num_classes = width, len(self._classes)
        return datasets

    def _select(self, table: Table) -> Table:
        """The label and the chosen feature columns (``columns``, less ``drop``), checked against the file."""
        asked = {"columns": self.columns, "drop": self.drop, "categorical": self.categorical}
        for key, names in asked.items():
            unknown = [name for name in names or () if name not in table]
            if unknown:
                raise ValueError(f"{key}={unknown} are not columns of {self.path}; its columns are {list(table)}.")
            if self.label_column in (names or ()) and key != "columns":
                raise ValueError(f"{key}= names the label column {self.label_column!r}; leave it out of {key}.")
        chosen = [name for name in self.columns or table if name != self.label_column and name not in (self.drop or ())]
        if not chosen:
            raise ValueError(f"columns= and drop= leave no feature column of {self.path}; keep at least one.")
        return {name: table[name] for name in [*chosen, self.label_column]}

    def _numbers(self, name: str, values: np.ndarray, lines: np.ndarray) -> np.ndarray:
        numbers = to_numbers(values)
        if numbers is None:
            bad = first_non_number(values)
            raise ValueError(
                f"{self.path}: column {name!r} is not categorical but holds the non-numeric value {str(values[bad])!r} "
                f"(line {lines[bad]}); add it to categorical=[...] or fix the file."
            )
        return numbers

    def _rows_to_keep(
        self, table: Table, raw: Table, numeric: list[str], labels: np.ndarray, lines: np.ndarray
    ) -> np.ndarray:
        """Rows with a label and finite numbers, as ``missing`` says; an error naming columns and lines otherwise."""
        missing_label = is_missing(labels)
        bad_numbers = {name: ~np.isfinite(table[name]) for name in numeric}
        faults = [(f"label column {self.label_column!r}", missing_label, labels)] + [
            (f"column {name!r}", bad, raw[name]) for name, bad in bad_numbers.items()
        ]
        faults = [fault for fault in faults if fault[1].any()]
        if faults and self.missing == "error":
            where = "; ".join(
                f"{column} at line{'s' if bad.sum() > 1 else ''} "
                + ", ".join(f"{lines[i]} ({str(values[i])!r})" for i in np.flatnonzero(bad)[:5])
                + (f" and {bad.sum() - 5} more" if bad.sum() > 5 else "")
                for column, bad, values in faults
            )
            raise ValueError(
                f"{self.path}: missing or non-finite values: {where}; fix the file, or set missing=drop to leave "
                "those rows out or missing=mean to fill numbers with the training mean (aca-run: "
                "data.datamodule.missing=drop)."
            )
        dropped = missing_label.copy()
        if self.missing == "drop":
            for bad in bad_numbers.values():
                dropped |= bad
        for name in numeric:  # missing=mean: NaN, which the encoder fills with the training mean
            table[name][bad_numbers[name]] = np.nan
        if dropped.any():
            warnings.warn(
                f"{self.path}: missing={self.missing} leaves out {int(dropped.sum())} of {len(dropped)} rows "
                "with a missing label" + (" or a missing or non-finite number." if self.missing == "drop" else "."),
                UserWarning,
                stacklevel=3,
            )
        if dropped.all():
            raise ValueError(f"{self.path}: missing={self.missing} leaves no row; fix the file's missing values.")
        return ~dropped

    def _warn_identifiers(self, table: Table, categorical: list[str]) -> None:
        rows = len(next(iter(table.values())))
        wide = {name: len(np.unique(table[name])) for name in categorical}
        wide = {name: n for name, n in wide.items() if n > 20 and n >= rows / 2}
        if wide:
            names = ",".join(wide)
            warnings.warn(
                f"{self.path}: categorical column(s) "
                + ", ".join(f"{name!r} ({n} values in {rows} rows)" for name, n in wide.items())
                + " hold nearly one value per row, like identifiers (names, dates, case numbers): each value "
                f"becomes a one-hot feature that can leak the label; leave them out with drop=[{names}] "
                f"(aca-run: data.datamodule.drop=[{names}]).",
                UserWarning,
                stacklevel=3,
            )

    def _check(self, name: str, given: int | None, actual: int, detail: str) -> None:
        if given is not None and given != actual:
            raise ValueError(
                f"{name}={given}, but {self.path} with label_column={self.label_column!r} gives {actual} ({detail}): "
                f"set {name}={actual} (aca-run: data.datamodule.{name}={actual})."
            )


def _classes(values: np.ndarray) -> tuple[list[str], torch.Tensor]:
    """The distinct label values in sorted order (numeric order if all are numbers) and each row's index."""
    distinct = np.unique(values)
    numbers = to_numbers(distinct)
    if numbers is not None:
        distinct = distinct[np.argsort(numbers, kind="stable")]
    index = {value: i for i, value in enumerate(distinct.tolist())}
    return distinct.tolist(), torch.tensor([index[value] for value in values.tolist()], dtype=torch.long)
