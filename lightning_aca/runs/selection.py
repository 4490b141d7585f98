"""The settings a tuning sweep picks: ``python -m lightning_aca.runs.selection DIR --by KEY [--by KEY ...]``.

A firm tunes its hyperparameters on clean data (α = 0, a validation split held out) before the
collective acts. The records of such a sweep are grouped by the config values at the ``--by``
keys; each group's score is the mean of ``--metric`` (default ``aca/val_acc``) over its runs (its
seeds), and the highest mean wins. A group is left out if one of its runs lacks the metric (a
diverged run records none) or if it has fewer runs than the largest group (a seed missing).
Prints the winner as Hydra overrides, e.g. ``model.lr=0.015``, for the next ``aca-run``.
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections.abc import Iterable, Sequence
from typing import Any

from lightning_aca.runs.records import load_records


def config_value(config: dict[str, Any], key: str) -> Any:
    """The value at a dotted ``key`` of a record's config; ``KeyError`` naming the key if it has none."""
    value: Any = config
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(f"the records' config has no {key!r}; --by takes dotted config keys such as model.lr.")
        value = value[part]
    return value


def best_settings(
    records: Iterable[dict[str, Any]], keys: Sequence[str], metric: str = "aca/val_acc"
) -> dict[str, Any]:
    """``{key: value}`` of the group of ``records`` (grouped by the config values at ``keys``) with the highest mean ``metric``."""
    groups: dict[str, tuple[tuple[Any, ...], list[float]]] = {}
    for record in records:
        values = tuple(config_value(record["config"], key) for key in keys)
        groups.setdefault(repr(values), (values, []))[1].append(record["metrics"].get(metric, math.nan))
    if not groups:
        raise ValueError("no records to choose from; give the tuning sweep's directory.")
    size = max(len(scores) for _, scores in groups.values())
    complete = [(values, scores) for values, scores in groups.values() if len(scores) == size]
    scored = [(statistics.mean(scores), values) for values, scores in complete if not any(map(math.isnan, scores))]
    if not scored:
        raise ValueError(f"no group of {size} runs has {metric!r} in every record; every setting diverged or lacks it.")
    best = max(scored, key=lambda item: item[0])[1]
    return dict(zip(keys, best, strict=True))


def override(key: str, value: Any) -> str:
    """``key=value`` as Hydra reads it back (a list as ``[a,b]``)."""
    if isinstance(value, list):
        return f"{key}=[{','.join(str(v) for v in value)}]"
    return f"{key}={value}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lightning_aca.runs.selection", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="the tuning sweep's directories (or record files)")
    parser.add_argument("--by", action="append", required=True, help="a dotted config key the settings differ in")
    parser.add_argument("--metric", default="aca/val_acc", help="the record metric to maximise (default aca/val_acc)")
    args = parser.parse_args(argv)
    chosen = best_settings(load_records(args.paths), args.by, args.metric)
    print(" ".join(override(key, value) for key, value in chosen.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
