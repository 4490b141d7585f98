"""The report's figures: S(α) against the feature-label bound, and distance to θ* against step.

:func:`plot_curves` draws each group's success curve S(α) with S*, α* and Hardt et al.'s
feature-label lower bound (arXiv 2302.04262, §3); :func:`plot_distance_curves` draws ‖θ_t − θ*‖
per α for gradient strategies (§4). Figures are drawn with matplotlib's object-oriented API on the
Agg canvas, leaving pyplot's global backend and figures alone, and written atomically.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lightning_aca.analysis.distances import DistanceCurve, by_group_and_alpha, mean_or_none
from lightning_aca.analysis.records import write_atomically
from lightning_aca.analysis.summary import GroupSummary, group_records
from lightning_aca.theory import feature_label_success_bound
from lightning_aca.validation import real

__all__ = ["plot_curves", "plot_distance_curves"]


def _save(figure: Any, path: Path, kind: str) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format=kind, dpi=150)
    return write_atomically(path, buffer.getvalue())


def _theory_xi(runs: list[dict[str, Any]]) -> float | None:
    """Mean ``theory.xi`` of the group's feature-label (``SignalPlanting``) runs, if they recorded one."""
    xis = [
        run["theory"]["xi"]
        for run in runs
        if run.get("strategy") == "SignalPlanting" and isinstance((run.get("theory") or {}).get("xi"), int | float)
    ]
    return float(np.mean(xis)) if xis else None


def plot_curves(
    summaries: Sequence[GroupSummary],
    records: Sequence[dict[str, Any]],
    out_dir: str | os.PathLike[str],
    theory_epsilon: float = 0.01,
) -> dict[str, Path]:
    """Plot S(α) (mean ± std over seeds) per group on a log-α axis, with S*, α* and the theoretical bound.

    α = 0 runs cannot sit on a log axis; their mean S is given in the group's legend entry instead.
    Where runs logged ``aca/baseline_success``, a dotted line of the group's colour shows it.
    For groups of ``SignalPlanting`` runs whose record has a number ``theory.xi``, the dashed curve is
    Hardt et al.'s feature-label lower bound (arXiv 2302.04262, §3;
    :func:`~lightning_aca.theory.feature_label_success_bound`) with gap Δ = 1, learner suboptimality
    ``theory_epsilon`` and ξ the mean ``theory.xi`` of the group, clipped to [0, 1]. S* and α* come
    from ``summaries``. Writes ``s_curve.png`` and ``s_curve.pdf`` atomically and returns
    ``{"png": path, "pdf": path}``.
    """
    if not summaries:
        raise ValueError("no groups to plot.")
    theory_epsilon = real("theory_epsilon", theory_epsilon, low=0.0, high=1.0, high_open=True)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    figure = Figure(figsize=(6.4 if len(summaries) < 3 else 9.6, 4.4), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    runs_by_key = group_records(records)
    bounds_drawn: set[float] = set()
    baseline_drawn = False
    for index, summary in enumerate(summaries):
        color = f"C{index % 10}"
        plotted = [row for row in summary.rows if row.alpha > 0]
        label = _short_label(summary.label)
        at_zero = [row for row in summary.rows if row.alpha == 0]
        if at_zero:
            label += f" (α = 0: S = {at_zero[0].success_mean:.2f})"
        axes.errorbar(
            [row.alpha for row in plotted],
            [row.success_mean for row in plotted],
            yerr=[row.success_std for row in plotted],
            color=color,
            marker="o",
            capsize=3,
            label=label,
        )
        baseline = [row for row in plotted if row.baseline_success_mean is not None]
        if baseline:
            axes.plot(
                [row.alpha for row in baseline],
                [row.baseline_success_mean for row in baseline],
                color=color,
                linestyle=":",
                marker=".",
                label=None if baseline_drawn else "dotted: baseline (S on clean inputs)",
            )
            baseline_drawn = True
        mass = summary.alpha_star
        if mass is not None and mass.reached:
            axes.axvline(mass.alpha_star, color=color, linestyle=":", linewidth=1)
            axes.plot([mass.alpha_star], [summary.success_level], color=color, marker="*", markersize=12)
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
    level = summaries[0].success_level
    axes.axhline(level, color="grey", linewidth=1, label=f"S* = {level:g}")
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
        _save(figure, path, kind)
    return paths


def _short_label(label: str) -> str:
    """``"firm.callbacks.dpsgd.target_epsilon=1"`` → ``"target_epsilon=1"``: legends name only the last key part."""
    return ", ".join(
        item.split("=", 1)[0].rsplit(".", 1)[-1] + "=" + item.split("=", 1)[1] if "=" in item else item
        for item in label.split(", ")
    )


def _short_titles(curves: Sequence[DistanceCurve]) -> dict[str, str]:
    """Each group's label reduced to the settings that differ between groups, keys cut to their last part."""
    settings = {curve.group: dict(curve.settings) for curve in curves}
    keys = sorted({key for values in settings.values() for key in values})
    varying = [key for key in keys if len({str(values.get(key)) for values in settings.values()}) > 1]
    return {
        group: ", ".join(f"{key.rsplit('.', 1)[-1]}={values.get(key)}" for key in varying) or group
        for group, values in settings.items()
    }


def plot_distance_curves(curves: Sequence[DistanceCurve], out_dir: str | Path) -> Path:
    """Write ``distance_curves.png`` and return its path.

    One column per group; the top row is ‖θ_t − θ*‖, the bottom row (when logged) its controllable
    part; one curve per α, averaged over seeds, log scale, dashed below the group's α*.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    grouped = by_group_and_alpha(curves)
    rows = [("distances", "‖θ_t − θ*‖")]
    if all(curve.controllable for curve in curves):
        rows.append(("controllable", "controllable part of θ_t − θ*"))
    figure = Figure(figsize=(5.2 * len(grouped), 3.8 * len(rows)), layout="constrained")
    FigureCanvasAgg(figure)
    colors = {alpha: f"C{i % 10}" for i, alpha in enumerate(sorted({curve.alpha for curve in curves}))}
    grid = figure.subplots(len(rows), len(grouped), squeeze=False)
    titles = _short_titles(curves)
    for column, (group, by_alpha) in enumerate(sorted(grouped.items())):
        alpha_star = mean_or_none([run.alpha_star for runs in by_alpha.values() for run in runs])
        norm_bound = mean_or_none([run.alpha_norm_bound for runs in by_alpha.values() for run in runs])
        for row, (field, label) in enumerate(rows):
            axes = grid[row][column]
            for alpha, runs in sorted(by_alpha.items()):
                length = min(len(run.steps) for run in runs)
                mean = np.mean([getattr(run, field)[:length] for run in runs], axis=0)
                below = alpha_star is not None and alpha < alpha_star
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
                bounds = [f"α* = {alpha_star:.3f}" if alpha_star is not None else ""]
                bounds.append(f"G/(G+B) = {norm_bound:.3f}" if norm_bound is not None else "")
                axes.set_title("\n".join([titles[group], ", ".join(t for t in bounds if t)]), fontsize="medium")
                axes.legend(fontsize="small")
            if row == len(rows) - 1:
                axes.set_xlabel("training step")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return _save(figure, out / "distance_curves.png", "png")
