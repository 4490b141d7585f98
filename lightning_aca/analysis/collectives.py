"""Several collectives over the (α_1, α_2, …) grid: each one's success S_i per cell, with a 95% interval.

Karan, Vincent, Karahalios, Sundaram (FAccT 2025) let several collectives act on one training set;
whether they compete or cooperate shows in how S_i moves with the other collective's α_j. Records
of such runs hold their collectives under ``collectives`` and each success as ``aca/success/<name>``
(:mod:`lightning_aca.runs.records`). Here they are grouped as one-collective records are
(:func:`~lightning_aca.runs.records.group_key`: every swept setting but the α and seed keys),
and within a group by the tuple of the collectives' α: one cell of the grid, averaged over seeds,
with a Student-t interval for each mean S_i. ``aca-report`` prints the table, writes
``collectives.csv``/``collectives.json`` and one figure per group
(:func:`~lightning_aca.analysis.plot.plot_collectives`).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lightning_aca.analysis.distances import mean_or_none
from lightning_aca.analysis.summary import Key, _metric
from lightning_aca.analysis.tables import format_columns, number, write_table_files
from lightning_aca.runs.keys import metric_key
from lightning_aca.runs.records import collective_names, group_key, group_label
from lightning_aca.validation import real

__all__ = [
    "CollectiveCell",
    "CollectivesSummary",
    "collectives_columns",
    "collectives_rows",
    "figure_name",
    "format_collectives_table",
    "has_several_collectives",
    "mean_interval",
    "summarize_collectives",
    "write_collectives",
]


@dataclass(frozen=True)
class CollectiveCell:
    """One cell of the α grid: the runs of one group at one tuple of the collectives' α.

    Attributes:
        alphas: each collective's α, in the group's collective order.
        n_seeds: number of runs in the cell (one per seed in a sweep).
        success_mean: each collective's mean success S_i over the runs.
        success_low, success_high: each mean's interval ends (:func:`mean_interval`); ``None``
            for a single run.
        clean_acc_mean: mean ``aca/clean_acc`` (shared by the collectives); ``None`` if no run logged it.
    """

    alphas: tuple[float, ...]
    n_seeds: int
    success_mean: tuple[float, ...]
    success_low: tuple[float | None, ...]
    success_high: tuple[float | None, ...]
    clean_acc_mean: float | None


@dataclass(frozen=True)
class CollectivesSummary:
    """A group's grid: its swept settings, its collectives' names and one :class:`CollectiveCell` per α tuple.

    Attributes:
        label: the group's swept settings (:func:`~lightning_aca.runs.records.group_label`).
        key: the group's :func:`~lightning_aca.runs.records.group_key`.
        names: the collectives' names, in the records' order.
        confidence: coverage of the cells' intervals.
        cells: sorted by their α tuple.
    """

    label: str
    key: Key
    names: tuple[str, ...]
    confidence: float
    cells: tuple[CollectiveCell, ...]

    def alphas(self, i: int) -> list[float]:
        """The distinct α of collective ``i`` over the grid, ascending."""
        return sorted({cell.alphas[i] for cell in self.cells})


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float | None, float | None]:
    """Mean of ``values`` and its Student-t interval (t quantile × standard error), clipped to [0, 1].

    S is a fraction, so the ends are clipped to [0, 1]; with one value there is no interval.

    Example:
        >>> mean, low, high = mean_interval([0.5, 0.6, 0.7])
        >>> round(mean, 3), round(low, 3), round(high, 3)
        (0.6, 0.352, 0.848)
        >>> mean_interval([0.4])
        (0.4, None, None)
    """
    from scipy import stats

    array = np.asarray(values, dtype=float)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"values must be a non-empty 1-D sequence of numbers, got shape {array.shape}.")
    confidence = real("confidence", confidence, low=0.0, high=1.0, low_open=True, high_open=True)
    mean = float(array.mean())
    if array.size < 2:
        return mean, None, None
    half = float(stats.t.ppf(0.5 + confidence / 2, array.size - 1) * array.std(ddof=1) / np.sqrt(array.size))
    return mean, max(mean - half, 0.0), min(mean + half, 1.0)


def has_several_collectives(records: Sequence[dict[str, Any]]) -> bool:
    """Whether ``records`` are several-collective runs (``True``) or one-collective runs (``False``).

    Raises ``ValueError`` naming both kinds, with a count and an example run of each, when they are mixed:
    a one-collective S(α) curve and a grid of S_i are different reports.
    """
    several = [record for record in records if record.get("collectives") is not None]
    if several and len(several) < len(records):
        single = next(record for record in records if record.get("collectives") is None)

        def example(record: dict[str, Any]) -> str:
            return " ".join(record.get("overrides") or []) or "no overrides"

        raise ValueError(
            f"these records mix {len(records) - len(several)} one-collective runs (alpha, aca/success; e.g. "
            f"{example(single)}) with {len(several)} several-collective runs (collectives "
            f"{', '.join(collective_names(several[0]))}, aca/success/<name>; e.g. {example(several[0])}); "
            "report each kind on its own: pass their sweep directories to separate aca-report calls."
        )
    return bool(several)


def _cell(alphas: tuple[float, ...], names: tuple[str, ...], runs: list[dict[str, Any]], confidence: float):
    intervals = [mean_interval(_metric(runs, metric_key("success", name)), confidence) for name in names]
    return CollectiveCell(
        alphas=alphas,
        n_seeds=len(runs),
        success_mean=tuple(mean for mean, _, _ in intervals),
        success_low=tuple(low for _, low, _ in intervals),
        success_high=tuple(high for _, _, high in intervals),
        clean_acc_mean=mean_or_none(_metric(runs, "aca/clean_acc")),
    )


def summarize_collectives(records: Sequence[dict[str, Any]], confidence: float = 0.95) -> list[CollectivesSummary]:
    """Group several-collective records and summarize each cell of their α grid (mean S_i, interval, seeds).

    Records are grouped by :func:`~lightning_aca.runs.records.group_key` and their collectives'
    names (groups with other names are other experiments), then by the tuple of the collectives' α.
    Groups are sorted by label, cells by α tuple.

    Example:
        >>> def run(a, b, s, seed):
        ...     entries = [{"name": "first", "alpha": a}, {"name": "second", "alpha": b}]
        ...     return {"seed": seed, "collectives": entries, "metrics": {"aca/success/first": s, "aca/success/second": 1 - s}}
        >>> (summary,) = summarize_collectives([run(0.1, 0.2, 0.5, 0), run(0.1, 0.2, 0.7, 1), run(0.2, 0.2, 0.9, 0)])
        >>> summary.names, [(cell.alphas, cell.n_seeds, cell.success_mean[0]) for cell in summary.cells]
        (('first', 'second'), [((0.1, 0.2), 2, 0.6), ((0.2, 0.2), 1, 0.9)])
    """
    confidence = real("confidence", confidence, low=0.0, high=1.0, low_open=True, high_open=True)
    if not records:
        raise ValueError("no records to summarize.")
    groups: dict[tuple[Key, tuple[str, ...]], dict[tuple[float, ...], list[dict[str, Any]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for record in records:
        names = tuple(collective_names(record))
        if not names:
            raise ValueError("summarize_collectives needs several-collective records (with 'collectives').")
        alphas = tuple(float(entry["alpha"]) for entry in record["collectives"])
        groups[(group_key(record), names)][alphas].append(record)
    named = len({names for _, names in groups}) > 1
    summaries = []
    for (key, names), cells in groups.items():
        label = group_label(key) + (f" [{', '.join(names)}]" if named else "")
        summary_cells = tuple(_cell(alphas, names, cells[alphas], confidence) for alphas in sorted(cells))
        summaries.append(CollectivesSummary(label, key, names, confidence, summary_cells))
    return sorted(summaries, key=lambda summary: summary.label)


def collectives_columns(summaries: Sequence[CollectivesSummary]) -> list[str]:
    """Columns of ``collectives.csv``: the group, each name's α, S mean and interval, clean accuracy, seeds.

    Names are those of all groups, in order of first appearance; a group without a name leaves its cells empty.
    """
    names = list(dict.fromkeys(name for summary in summaries for name in summary.names))
    columns = ["group", *(f"alpha_{name}" for name in names)]
    for name in names:
        columns += [f"S_{name}", f"S_{name}_low", f"S_{name}_high"]
    return [*columns, "clean_acc_mean", "n_seeds"]


def collectives_rows(summaries: Sequence[CollectivesSummary]) -> list[list[Any]]:
    """One row per group × cell, in the order of :func:`collectives_columns`."""
    names = list(dict.fromkeys(name for summary in summaries for name in summary.names))
    rows = []
    for summary in summaries:
        for cell in summary.cells:
            where = {name: i for i, name in enumerate(summary.names)}
            row: list[Any] = [summary.label]
            row += [cell.alphas[where[name]] if name in where else None for name in names]
            for name in names:
                i = where.get(name)
                row += [None] * 3 if i is None else [cell.success_mean[i], cell.success_low[i], cell.success_high[i]]
            rows.append([*row, cell.clean_acc_mean, cell.n_seeds])
    return rows


def _mean_and_interval(mean: float, low: float | None, high: float | None) -> str:
    return f"{mean:.3f}" if low is None or high is None else f"{mean:.3f} [{low:.3f}, {high:.3f}]"


def format_collectives_table(summaries: Sequence[CollectivesSummary]) -> str:
    """Plain-text table per group: each collective's α, then each one's mean S with its interval, clean accuracy, seeds.

    Example:
        >>> cell = CollectiveCell((0.1, 0.2), 2, (0.6, 0.4), (0.5, None), (0.7, None), 0.9)
        >>> print(format_collectives_table([CollectivesSummary("(all runs)", (), ("first", "second"), 0.95, (cell,))]))
        (all runs): S_i mean [95% interval over seeds]
        α first  α second               S first  S second  clean acc  seeds
            0.1       0.2  0.600 [0.500, 0.700]     0.400      0.900      2
    """
    blocks = []
    for summary in summaries:
        header = [f"α {name}" for name in summary.names] + [f"S {name}" for name in summary.names]
        header += ["clean acc", "seeds"]
        rows = []
        for cell in summary.cells:
            cells = [f"{alpha:g}" for alpha in cell.alphas]
            cells += [
                _mean_and_interval(*values)
                for values in zip(cell.success_mean, cell.success_low, cell.success_high, strict=True)
            ]
            rows.append([*cells, number(cell.clean_acc_mean, ".3f"), str(cell.n_seeds)])
        title = f"{summary.label}: S_i mean [{summary.confidence:.0%} interval over seeds]"
        blocks.append("\n".join([title, format_columns(header, rows)]))
    return "\n\n".join(blocks)


def figure_name(index: int) -> str:
    """The file of the ``index``-th group's figure (0-based, in summary order): ``collectives_<index + 1>.png``."""
    return f"collectives_{index + 1}.png"


def write_collectives(summaries: Sequence[CollectivesSummary], out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``collectives.csv`` (columns :func:`collectives_columns`) and ``collectives.json`` atomically.

    ``collectives.json`` holds each group's label, swept settings, collectives' names, confidence,
    cells and the name of its figure. Returns ``{"collectives_csv": path, "collectives_json": path}``.
    """
    groups = [
        {
            "label": summary.label,
            "sweep": dict(summary.key),
            "names": list(summary.names),
            "confidence": summary.confidence,
            "cells": [asdict(cell) for cell in summary.cells],
            "figure": figure_name(index),
        }
        for index, summary in enumerate(summaries)
    ]
    names = {"collectives_csv": "collectives.csv", "collectives_json": "collectives.json"}
    columns, rows = collectives_columns(summaries), collectives_rows(summaries)
    return write_table_files(out_dir, names, columns, rows, {"groups": groups})
