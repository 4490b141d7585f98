"""The report's tables: aligned text for the terminal, ``report.csv`` and ``report.json`` on disk.

With ``aca-report --against KEY`` also the table of α* and m* (the critical number of members)
against that swept setting, printed and written as ``critical_mass_against_<key>.csv``/``.json``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from lightning_aca.analysis.summary import N_TRAIN, AgainstPoint, GroupSummary, against_name, size_exponents
from lightning_aca.runs.records import group_label, write_atomically

__all__ = [
    "AGAINST_COLUMNS",
    "REPORT_COLUMNS",
    "against_rows",
    "format_against_table",
    "format_columns",
    "format_distance_table",
    "format_table",
    "table_rows",
    "write_against",
    "write_report",
]

REPORT_COLUMNS = (
    "group",
    "alpha",
    "members_mean",
    "n_seeds",
    "success_mean",
    "success_std",
    "baseline_success_mean",
    "above_baseline",
    "clean_acc_mean",
    "worst_group_acc_mean",
    "epsilon_mean",
    "alpha_star",
    "alpha_star_low",
    "alpha_star_high",
    "n_train",
    "members_star",
    "members_star_low",
    "members_star_high",
    "reached",
)

#: columns of ``critical_mass_against_<key>.csv``: the group, its value of the key (empty for a reference
#: group, which lacks it), its other varying settings, its α* and m* as in :data:`REPORT_COLUMNS`
AGAINST_COLUMNS = (
    "group",
    "value",
    "others",
    "alpha_star",
    "alpha_star_low",
    "alpha_star_high",
    "n_train",
    "members_star",
    "members_star_low",
    "members_star_high",
    "n_seeds",
    "reached",
)

#: marks a row whose mean S is not above its baseline (S on the clean versions of the same inputs)
NOT_ABOVE_BASELINE = "!"


def format_columns(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """``header`` and ``rows`` as right-aligned text columns, two spaces apart.

    Example:
        >>> print(format_columns(["α", "S"], [["0.01", "0.5"], ["0.1", "1.0"]]))
           α    S
        0.01  0.5
         0.1  1.0
    """
    lines = [list(header), *map(list, rows)]
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    cells = (zip(line, widths, strict=True) for line in lines)
    return "\n".join("  ".join(cell.rjust(width) for cell, width in line).rstrip() for line in cells)


def number(value: float | None, spec: str) -> str:
    """``value`` formatted with ``spec``; an en dash for ``None``."""
    return "–" if value is None else format(value, spec)


def format_table(summaries: Sequence[GroupSummary]) -> str:
    """Plain-text table per group: α, members m, mean S ± std, baseline, clean accuracy, seeds, then α* and m*.

    Records of data with groups add the mean worst-group accuracy, and DP runs their mean ε.

    The members column (records logging ``aca/members``) is the mean number of members at each α;
    m* = α*·n follows α* for a group of one training-set size n.

    Rows whose S is not above the baseline are marked ``!`` and named in a note under the group.

    Example:
        >>> from lightning_aca.analysis.summary import summarize
        >>> runs = [(0.0, 0.05), (0.001, 0.2), (0.01, 0.6), (0.1, 1.0)]
        >>> metrics = lambda s: {"aca/success": s, "aca/baseline_success": 0.1, "aca/clean_acc": 0.9}
        >>> records = [{"alpha": a, "seed": 0, "target_class": 0, "metrics": metrics(s) | {"aca/members": 4000 * a},
        ...             "theory": {"n_train": 4000}} for a, s in runs]
        >>> print(format_table(summarize(records, success_level=0.8)))
        (all runs)
            α  members   S mean ± std  baseline  clean acc  seeds
            0        0  0.050 ± 0.000     0.100      0.900      1  !
        0.001        4  0.200 ± 0.000     0.100      0.900      1
         0.01       40  0.600 ± 0.000     0.100      0.900      1
          0.1      400  1.000 ± 0.000     0.100      0.900      1
        α* (S* = 0.8): α* = 0.0316 in the grid cell 0.01–0.1; m* = 126 (n = 4000)
        ! S is not above its baseline (the same success measure on clean inputs) at α = 0
    """
    blocks = []
    for summary in summaries:
        with_baseline = any(row.baseline_success_mean is not None for row in summary.rows)
        with_epsilon = any(row.epsilon_mean is not None for row in summary.rows)
        flagged = summary.not_above_baseline
        with_members = any(row.members_mean is not None for row in summary.rows)
        with_groups = any(row.worst_group_acc_mean is not None for row in summary.rows)
        header = (
            ["α", *(["members"] if with_members else []), "S mean ± std"]
            + (["baseline"] if with_baseline else [])
            + ["clean acc", *(["worst group"] if with_groups else []), "seeds"]
        )
        header += (["ε"] if with_epsilon else []) + ([""] if flagged else [])
        rows = []
        for row in summary.rows:
            cells = [f"{row.alpha:g}", *([number(row.members_mean, ".4g")] if with_members else [])]
            cells += [f"{row.success_mean:.3f} ± {row.success_std:.3f}"]
            cells += [number(row.baseline_success_mean, ".3f")] if with_baseline else []
            cells += [number(row.clean_acc_mean, ".3f")]
            cells += [number(row.worst_group_acc_mean, ".3f")] if with_groups else []
            cells += [str(row.n_seeds)]
            cells += [number(row.epsilon_mean, ".3g")] if with_epsilon else []
            cells += [NOT_ABOVE_BASELINE if row.above_baseline is False else ""] if flagged else []
            rows.append(cells)
        alpha_star = "no runs with α > 0" if summary.alpha_star is None else str(summary.alpha_star)
        if summary.members_star is not None and summary.members_star.reached:
            alpha_star += f"; {summary.members_star} (n = {summary.n_train})"
        lines = [summary.label, format_columns(header, rows), f"α* (S* = {summary.success_level:g}): {alpha_star}"]
        if flagged:
            alphas = ", ".join(f"{alpha:g}" for alpha in flagged)
            lines.append(
                f"{NOT_ABOVE_BASELINE} S is not above its baseline (the same success measure on clean inputs) "
                f"at α = {alphas}"
            )
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def table_rows(summaries: Sequence[GroupSummary]) -> list[list[Any]]:
    """One row per group × α, in the order of :data:`REPORT_COLUMNS`."""
    rows = []
    for summary in summaries:
        mass, members = summary.alpha_star, summary.members_star
        alpha_star = [None] * 3 if mass is None else [mass.alpha_star, mass.low, mass.high]
        alpha_star += [summary.n_train]
        alpha_star += [None] * 3 if members is None else [members.members_star, members.low, members.high]
        alpha_star += [mass is not None and mass.reached]
        for row in summary.rows:
            values = [
                row.alpha,
                row.members_mean,
                row.n_seeds,
                row.success_mean,
                row.success_std,
                row.baseline_success_mean,
            ]
            values += [row.above_baseline, row.clean_acc_mean, row.worst_group_acc_mean, row.epsilon_mean]
            rows.append([summary.label, *values, *alpha_star])
    return rows


def strict_json(value: Any) -> Any:
    """``value`` with an infinite float (an interval end above the tested range) as its text ``"inf"``."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(item) for item in value]
    return value


def write_table_files(
    out_dir: str | os.PathLike[str],
    names: dict[str, str],
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    document: Any,
) -> dict[str, Path]:
    """Write a table as CSV (``columns`` then ``rows``) and ``document`` as strict JSON, each file atomically.

    ``names`` maps two keys to the file names in ``out_dir``, the CSV's first; returns the same keys
    mapped to the paths. Non-finite numbers in ``document`` become strings (:func:`strict_json`).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {key: out / name for key, name in names.items()}
    csv_path, json_path = paths.values()
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    write_atomically(csv_path, text.getvalue().encode())
    encoded = json.dumps(strict_json(document), indent=2, ensure_ascii=False, allow_nan=False)
    write_atomically(json_path, (encoded + "\n").encode())
    return paths


def write_report(summaries: Sequence[GroupSummary], out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``report.csv`` (one row per group × α, columns :data:`REPORT_COLUMNS`) and ``report.json``.

    ``report.json`` holds each group's label, swept settings, success level, rows, α*, training-set
    size ``n_train`` and critical number of members ``members_star`` (m* = α*·n, or null); an
    interval end above the tested range is written as the string ``"inf"``, keeping the file strict
    JSON. Both files are replaced atomically. Returns ``{"csv": path, "json": path}``.
    """
    groups = [
        {
            "label": summary.label,
            "sweep": dict(summary.key),
            "success_level": summary.success_level,
            "rows": [asdict(row) for row in summary.rows],
            "alpha_star": None if summary.alpha_star is None else asdict(summary.alpha_star),
            "n_train": summary.n_train,
            "members_star": None if summary.members_star is None else asdict(summary.members_star),
        }
        for summary in summaries
    ]
    names = {"csv": "report.csv", "json": "report.json"}
    return write_table_files(out_dir, names, REPORT_COLUMNS, table_rows(summaries), {"groups": groups})


def against_rows(points: Sequence[AgainstPoint]) -> list[list[Any]]:
    """One row per group of :func:`~lightning_aca.analysis.summary.critical_mass_against`, in the order of :data:`AGAINST_COLUMNS`."""
    rows = []
    for point in points:
        mass, members = point.summary.alpha_star, point.summary.members_star
        values = [None] * 3 if mass is None else [mass.alpha_star, mass.low, mass.high]
        values += [point.summary.n_train]
        values += [None] * 3 if members is None else [members.members_star, members.low, members.high]
        values += [None, False] if mass is None else [mass.n_seeds, mass.reached]
        rows.append([point.summary.label, point.value, group_label(point.others) if point.others else None, *values])
    return rows


def format_against_table(points: Sequence[AgainstPoint], key: str) -> str:
    """α* and m* with their intervals against the swept setting ``key``, one line per group; reference groups last.

    A reference group (records lacking ``key``) shows ``not set`` as its value and its label as its
    other settings. An interval end outside the tested range reads ``≤ α_min`` or ``> α_max``
    (``≤ m_min``, ``> m_max`` for m*); m* is ``–`` for a group without one training-set size.
    """
    if not points:
        raise ValueError("no groups to tabulate.")
    short = key.rsplit(".", 1)[-1]
    rows = []
    for point in points:
        mass = point.summary.alpha_star
        value = "not set" if point.value is None else str(point.value)
        others = point.summary.label if point.value is None else (group_label(point.others) if point.others else "–")
        members = point.summary.members_star
        alpha_cells = ["–"] * 3 if mass is None else mass.cells()
        member_cells = ["–"] * 3 if members is None else members.cells()
        n_train = "–" if point.summary.n_train is None else str(point.summary.n_train)
        seeds = "–" if mass is None else str(mass.n_seeds)
        reached = "yes" if mass is not None and mass.reached else "no"
        rows.append([value, others, *alpha_cells, n_train, *member_cells, seeds, reached])
    header = [short, "other settings", "α*", "low", "high", "n", "m*", "low", "high", "seeds", "reached"]
    title = f"α* and m* against {key} (S* = {points[0].summary.success_level:g})"
    lines = [title, format_columns(header, rows)]
    if any(point.value is None for point in points):
        lines.append(f"not set: groups whose records lack {key} (reference lines in the plot)")
    if key == N_TRAIN:
        for fit in size_exponents(points):
            where = f" ({group_label(fit.others)})" if fit.others else ""
            error = "" if fit.stderr is None else f" ± {fit.stderr:.2f}"
            sizes = ", ".join(map(str, fit.sizes))
            lines.append(
                f"m* ∝ n^b{where}: b = {fit.b:.2f}{error} over n = {sizes} "
                "(b = 0: a constant number of members, b = 1: a constant fraction)"
            )
    return "\n".join(lines)


def write_against(points: Sequence[AgainstPoint], key: str, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``critical_mass_against_<key>.csv`` (columns :data:`AGAINST_COLUMNS`) and ``.json``; ``<key>`` is its last part.

    The JSON holds the full ``key``, the success level and one object per row, with ``others`` as a
    mapping; an interval end above the tested range is the string ``"inf"``, as in ``report.json``.
    Both files are replaced atomically. Returns ``{"against_csv": path, "against_json": path}``.
    """
    if not points:
        raise ValueError("no groups to tabulate.")
    rows = [
        dict(zip(AGAINST_COLUMNS, row, strict=True)) | {"others": dict(point.others)}
        for point, row in zip(points, against_rows(points), strict=True)
    ]
    document = {"key": key, "success_level": points[0].summary.success_level, "rows": rows}
    if key == N_TRAIN:
        document["size_exponents"] = [
            {"others": dict(fit.others), "b": fit.b, "stderr": fit.stderr, "sizes": list(fit.sizes)}
            for fit in size_exponents(points)
        ]
    names = {"against_csv": f"{against_name(key)}.csv", "against_json": f"{against_name(key)}.json"}
    return write_table_files(out_dir, names, AGAINST_COLUMNS, against_rows(points), document)


def format_distance_table(rows: Sequence[dict[str, Any]]) -> str:
    """The rows of :func:`~lightning_aca.analysis.distances.summarize_distances` as a plain-text table."""
    header = ["group", "α", "final ‖θ−θ*‖", "controllable", "S", "G/(G+B)", "α* (hull)", "seeds"]
    cells = [
        [
            str(row["group"]),
            f"{row['alpha']:g}",
            f"{row['final_mean']:.4f} ± {row['final_std']:.4f}",
            number(row["controllable_mean"], ".4f"),
            number(row["success_mean"], ".3f"),
            number(row["alpha_norm_bound"], ".4f"),
            number(row["alpha_star"], ".4f"),
            str(row["n_seeds"]),
        ]
        for row in rows
    ]
    return format_columns(header, cells)
