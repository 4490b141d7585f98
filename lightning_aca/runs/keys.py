"""The keys a run logs and records its metrics under: a stable public interface, ``aca/<metric>``.

With several collectives (Karan et al. 2025) each one's metrics carry its name,
``aca/<metric>/<name>``; the one collective's carry none, so one collective is a list of one.
"""

from __future__ import annotations

from collections.abc import Sequence


def metric_key(metric: str, collective: str | None = None) -> str:
    """The logging and record key of a metric: ``aca/<metric>``, or ``aca/<metric>/<name>`` for one of several
    named collectives (Karan et al. 2025).

    Example:
        >>> metric_key("success"), metric_key("success", "first")
        ('aca/success', 'aca/success/first')
    """
    return f"aca/{metric}" if collective is None else f"aca/{metric}/{collective}"


def key_names(names: Sequence[str]) -> list[str | None]:
    """Each collective's name in metric keys: none for the one collective (``aca/success``), else its own.

    Example:
        >>> key_names(["collective"]), key_names(["first", "second"])
        ([None], ['first', 'second'])
    """
    return [None] if len(names) == 1 else list(names)
