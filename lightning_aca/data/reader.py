"""One reader for every table on disk: CSV, TSV and JSON Lines files, compressed or not, as columns of strings.

Both the tabular sources (:class:`~lightning_aca.data.csv.CSVDataModule`, UCI Adult) and the text
sources (:class:`~lightning_aca.data.text.TextCSVDataModule`, Rotten Tomatoes) read through
:func:`read_table`, built on the standard library's ``csv`` (quoting, embedded newlines and
delimiters, strict about unclosed quotes) and ``json`` modules. Every error is one line that starts
with the file and, where known, the line.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import json
import lzma
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: column name -> the column's values as stripped strings, all of one length
Table = dict[str, np.ndarray]

#: values read as a missing number (compared in lower case): pandas' defaults and UCI's "?"
MISSING = frozenset({"", "?", "na", "n/a", "nan", "-nan", "null", "none", "<na>", "#n/a", "#na"})

_OPENERS: dict[str, Callable[..., Any]] = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


def read_table(
    path: str | Path,
    sep: str | None = None,
    header: bool = True,
    names: Sequence[Any] | None = None,
    comment: str | None = None,
) -> tuple[Table, np.ndarray]:
    """The columns of a CSV, TSV or JSON Lines file, and the file line of each row.

    The format follows the suffix before any ``.gz``/``.bz2``/``.xz`` suffix: ``.jsonl``/``.json``
    holds one JSON object per line (values become strings: JSON ``null`` an empty string), ``.tsv``
    is tab-separated, anything else is delimited by ``sep``. Fields are stripped; blank lines are
    skipped. Repeated header names are kept as ``name``, ``name.1``, ... with a warning.

    Args:
        path: the file.
        sep: the field delimiter, one character; ``None``: tab for ``.tsv``, else ``","``.
        header: whether the first row names the columns; with ``False`` the columns are ``names``,
            or ``"0"``, ``"1"``, ... when ``names`` is ``None``.
        names: the column names of a file without a header row.
        comment: lines starting with it are skipped (UCI's ``adult.test`` starts with ``|``).

    Raises:
        FileNotFoundError: no such file.
        ValueError: a file that is empty, holds no data row, is not UTF-8, has an unclosed quote,
            a row with another number of fields, or a line that is not a JSON object; the message
            names the file and line.

    Example:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
        ...     _ = f.write('age;job\\n41; "admin, senior"\\n\\n29;blue-collar\\n')
        >>> table, lines = read_table(f.name, sep=";")
        >>> {k: v.tolist() for k, v in table.items()}, lines.tolist()
        ({'age': ['41', '29'], 'job': ['admin, senior', 'blue-collar']}, [2, 4])
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file; give the path of an existing CSV, TSV or JSONL file.")
    if sep is not None and not (isinstance(sep, str) and len(sep) == 1):
        raise ValueError(f"sep must be one character (e.g. ',' or ';'), got {sep!r}.")
    if names is not None and header:
        raise ValueError(f"{path}: names= is for a file without a header row; give header=False with it.")
    suffixes = [s.lower() for s in path.suffixes]
    opener = _OPENERS.get(suffixes[-1], open) if suffixes else open
    if opener is not open:
        suffixes.pop()
    kind = suffixes[-1] if suffixes else ""
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline="") as handle:
            lines = _content(handle, comment)
            if kind in (".jsonl", ".json"):
                rows, numbers = _json_rows(lines, path)
                header, names = True, None  # the first object's keys
            else:
                delimiter = sep or ("\t" if kind == ".tsv" else ",")
                rows, numbers = _delimited_rows(lines, path, delimiter)
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); save it as UTF-8.") from None
    except (OSError, EOFError, lzma.LZMAError) as err:
        raise ValueError(f"{path}: cannot be read ({err}); is the file complete and its suffix its format?") from None
    if not rows:
        raise ValueError(f"{path} is empty: no header row and no data.")
    columns = _header(rows.pop(0), path) if header else _names(names, len(rows[0]), path)
    numbers = numbers[1:] if header else numbers
    if not rows:
        raise ValueError(f"{path} holds a header but no data rows; give a file with at least one row.")
    for row, line in zip(rows, numbers, strict=True):
        if len(row) != len(columns):
            hint = f"is sep={sep or ','!r} the file's delimiter?" if kind != ".tsv" else "is each field tab-separated?"
            raise ValueError(f"{path}, line {line}: {len(row)} fields, but {len(columns)} columns {columns}; {hint}")
    values = np.array(rows, dtype=str).reshape(len(rows), len(columns))
    return {name: values[:, j] for j, name in enumerate(columns)}, np.array(numbers)


def to_numbers(values: np.ndarray) -> np.ndarray | None:
    """A string column as float64, :data:`MISSING` values as NaN; ``None`` when some value is not a number.

    A column of missing values only is not numeric either.

    Example:
        >>> to_numbers(np.array(["1", "?", "inf", ""])).tolist(), to_numbers(np.array(["1", "a"]))
        ([1.0, nan, inf, nan], None)
    """
    missing = is_missing(values)
    if missing.all():
        return None
    try:
        return np.where(missing, "nan", values).astype(np.float64)
    except ValueError:
        return None


def is_missing(values: np.ndarray) -> np.ndarray:
    """Which values of a string column are a missing number (:data:`MISSING`, in any case).

    Example:
        >>> is_missing(np.array(["1", "?", "NaN", "a"])).tolist()
        [False, True, True, False]
    """
    return np.isin(np.char.lower(values.astype(str)), list(MISSING))


def first_non_number(values: np.ndarray) -> int | None:
    """The position of the first value that is neither a number nor missing, or None.

    Example:
        >>> first_non_number(np.array(["1", "?", "a", "b"])), first_non_number(np.array(["1", ""]))
        (2, None)
    """
    return next((i for i, v in enumerate(values.tolist()) if to_numbers(np.array([v, "0"])) is None), None)


def _content(handle: Iterator[str], comment: str | None) -> Iterator[tuple[int, str]]:
    """The file's lines with their numbers, less blank and comment lines (a quoted field's lines stay)."""
    for number, line in enumerate(handle, start=1):
        if not (comment and line.startswith(comment)):
            yield number, line


def _delimited_rows(lines: Iterator[tuple[int, str]], path: Path, sep: str) -> tuple[list[list[str]], list[int]]:
    read: list[int] = []  # the number of every line the csv reader has taken, for the line a row starts on

    def text() -> Iterator[str]:
        for number, line in lines:
            read.append(number)
            yield line

    reader = csv.reader(text(), delimiter=sep, skipinitialspace=True, strict=True)
    rows, numbers = [], []
    while True:
        start = len(read)
        try:
            row = next(reader, None)
        except csv.Error as err:
            raise ValueError(
                f"{path}, line {read[min(start, len(read) - 1)]}: {err} (an unclosed or stray quote, or is "
                f'sep={sep!r} not the file\'s delimiter?); quote fields as "..." with inner quotes doubled ("").'
            ) from None
        if row is None:
            return rows, numbers
        if any(field.strip() for field in row):
            rows.append([field.strip() for field in row])
            numbers.append(read[start])


def _json_rows(lines: Iterator[tuple[int, str]], path: Path) -> tuple[list[list[str]], list[int]]:
    """The rows of a JSON Lines file; the first row holds the first object's keys (its header)."""
    keys: list[str] | None = None
    rows, numbers = [], []
    for number, line in lines:
        if not line.strip():
            continue
        try:
            item = json.loads(line, object_pairs_hook=_unique_keys)
        except ValueError as err:
            raise ValueError(f"{path}, line {number}: not a JSON object ({err}); write one object per line.") from None
        if not isinstance(item, dict):
            raise ValueError(f"{path}, line {number}: a JSON {type(item).__name__}, not an object; write one per line.")
        if keys is None:
            keys = list(item)
            rows.append(keys)
            numbers.append(number)
        missing = [key for key in keys if key not in item]
        if missing:
            raise ValueError(f"{path}, line {number}: no key {missing} (the first line's keys are {keys}).")
        rows.append([_string(item[key]) for key in keys])
        numbers.append(number)
    return rows, numbers


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    repeated = sorted(key for key, n in Counter(key for key, _ in pairs).items() if n > 1)
    if repeated:
        raise ValueError(f"keys {repeated} repeated in one object")
    return dict(pairs)


def _string(value: Any) -> str:
    if value is None:
        return ""
    return value.strip() if isinstance(value, str) else json.dumps(value)


def _header(row: list[str], path: Path) -> list[str]:
    """The header's names, repeated ones numbered; warns when the header looks like a data row."""
    if all(to_numbers(np.array([name])) is not None for name in row):
        warnings.warn(
            f"{path}: the header row {row[:5]} holds only numbers; if the file has no header, give "
            "header=False (aca-run: data.datamodule.header=false) with names=[...] or use column indices.",
            UserWarning,
            stacklevel=3,
        )
    counts = Counter(row)
    repeated = sorted(name for name, n in counts.items() if n > 1)
    if not repeated:
        return row
    seen: Counter[str] = Counter()
    names = []
    for name in row:
        names.append(name if not seen[name] else f"{name}.{seen[name]}")
        seen[name] += 1
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: header names {repeated} repeat and clash when numbered; rename them in the file.")
    warnings.warn(
        f"{path}: header names {repeated} appear more than once; each is kept, the repeats as "
        f"{[n for n in names if n not in counts]} (use drop=[...] to leave any out).",
        UserWarning,
        stacklevel=3,
    )
    return names


def _names(names: Sequence[Any] | None, width: int, path: Path) -> list[str]:
    if names is None:
        return [str(j) for j in range(width)]
    names = [str(name) for name in names]
    if len(set(names)) != len(names):
        raise ValueError(f"names={names} repeat a name; give each column of {path} its own name.")
    if len(names) != width:
        raise ValueError(f"names= gives {len(names)} names, but {path}'s first row has {width} fields; name each one.")
    return names
