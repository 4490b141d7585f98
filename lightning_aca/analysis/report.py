"""``aca-report``: success curves S(α) and critical masses α* from ``aca-run`` records.

Groups the run records (see :mod:`lightning_aca.analysis.records`) into S(α) curves, averages each
over seeds, and reads off the critical mass α* = min{α : S(α) ≥ S*} (Hardt, Mazumdar,
Mendler-Dünner, Zrnic, "Algorithmic Collective Action in Machine Learning", ICML 2023,
arXiv 2302.04262, §3) with :func:`~lightning_aca.analysis.critical_mass.estimate_critical_mass`.
Writes a table (``report.csv``, ``report.json``), a plot against the paper's feature-label lower
bound (``s_curve.png``, ``s_curve.pdf``), and optionally both to Weights & Biases.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
import tempfile
import warnings
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lightning_aca.analysis.critical_mass import CriticalMass, estimate_critical_mass
from lightning_aca.analysis.records import group_key, group_label, load_records
from lightning_aca.theory import feature_label_success_bound

__all__ = [
    "REPORT_COLUMNS",
    "AlphaRow",
    "GroupSummary",
    "format_table",
    "main",
    "plot_curves",
    "summarize",
    "write_report",
]

REPORT_COLUMNS = (
    "group",
    "alpha",
    "n_seeds",
    "success_mean",
    "success_std",
    "clean_acc_mean",
    "epsilon_mean",
    "alpha_star",
    "alpha_star_low",
    "alpha_star_high",
    "reached",
)


@dataclass(frozen=True)
class AlphaRow:
    """One point of a success curve: the runs of one group at one collective size α.

    Attributes:
        alpha: collective size α.
        n_seeds: number of runs at this α (one per seed in a sweep).
        success_mean: mean success S over the runs.
        success_std: sample standard deviation of S (ddof = 1); 0 for a single run.
        clean_acc_mean: mean ``aca/clean_acc``; ``None`` if no run logged it.
        epsilon_mean: mean privacy ε of DP runs; ``None`` if no run has one.
    """

    alpha: float
    n_seeds: int
    success_mean: float
    success_std: float
    clean_acc_mean: float | None
    epsilon_mean: float | None


@dataclass(frozen=True)
class GroupSummary:
    """A group's success curve and its critical mass.

    Attributes:
        label: the group's swept settings, e.g. ``firm=erm``; ``(all runs)`` when nothing else was swept.
        key: the group's :func:`~lightning_aca.analysis.records.group_key`.
        threshold: the success level S* that defines α*.
        rows: one row per α, ascending, α = 0 included.
        critical_mass: α* over the runs with α > 0; ``None`` if the group has none.
    """

    label: str
    key: tuple[tuple[str, Any], ...]
    threshold: float
    rows: tuple[AlphaRow, ...]
    critical_mass: CriticalMass | None


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _epsilon(record: dict[str, Any]) -> float | None:
    epsilon = record.get("epsilon")
    return epsilon if epsilon is not None else record["metrics"].get("aca/epsilon")


def _row(alpha: float, runs: list[dict[str, Any]]) -> AlphaRow:
    success = [float(run["metrics"]["aca/success"]) for run in runs]
    clean = [run["metrics"]["aca/clean_acc"] for run in runs if run["metrics"].get("aca/clean_acc") is not None]
    epsilons = [epsilon for epsilon in map(_epsilon, runs) if epsilon is not None]
    return AlphaRow(
        alpha=alpha,
        n_seeds=len(runs),
        success_mean=float(np.mean(success)),
        success_std=float(np.std(success, ddof=1)) if len(success) > 1 else 0.0,
        clean_acc_mean=_mean(clean),
        epsilon_mean=_mean(epsilons),
    )


def _groups(records: Sequence[dict[str, Any]]) -> dict[tuple[tuple[str, Any], ...], list[dict[str, Any]]]:
    groups: dict[tuple[tuple[str, Any], ...], list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        groups[group_key(record)].append(record)
    return groups


def summarize(records: Sequence[dict[str, Any]], threshold: float = 0.9, n_bootstrap: int = 1000) -> list[GroupSummary]:
    """Summarize each group of records: per-α mean ± std of S, and the critical mass α* at ``threshold``.

    α* (Hardt et al. 2023, arXiv 2302.04262, §3) is estimated by
    :func:`~lightning_aca.analysis.critical_mass.estimate_critical_mass` from the group's runs with
    α > 0, bootstrapping over their ``seed``; α = 0 runs (the no-collective baseline) appear only in
    the rows. Groups are sorted by label.

    Args:
        records: loaded run records (see :func:`~lightning_aca.analysis.records.load_records`).
        threshold: success level S* defining α*, in (0, 1].
        n_bootstrap: bootstrap replicates for α*'s interval, ≥ 0.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold!r}.")
    if not records:
        raise ValueError("no records to summarize.")
    summaries = []
    for key, runs in _groups(records).items():
        by_alpha: dict[float, list[dict[str, Any]]] = defaultdict(list)
        for run in runs:
            by_alpha[float(run["alpha"])].append(run)
        positive = [run for run in runs if run["alpha"] > 0]
        critical_mass = None
        if positive:
            critical_mass = estimate_critical_mass(
                [run["alpha"] for run in positive],
                [run["metrics"]["aca/success"] for run in positive],
                threshold=threshold,
                seeds=[str(run.get("seed")) for run in positive],
                n_bootstrap=n_bootstrap,
            )
        rows = tuple(_row(alpha, by_alpha[alpha]) for alpha in sorted(by_alpha))
        summaries.append(GroupSummary(group_label(key), key, float(threshold), rows, critical_mass))
    return sorted(summaries, key=lambda summary: summary.label)


def _number(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def format_table(summaries: Sequence[GroupSummary]) -> str:
    """Plain-text table per group: α, mean S ± std, clean accuracy, seeds (and ε for DP runs), then α*.

    Example:
        >>> runs = [(0.0, 0.05), (0.001, 0.2), (0.01, 0.6), (0.1, 1.0)]
        >>> records = [{"alpha": a, "seed": 0, "metrics": {"aca/success": s, "aca/clean_acc": 0.9}} for a, s in runs]
        >>> print(format_table(summarize(records, threshold=0.8)))
        (all runs)
            α   S mean ± std  clean acc  seeds
            0  0.050 ± 0.000      0.900      1
        0.001  0.200 ± 0.000      0.900      1
         0.01  0.600 ± 0.000      0.900      1
          0.1  1.000 ± 0.000      0.900      1
        α* (S* = 0.8): α* = 0.0316
    """
    blocks = []
    for summary in summaries:
        with_epsilon = any(row.epsilon_mean is not None for row in summary.rows)
        lines = [["α", "S mean ± std", "clean acc", "seeds"] + (["ε"] if with_epsilon else [])]
        for row in summary.rows:
            cells = [
                f"{row.alpha:g}",
                f"{row.success_mean:.3f} ± {row.success_std:.3f}",
                _number(row.clean_acc_mean, ".3f"),
                str(row.n_seeds),
            ]
            lines.append(cells + ([_number(row.epsilon_mean, ".3g")] if with_epsilon else []))
        widths = [max(len(line[column]) for line in lines) for column in range(len(lines[0]))]
        table = ["  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True)) for line in lines]
        critical = "no runs with α > 0" if summary.critical_mass is None else str(summary.critical_mass)
        blocks.append("\n".join([summary.label, *table, f"α* (S* = {summary.threshold:g}): {critical}"]))
    return "\n\n".join(blocks)


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory, so readers never see half a file."""
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False) as file:
        file.write(data)
    try:
        os.replace(file.name, path)
    except OSError:
        os.unlink(file.name)
        raise


def _table_rows(summaries: Sequence[GroupSummary]) -> list[list[Any]]:
    """One row per group × α, in the order of :data:`REPORT_COLUMNS`."""
    rows = []
    for summary in summaries:
        mass = summary.critical_mass
        critical = [None, None, None, False] if mass is None else [mass.alpha_star, mass.low, mass.high, mass.reached]
        for row in summary.rows:
            values = [row.alpha, row.n_seeds, row.success_mean, row.success_std, row.clean_acc_mean, row.epsilon_mean]
            rows.append([summary.label, *values, *critical])
    return rows


def _strict_json(value: Any) -> Any:
    """``value`` with an infinite float (an interval end above the tested range) as its text ``"inf"``."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _strict_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_strict_json(item) for item in value]
    return value


def write_report(summaries: Sequence[GroupSummary], out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``report.csv`` (one row per group × α, columns :data:`REPORT_COLUMNS`) and ``report.json``.

    ``report.json`` holds each group's label, swept settings, rows and critical mass; an interval end
    above the tested range is written as the string ``"inf"``, keeping the file strict JSON. Both
    files are replaced atomically. Returns ``{"csv": path, "json": path}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(REPORT_COLUMNS)
    writer.writerows(_table_rows(summaries))
    groups = [
        {
            "label": summary.label,
            "sweep": dict(summary.key),
            "threshold": summary.threshold,
            "rows": [asdict(row) for row in summary.rows],
            "critical_mass": None if summary.critical_mass is None else asdict(summary.critical_mass),
        }
        for summary in summaries
    ]
    paths = {"csv": out / "report.csv", "json": out / "report.json"}
    _write_atomically(paths["csv"], text.getvalue().encode())
    document = json.dumps(_strict_json({"groups": groups}), indent=2, ensure_ascii=False, allow_nan=False)
    _write_atomically(paths["json"], (document + "\n").encode())
    return paths


def _theory_xi(runs: list[dict[str, Any]]) -> float | None:
    """Mean ``theory.xi`` of the group's feature-label (``SignalPlanting``) runs, if they recorded one."""
    xis = [
        run["theory"]["xi"]
        for run in runs
        if run.get("strategy") == "SignalPlanting" and isinstance((run.get("theory") or {}).get("xi"), int | float)
    ]
    return _mean(xis)


def plot_curves(
    summaries: Sequence[GroupSummary],
    records: Sequence[dict[str, Any]],
    out_dir: str | os.PathLike[str],
    theory_epsilon: float = 0.01,
) -> dict[str, Path]:
    """Plot S(α) (mean ± std over seeds) per group on a log-α axis, with S*, α* and the theoretical bound.

    α = 0 runs cannot sit on a log axis; their mean S is given in the group's legend entry instead.
    For groups of ``SignalPlanting`` runs whose record has a number ``theory.xi``, the dashed curve is
    Hardt et al.'s feature-label lower bound (arXiv 2302.04262, §3.1;
    :func:`~lightning_aca.theory.feature_label_success_bound`) with gap Δ = 1, learner suboptimality
    ``theory_epsilon`` and ξ the mean ``theory.xi`` of the group, clipped to [0, 1]. S* and α* come
    from ``summaries``. Writes ``s_curve.png`` and ``s_curve.pdf`` atomically and returns
    ``{"png": path, "pdf": path}``.
    """
    if not summaries:
        raise ValueError("no groups to plot.")
    if not 0.0 <= theory_epsilon < 1.0:
        raise ValueError(f"theory_epsilon must be in [0, 1), got {theory_epsilon!r}.")
    # The object-oriented API with the Agg canvas leaves pyplot's global backend and figures alone.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    figure = Figure(figsize=(6.4 if len(summaries) < 3 else 9.6, 4.4), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    runs_by_key = _groups(records)
    bounds_drawn: set[float] = set()
    for index, summary in enumerate(summaries):
        color = f"C{index % 10}"
        plotted = [row for row in summary.rows if row.alpha > 0]
        label = _short_label(summary.label)
        baseline = [row for row in summary.rows if row.alpha == 0]
        if baseline:
            label += f" (α = 0: S = {baseline[0].success_mean:.2f})"
        axes.errorbar(
            [row.alpha for row in plotted],
            [row.success_mean for row in plotted],
            yerr=[row.success_std for row in plotted],
            color=color,
            marker="o",
            capsize=3,
            label=label,
        )
        mass = summary.critical_mass
        if mass is not None and mass.reached:
            axes.axvline(mass.alpha_star, color=color, linestyle=":", linewidth=1)
            axes.plot([mass.alpha_star], [summary.threshold], color=color, marker="*", markersize=12)
        xi = _theory_xi(runs_by_key.get(summary.key, []))
        if xi is not None and plotted and round(xi, 6) not in bounds_drawn:
            bounds_drawn.add(round(xi, 6))  # groups sharing ξ share one bound curve
            grid = np.geomspace(plotted[0].alpha, plotted[-1].alpha, 200)
            bound = [feature_label_success_bound(alpha, xi, delta=1.0, epsilon=theory_epsilon) for alpha in grid]
            axes.plot(
                grid,
                np.clip(bound, 0.0, 1.0),
                color=color,
                linestyle="--",
                label=f"Hardt et al. bound (Δ=1, ε={theory_epsilon:g}, ξ={xi:.3g})",
            )
    axes.axhline(summaries[0].threshold, color="grey", linewidth=1, label=f"S* = {summaries[0].threshold:g}")
    axes.set_xscale("log")
    axes.xaxis.set_minor_formatter(NullFormatter())  # minor labels on a short log axis collide
    axes.set_ylim(-0.02, 1.05)
    axes.set_xlabel("collective size α")
    axes.set_ylabel("success S(α)")
    if len(summaries) < 3:
        axes.legend(fontsize="small")
    else:
        axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"png": out / "s_curve.png", "pdf": out / "s_curve.pdf"}
    for kind, path in paths.items():
        buffer = io.BytesIO()
        figure.savefig(buffer, format=kind, dpi=150)
        _write_atomically(path, buffer.getvalue())
    return paths


def _short_label(label: str) -> str:
    """``"firm.callbacks.dpsgd.target_epsilon=1"`` → ``"target_epsilon=1"``: legends name only the last key part."""
    return ", ".join(
        item.split("=", 1)[0].rsplit(".", 1)[-1] + "=" + item.split("=", 1)[1] if "=" in item else item
        for item in label.split(", ")
    )


def _push_to_wandb(summaries: Sequence[GroupSummary], png: Path, out_dir: Path, project: str, config: dict) -> None:
    """Log the table and the plot to one W&B run (``job_type="report"``), offline unless WANDB_MODE says otherwise."""
    os.environ.setdefault("WANDB_MODE", "offline")
    import wandb

    run = wandb.init(project=project, job_type="report", dir=out_dir, config=config)
    try:
        # "inf" (an interval end above the tested range) shares a column with numbers, hence mixed types.
        table = wandb.Table(
            columns=list(REPORT_COLUMNS), data=_strict_json(_table_rows(summaries)), allow_mixed_types=True
        )
        run.log({"aca/report": table, "aca/s_curve": wandb.Image(str(png))})
    finally:
        run.finish()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aca-report",
        description="Success curves S(α) and critical masses α* from aca-run records (record.json).",
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="run or sweep directories, or record files")
    parser.add_argument("--threshold", type=float, default=0.9, help="success level S* defining α* (default: 0.9)")
    parser.add_argument("--out", type=Path, help="output directory (default: the first PATH, if a directory)")
    parser.add_argument(
        "--theory-epsilon",
        type=float,
        default=0.01,
        help="learner suboptimality ε of the plotted bound (default: 0.01)",
    )
    parser.add_argument(
        "--bootstrap", type=int, default=1000, help="bootstrap replicates for α*'s interval (default: 1000)"
    )
    parser.add_argument(
        "--wandb", action="store_true", help="log the table and plot to W&B (offline unless WANDB_MODE is set)"
    )
    parser.add_argument("--wandb-project", default="lightning-aca", help="W&B project (default: lightning-aca)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``aca-report PATH [PATH ...]``: print the table, write the report and the plot.

    Returns 0 on success and 2, with a one-line message on stderr, when there is nothing to report
    or an option is out of range. Skipped records are listed on stderr as warnings.
    """
    args = _parser().parse_args(argv)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            records = load_records(args.paths)
        for warning in caught:
            print(f"aca-report: warning: {warning.message}", file=sys.stderr)
        out_dir = args.out if args.out is not None else args.paths[0]
        if not out_dir.is_dir() and args.out is None:
            raise ValueError(f"the first PATH {out_dir} is not a directory; pass --out DIR.")
        summaries = summarize(records, threshold=args.threshold, n_bootstrap=args.bootstrap)
        print(format_table(summaries))
        paths = write_report(summaries, out_dir)
        paths.update(plot_curves(summaries, records, out_dir, theory_epsilon=args.theory_epsilon))
        if args.wandb:
            config = {"threshold": args.threshold, "theory_epsilon": args.theory_epsilon, "n_records": len(records)}
            _push_to_wandb(summaries, paths["png"], out_dir, args.wandb_project, config)
    except (ValueError, OSError) as error:
        print(f"aca-report: error: {error}", file=sys.stderr)
        return 2
    print()
    for path in paths.values():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
