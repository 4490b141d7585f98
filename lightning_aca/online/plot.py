"""``python -m lightning_aca.online.plot SWEEP_DIR``: distance to θ* against training step, per collective size α.

Reads the ``aca-run`` records of a sweep with an online collective
(:class:`~lightning_aca.online.GradientControl` or :class:`~lightning_aca.online.GradientNeutralization`)
and each run's CSV log (``<run>/csv/metrics.csv``, the ``logger=csv`` default), which holds
``aca/param_distance`` for every logged step (set ``trainer.log_every_n_steps=1`` for every step)
and the thresholds ``aca/theory_threshold`` (G/(G + B)) and ``aca/critical_alpha``. Prints one
row per group × α (final distance, mean ± std over seeds, and the thresholds) and writes
``distance_curves.png``: one panel per group of swept settings (e.g. ``firm=erm``,
``firm=dpsgd``), one curve per α averaged over seeds, dashed below the group's critical α.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lightning_aca.analysis.records import find_records, group_key, group_label

DISTANCE_KEY = "aca/param_distance"
CONTROLLABLE_KEY = "aca/controllable_distance"
THEORY_KEYS = ("aca/theory_threshold", "aca/critical_alpha")


@dataclass(frozen=True)
class DistanceCurve:
    """One run's distance to θ* by step (and its controllable part, where logged), with its α, seed, group and thresholds."""

    alpha: float
    seed: int
    group: str
    settings: tuple[tuple[str, object], ...]
    steps: tuple[int, ...]
    distances: tuple[float, ...]
    controllable: tuple[float, ...] | None
    theory_threshold: float | None
    critical_alpha: float | None
    success: float | None


def _read_log(path: Path) -> tuple[list[int], list[float], list[float], dict[str, float]]:
    steps, distances, controllable, theory = [], [], [], {}
    with path.open(newline="", encoding="utf-8") as file:
        for row in csv.DictReader(file):
            if row.get(DISTANCE_KEY):
                steps.append(int(row["step"]))
                distances.append(float(row[DISTANCE_KEY]))
                if row.get(CONTROLLABLE_KEY):
                    controllable.append(float(row[CONTROLLABLE_KEY]))
            for key in THEORY_KEYS:
                if row.get(key):
                    theory[key] = float(row[key])
    return steps, distances, controllable, theory


def load_distance_curves(paths: Sequence[str | Path]) -> list[DistanceCurve]:
    """One :class:`DistanceCurve` per run under ``paths`` that has a record and a CSV log with distances."""
    curves = []
    for record_path in find_records(paths):
        record = json.loads(record_path.read_text(encoding="utf-8"))
        logs = sorted(record_path.parent.rglob("metrics.csv"))
        if not logs:
            continue
        steps, distances, controllable, theory = _read_log(logs[0])
        if not steps:
            continue
        curves.append(
            DistanceCurve(
                alpha=float(record["alpha"]),
                seed=int(record.get("seed", 0)),
                group=group_label(group_key(record)),
                settings=group_key(record),
                steps=tuple(steps),
                distances=tuple(distances),
                controllable=tuple(controllable) if len(controllable) == len(distances) else None,
                theory_threshold=theory.get("aca/theory_threshold"),
                critical_alpha=theory.get("aca/critical_alpha"),
                success=(record.get("metrics") or {}).get("aca/success"),
            )
        )
    if not curves:
        where = ", ".join(map(str, paths))
        raise ValueError(
            f"no run under {where} has a record.json and a csv/metrics.csv with {DISTANCE_KEY}; run aca-run with "
            "an online collective (collective=gradient_control) and logger=csv."
        )
    return curves


def _short_titles(curves: Sequence[DistanceCurve]) -> dict[str, str]:
    """Each group's label reduced to the settings that differ between groups, keys cut to their last part."""
    settings = {curve.group: dict(curve.settings) for curve in curves}
    keys = sorted({key for values in settings.values() for key in values})
    varying = [key for key in keys if len({str(values.get(key)) for values in settings.values()}) > 1]
    return {
        group: ", ".join(f"{key.rsplit('.', 1)[-1]}={values.get(key)}" for key in varying) or group
        for group, values in settings.items()
    }


def _by_group_and_alpha(curves: Sequence[DistanceCurve]) -> dict[str, dict[float, list[DistanceCurve]]]:
    grouped: dict[str, dict[float, list[DistanceCurve]]] = defaultdict(lambda: defaultdict(list))
    for curve in curves:
        grouped[curve.group][curve.alpha].append(curve)
    return grouped


def _mean_or_none(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def summarize_distances(curves: Sequence[DistanceCurve]) -> list[dict[str, object]]:
    """Rows ``{group, alpha, n_seeds, final_mean, final_std, controllable_mean, success_mean, theory_threshold, critical_alpha}``.

    ``final`` is the distance at each run's last logged step (``controllable``: its controllable part);
    thresholds are averaged over seeds.
    """
    rows = []
    for group, by_alpha in sorted(_by_group_and_alpha(curves).items()):
        for alpha, runs in sorted(by_alpha.items()):
            finals = [run.distances[-1] for run in runs]
            rows.append(
                {
                    "group": group,
                    "alpha": alpha,
                    "n_seeds": len(runs),
                    "final_mean": float(np.mean(finals)),
                    "final_std": float(np.std(finals, ddof=1)) if len(finals) > 1 else 0.0,
                    "controllable_mean": _mean_or_none(
                        [run.controllable[-1] if run.controllable else None for run in runs]
                    ),
                    "success_mean": _mean_or_none([run.success for run in runs]),
                    "theory_threshold": _mean_or_none([run.theory_threshold for run in runs]),
                    "critical_alpha": _mean_or_none([run.critical_alpha for run in runs]),
                }
            )
    return rows


def format_rows(rows: Sequence[dict[str, object]]) -> str:
    """The summary as a plain-text table."""

    def number(value: object, spec: str) -> str:
        return "–" if value is None else format(value, spec)

    header = ["group", "α", "final ‖θ−θ*‖", "controllable", "S", "G/(G+B)", "α* (hull)", "seeds"]
    lines = [header] + [
        [
            str(row["group"]),
            f"{row['alpha']:g}",
            f"{row['final_mean']:.4f} ± {row['final_std']:.4f}",
            number(row["controllable_mean"], ".4f"),
            number(row["success_mean"], ".3f"),
            number(row["theory_threshold"], ".4f"),
            number(row["critical_alpha"], ".4f"),
            str(row["n_seeds"]),
        ]
        for row in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True)) for line in lines)


def plot_distance_curves(curves: Sequence[DistanceCurve], out_dir: str | Path) -> Path:
    """Write ``distance_curves.png`` and return its path.

    One column per group; the top row is ‖θ_t − θ*‖, the bottom row (when logged) its controllable
    part; one curve per α, averaged over seeds, log scale, dashed below the group's critical α.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    grouped = _by_group_and_alpha(curves)
    rows = [("distances", "‖θ_t − θ*‖")]
    if all(curve.controllable for curve in curves):
        rows.append(("controllable", "controllable part of θ_t − θ*"))
    figure = Figure(figsize=(5.2 * len(grouped), 3.8 * len(rows)), layout="constrained")
    FigureCanvasAgg(figure)
    colors = {alpha: f"C{i % 10}" for i, alpha in enumerate(sorted({curve.alpha for curve in curves}))}
    grid = figure.subplots(len(rows), len(grouped), squeeze=False)
    titles = _short_titles(curves)
    for column, (group, by_alpha) in enumerate(sorted(grouped.items())):
        critical = _mean_or_none([run.critical_alpha for runs in by_alpha.values() for run in runs])
        norm_bound = _mean_or_none([run.theory_threshold for runs in by_alpha.values() for run in runs])
        for row, (field, label) in enumerate(rows):
            axes = grid[row][column]
            for alpha, runs in sorted(by_alpha.items()):
                length = min(len(run.steps) for run in runs)
                mean = np.mean([getattr(run, field)[:length] for run in runs], axis=0)
                below = critical is not None and alpha < critical
                axes.plot(
                    runs[0].steps[:length],
                    np.maximum(mean, 1e-6),
                    color=colors[alpha],
                    linestyle="--" if below else "-",
                    label=f"α = {alpha:g}" + (" (below α*)" if below else ""),
                )
            axes.set_yscale("log")
            axes.set_ylabel(label)
            if row == 0:
                thresholds = [f"α* = {critical:.3f}" if critical is not None else ""]
                thresholds.append(f"G/(G+B) = {norm_bound:.3f}" if norm_bound is not None else "")
                axes.set_title("\n".join([titles[group], ", ".join(t for t in thresholds if t)]), fontsize="medium")
                axes.legend(fontsize="small")
            if row == len(rows) - 1:
                axes.set_xlabel("training step")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "distance_curves.png"
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=150)
    path.write_bytes(buffer.getvalue())
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: print the final-distance table and write the plot into the first directory (or ``--out``)."""
    parser = argparse.ArgumentParser(
        prog="python -m lightning_aca.online.plot",
        description="Distance to θ* against step for sweeps with an online collective (aca-run records + CSV logs).",
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="run or sweep directories")
    parser.add_argument("--out", type=Path, help="output directory (default: the first PATH)")
    args = parser.parse_args(argv)
    try:
        curves = load_distance_curves(args.paths)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_rows(summarize_distances(curves)))
    out = args.out or (args.paths[0] if args.paths[0].is_dir() else args.paths[0].parent)
    print(f"plot: {plot_distance_curves(curves, out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
