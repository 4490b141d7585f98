"""Argument validation shared by every public constructor and function.

Each check returns the value in its canonical Python type or raises ``ValueError`` (``TypeError``
for a value of the wrong kind) with a message that names the parameter, shows the bad value and
states what is allowed. ``True``/``False`` are never numbers here; 0-d tensors and NumPy scalars
are accepted wherever a number is.

Example:
    >>> positive_int("batch_size", 64)
    64
    >>> fraction("alpha", 0.25)
    0.25
    >>> positive_int("batch_size", True)
    Traceback (most recent call last):
    ...
    TypeError: batch_size must be a positive int, got True (bool).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Collection
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = [
    "flag",
    "fraction",
    "integer",
    "non_negative_int",
    "non_negative_real",
    "one_of",
    "positive_int",
    "positive_real",
    "real",
]


def _scalar(value: Any) -> Any:
    """A 0-d tensor or NumPy scalar as a plain Python number; anything else unchanged."""
    item = getattr(value, "item", None)
    shape = getattr(value, "shape", None)
    if callable(item) and shape is not None and tuple(shape) == ():
        return item()
    return value


def _shown(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def integer(name: str, value: Any, *, low: int | None = None, high: int | None = None, kind: str = "an int") -> int:
    """``value`` as an int in ``[low, high]``; floats with integral values are not ints."""
    plain = _scalar(value)
    if isinstance(plain, bool) or not isinstance(plain, numbers.Integral):
        raise TypeError(f"{name} must be {kind}, got {_shown(value)}.")
    plain = int(plain)
    if (low is not None and plain < low) or (high is not None and plain > high):
        raise ValueError(f"{name} must be {kind}, got {plain!r}.")
    return plain


def positive_int(name: str, value: Any) -> int:
    """An int ≥ 1."""
    return integer(name, value, low=1, kind="a positive int")


def non_negative_int(name: str, value: Any) -> int:
    """An int ≥ 0."""
    return integer(name, value, low=0, kind="a non-negative int")


def real(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    allow_inf: bool = False,
) -> float:
    """``value`` as a float in the interval given by ``low``/``high`` (closed unless ``*_open``).

    NaN is always refused; ±∞ only with ``allow_inf=True``.
    """
    plain = _scalar(value)
    if isinstance(plain, bool) or not isinstance(plain, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {_shown(value)}.")
    plain = float(plain)
    interval = (
        f"{'(' if low_open or low is None else '['}{'-inf' if low is None else low}, "
        f"{'inf' if high is None else high}{')' if high_open or high is None else ']'}"
    )
    finite = math.isfinite(plain) or (allow_inf and not math.isnan(plain))
    above = low is None or (plain > low if low_open else plain >= low)
    below = high is None or (plain < high if high_open else plain <= high)
    if not (finite and above and below):
        what = "a number" if allow_inf else "a finite number"
        raise ValueError(f"{name} must be {what} in {interval}, got {plain!r}.")
    return plain


def positive_real(name: str, value: Any) -> float:
    """A finite float > 0."""
    return real(name, value, low=0.0, low_open=True)


def non_negative_real(name: str, value: Any) -> float:
    """A finite float ≥ 0."""
    return real(name, value, low=0.0)


def fraction(name: str, value: Any) -> float:
    """A float in [0, 1]."""
    return real(name, value, low=0.0, high=1.0)


def flag(name: str, value: Any) -> bool:
    """``True`` or ``False`` itself (not 0/1, not a string)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {_shown(value)}.")
    return value


def one_of(name: str, value: T, options: Collection[T]) -> T:
    """``value`` if it is one of ``options``."""
    if isinstance(value, bool) or value not in options:
        raise ValueError(f"{name} must be one of {tuple(options)}, got {value!r}.")
    return value
