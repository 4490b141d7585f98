"""The report's figures: S(α) against the feature-label bound, and distance to θ* against step.

:func:`plot_curves` draws each group's success curve S(α) with S*, α* and Hardt et al.'s
feature-label lower bound (arXiv 2302.04262, §3); :func:`plot_critical_mass_against` draws the groups'
α* and m* against one swept setting; :func:`plot_distance_curves` draws ‖θ_t − θ*‖ per α for gradient
strategies (§4); :func:`plot_collectives` draws several collectives' S_i over their α grid (Karan
et al. 2025). Figures are drawn with matplotlib's object-oriented API on the
Agg canvas, leaving pyplot's global backend and figures alone, and written atomically.
"""

from __future__ import annotations

import io
import math
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lightning_aca.analysis.collectives import CollectivesSummary, figure_name
from lightning_aca.analysis.distances import DistanceCurve, by_group_and_alpha, mean_or_none
from lightning_aca.analysis.summary import (
    N_TRAIN,
    AgainstPoint,
    GroupSummary,
    _is_number,
    against_name,
    group_records,
)
from lightning_aca.runs.records import group_label, write_atomically
from lightning_aca.theory import feature_label_success_bound
from lightning_aca.validation import real

__all__ = ["plot_collectives", "plot_critical_mass_against", "plot_curves", "plot_distance_curves"]


def _figure(width: float, height: float) -> Any:
    """A constrained-layout figure on its own Agg canvas, leaving pyplot's state alone."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Any, out_dir: str | os.PathLike[str], name: str) -> Path:
    """Write ``figure`` atomically as ``out_dir/name`` (created if need be), in the format of the name's suffix."""
    path = Path(out_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    figure.savefig(buffer, format=path.suffix[1:], dpi=150)
    return write_atomically(path, buffer.getvalue())


def _theory_xi(runs: list[dict[str, Any]]) -> float | None:
    """Mean ``theory.xi`` of the group's feature-label (``SignalPlanting``) runs, if they recorded one.

    ``None`` for a group with a DP-SGD run (a recorded ``epsilon``): the bound is a statement about a
    learner close to the optimum on the data (ERM), which a private learner is not.
    """
    if any(run.get("epsilon") is not None for run in runs):
        return None
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
    Where runs logged ``aca/baseline_success``, a dotted line of the group's colour shows it. For
    DP-SGD groups with α = 0 runs, a dash-dot line shows the group-privacy ceiling on S
    (``AlphaRow.dp_ceiling``; ``docs/theory.md`` §5).
    For groups of ``SignalPlanting`` runs trained without DP-SGD whose record has a number ``theory.xi``, the dashed curve is
    Hardt et al.'s feature-label lower bound (arXiv 2302.04262, §3;
    :func:`~lightning_aca.theory.feature_label_success_bound`) with gap Δ = 1, learner suboptimality
    ``theory_epsilon`` and ξ the mean ``theory.xi`` of the group, clipped to [0, 1]. S* and α* come
    from ``summaries``. Writes ``s_curve.png`` and ``s_curve.pdf`` atomically and returns
    ``{"png": path, "pdf": path}``.
    """
    if not summaries:
        raise ValueError("no groups to plot.")
    theory_epsilon = real("theory_epsilon", theory_epsilon, low=0.0, high=1.0, high_open=True)
    from matplotlib.ticker import NullFormatter

    figure = _figure(6.4 if len(summaries) < 3 else 9.6, 4.4)
    axes = figure.add_subplot()
    runs_by_key = group_records(records)
    bounds_drawn: set[float] = set()
    legends_drawn: set[str] = set()
    labels = varying_labels([summary.label for summary in summaries])
    for index, summary in enumerate(summaries):
        color = f"C{index % 10}"
        plotted = [row for row in summary.rows if row.alpha > 0]
        label = textwrap.fill(labels[index], 56)  # a long label would squeeze the axes
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
        for field, legend, style in (
            ("baseline_success_mean", "dotted: baseline (S on clean inputs)", {"linestyle": ":", "marker": "."}),
            ("dp_ceiling", "dash-dot: what (ε, δ)-DP allows (group privacy)", {"linestyle": "-.", "linewidth": 1}),
        ):
            line = [(row.alpha, getattr(row, field)) for row in plotted if getattr(row, field) is not None]
            if line:
                label = None if legend in legends_drawn else legend
                axes.plot(*zip(*line, strict=True), color=color, label=label, **style)
                legends_drawn.add(legend)
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
    return {kind: _save(figure, out_dir, f"s_curve.{kind}") for kind in ("png", "pdf")}


def _critical(
    summary: GroupSummary, members: bool
) -> tuple[float | None, float | None, float | None, bool, bool, tuple[float, float]] | None:
    """``(estimate, low, high, reached, at_smallest, tested range)`` of the group's m* if ``members``, else of its α*."""
    if members:
        m = summary.members_star
        return None if m is None else (m.members_star, m.low, m.high, m.reached, m.at_smallest_alpha, m.members_range)
    a = summary.alpha_star
    return None if a is None else (a.alpha_star, a.low, a.high, a.reached, a.at_smallest_alpha, a.alpha_range)


def _against_line(
    axes: Any, line: Sequence[AgainstPoint], x: dict[Any, float], color: str, label: str, members: bool
) -> bool:
    """One line of α* (m* if ``members``) against the key; returns whether a point of it did not reach S*.

    Reached points carry their interval, its ends clipped to the group's tested range and marked
    with a caret where they lie outside it; an estimate known only as ≤ the smallest tested is a
    down triangle; an unreached one is an up triangle at the group's largest tested, annotated "not
    reached".
    """
    drawn = [(point, mass) for point in line if (mass := _critical(point.summary, members)) is not None]
    reached = [(x[point.value], mass[0]) for point, mass in drawn if mass[3]]
    axes.plot([where for where, _ in reached], [height for _, height in reached], color=color, label=label)
    missed = False
    for point, (height, low, high, is_reached, at_smallest, tested) in drawn:
        where = x[point.value]
        if not is_reached:
            missed = True
            axes.plot([where], [tested[1]], color=color, marker="^", markersize=10, markerfacecolor="none")
            axes.annotate(
                "not reached",
                (where, tested[1]),
                xytext=(0, -16),
                textcoords="offset points",
                ha="center",
                fontsize="x-small",
            )
            continue
        axes.plot([where], [height], color=color, marker="v" if at_smallest else "o")
        if low is None or high is None:
            continue
        shown_low, shown_high = max(low, tested[0]), min(high, tested[1])
        axes.errorbar([where], [height], yerr=[[height - shown_low], [shown_high - height]], color=color, capsize=3)
        for end, outside, marker in ((shown_low, low == 0.0, "v"), (shown_high, math.isinf(high), "^")):
            if outside:
                axes.plot([where], [end], color=color, marker=marker, markersize=5)
    return missed


def _against_panel(
    axes: Any,
    lines: dict[str, list[AgainstPoint]],
    references: Sequence[AgainstPoint],
    x: dict[Any, float],
    short: str,
    members: bool,
) -> bool:
    """α* (m* if ``members``) of every line and reference group on ``axes``; returns whether one was not reached."""
    symbol = "m*" if members else "α*"
    missed = False
    for index, (others, line) in enumerate(sorted(lines.items())):
        label = f"{symbol} ({_short_label(others)})" if others else f"{symbol} with its 95% interval"
        missed |= _against_line(axes, line, x, f"C{index % 10}", label, members)
    for index, point in enumerate(references, start=len(lines)):
        color, mass = f"C{index % 10}", _critical(point.summary, members)
        label = f"{_short_label(point.summary.label)} (no {short})"
        if mass is None:
            axes.plot([], [], color=color, linestyle="--", label=f"{label}: no {symbol}")
            continue
        height, low, high, reached, _, tested = mass
        if not reached:
            axes.axhline(tested[1], color=color, linestyle=":", label=f"{label}: not reached")
        else:
            axes.axhline(height, color=color, linestyle="--", label=f"{label}: {symbol} = {height:.3g}")
            if low is not None and high is not None:
                axes.axhspan(max(low, tested[0]), min(high, tested[1]), color=color, alpha=0.15, linewidth=0)
    return missed


def plot_critical_mass_against(points: Sequence[AgainstPoint], key: str, out_dir: str | os.PathLike[str]) -> Path:
    """Plot each group's α* and m* (point, bootstrap interval) against its value of the swept setting ``key``.

    ``points`` come from :func:`~lightning_aca.analysis.summary.critical_mass_against`. The left
    panel is the critical mass α*, the right one the critical number of members m* = α*·n, drawn
    when some group has one training-set size n (success that tracks members keeps m* flat against
    ``n_train`` while α* falls as 1/n). One line per combination of the other varying settings; the
    x axis is logarithmic when every value is a positive number and they span more than a factor
    10, categorical when some value is not a number; α* and m* are on log axes. A group that does
    not reach S* is an up triangle at its largest tested value, annotated "not reached". Each
    reference group (lacking ``key``, such as ERM against a target ε) is a horizontal dashed line
    at its α* (m*) with its interval as a band, labelled by its group label (dotted at its largest
    tested value when it does not reach S*). Writes ``critical_mass_against_<key>.png`` atomically
    (``<key>``: its last part) and returns its path.
    """
    if not points:
        raise ValueError("no groups to plot.")
    from matplotlib.ticker import FuncFormatter, NullFormatter

    short = key.rsplit(".", 1)[-1]
    placed = [point for point in points if point.value is not None]
    references = [point for point in points if point.value is None]
    values = list(dict.fromkeys(point.value for point in placed))  # points come sorted by value within a line
    numeric = all(_is_number(value) for value in values)
    x = {value: float(value) if numeric else float(index) for index, value in enumerate(values)}
    lines: dict[str, list[AgainstPoint]] = {}
    for point in placed:
        lines.setdefault(group_label(point.others) if point.others else "", []).append(point)

    panels = (False, True) if any(point.summary.members_star is not None for point in points) else (False,)
    many = len(lines) + len(references) + 1 > 3
    figure = _figure(7.2 * len(panels) + (3.2 if many else 0.0), 4.4)
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    level = points[0].summary.success_level
    for members, axes in zip(panels, figure.subplots(1, len(panels), squeeze=False)[0], strict=True):
        missed = _against_panel(axes, lines, references, x, short, members)
        if missed:
            axes.plot(
                [],
                [],
                color="grey",
                marker="^",
                markerfacecolor="none",
                linestyle="",
                label="not reached by the largest tested",
            )
        if numeric and values and min(values) > 0 and max(values) / min(values) > 10:
            axes.set_xscale("log")
        axes.set_xticks(
            [x[value] for value in values], labels=[f"{value:g}" if numeric else str(value) for value in values]
        )
        axes.xaxis.set_minor_formatter(NullFormatter())
        axes.set_yscale("log")
        ranges = [mass[5] for point in points if (mass := _critical(point.summary, members)) is not None]
        axes.yaxis.set_major_formatter(plain)
        if ranges and max(high for _, high in ranges) < 30 * min(low for low, _ in ranges):
            axes.yaxis.set_minor_formatter(plain)  # within about a decade and a half every minor label fits
        axes.set_xlabel("training-set size n" if key == N_TRAIN else key)
        what = "critical number of members m*" if members else "critical mass α*"
        axes.set_ylabel(f"{what} (S* = {level:g})")
        if not many:
            axes.legend(fontsize="small")
        elif members == panels[-1]:
            axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return _save(figure, out_dir, f"{against_name(key)}.png")


def _short_label(label: str) -> str:
    """``"firm.callbacks.dpsgd.target_epsilon=1"`` → ``"target_epsilon=1"``: legends name only the last key part."""
    return ", ".join(
        item.split("=", 1)[0].rsplit(".", 1)[-1] + "=" + item.split("=", 1)[1] if "=" in item else item
        for item in label.split(", ")
    )


def varying_labels(labels: Sequence[str]) -> list[str]:
    """Each group label cut to the settings that differ between the groups, keys to their last part.

    Example:
        >>> varying_labels(["experiment=x, firm.callbacks.dpsgd.max_grad_norm=1", "experiment=x, firm=erm"])
        ['max_grad_norm=1', 'firm=erm']
    """
    items = [_short_label(label).split(", ") for label in labels]
    shared = set.intersection(*(set(parts) for parts in items)) if len(items) > 1 else set()
    return [", ".join(part for part in parts if part not in shared) or parts[0] for parts in items]


def plot_distance_curves(curves: Sequence[DistanceCurve], out_dir: str | Path) -> Path:
    """Write ``distance_curves.png`` and return its path.

    One column per group; the top row is ‖θ_t − θ*‖, the bottom row (when logged) its controllable
    part; one curve per α, averaged over seeds, log scale, dashed below the group's α*.
    """
    grouped = by_group_and_alpha(curves)
    rows = [("distances", "‖θ_t − θ*‖")]
    if all(curve.controllable for curve in curves):
        rows.append(("controllable", "controllable part of θ_t − θ*"))
    figure = _figure(5.2 * len(grouped), 3.8 * len(rows))
    colors = {alpha: f"C{i % 10}" for i, alpha in enumerate(sorted({curve.alpha for curve in curves}))}
    grid = figure.subplots(len(rows), len(grouped), squeeze=False)
    titles = dict(zip(sorted(grouped), varying_labels(sorted(grouped)), strict=True))
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
    return _save(figure, out_dir, "distance_curves.png")


def _alpha_axis(axes: Any, alphas: Sequence[float]) -> None:
    """A log α axis, or symmetric-log when α = 0 (no collective) is among the values."""
    positive = [alpha for alpha in alphas if alpha > 0]
    if positive and len(positive) == len(alphas):
        axes.set_xscale("log")
    elif positive:
        axes.set_xscale("symlog", linthresh=min(positive))
    axes.set_xticks(list(alphas), labels=[f"{alpha:g}" for alpha in alphas])
    from matplotlib.ticker import NullFormatter, NullLocator

    axes.xaxis.set_minor_locator(NullLocator())
    axes.xaxis.set_minor_formatter(NullFormatter())


def _collective_curves(axes: Any, summary: CollectivesSummary, i: int) -> None:
    """S_i against α_i, one curve (mean, interval as error bars) per combination of the other collectives' α."""
    others = [j for j in range(len(summary.names)) if j != i]
    lines: dict[tuple[float, ...], list[Any]] = {}
    for cell in summary.cells:
        lines.setdefault(tuple(cell.alphas[j] for j in others), []).append(cell)
    for index, (rest, cells) in enumerate(sorted(lines.items())):
        cells.sort(key=lambda cell: cell.alphas[i])
        means = np.array([cell.success_mean[i] for cell in cells])
        low = [m if cell.success_low[i] is None else cell.success_low[i] for m, cell in zip(means, cells, strict=True)]
        high = [
            m if cell.success_high[i] is None else cell.success_high[i] for m, cell in zip(means, cells, strict=True)
        ]
        label = ", ".join(f"α {summary.names[j]} = {alpha:g}" for j, alpha in zip(others, rest, strict=True))
        axes.errorbar(
            [cell.alphas[i] for cell in cells],
            means,
            yerr=[means - np.array(low), np.array(high) - means],
            color=f"C{index % 10}",
            marker="o",
            capsize=3,
            label=label or None,
        )
    _alpha_axis(axes, summary.alphas(i))
    axes.set_ylim(-0.02, 1.05)
    axes.set_xlabel(f"α {summary.names[i]}")
    axes.set_ylabel(f"S {summary.names[i]}")
    axes.set_title(f"S {summary.names[i]} ({summary.confidence:.0%} interval)", fontsize="medium")
    if others:
        axes.legend(fontsize="small")


def _collective_heatmap(axes: Any, summary: CollectivesSummary, i: int) -> Any:
    """Mean S_i over the (α_1, α_2) grid, each cell annotated; untested cells stay blank."""
    first, second = summary.alphas(0), summary.alphas(1)
    grid = np.full((len(second), len(first)), np.nan)
    for cell in summary.cells:
        grid[second.index(cell.alphas[1]), first.index(cell.alphas[0])] = cell.success_mean[i]
    image = axes.imshow(grid, origin="lower", vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    for (row, column), value in np.ndenumerate(grid):
        if not np.isnan(value):
            color = "black" if value > 0.6 else "white"
            axes.text(column, row, f"{value:.2f}", ha="center", va="center", fontsize="small", color=color)
    axes.set_xticks(range(len(first)), labels=[f"{alpha:g}" for alpha in first])
    axes.set_yticks(range(len(second)), labels=[f"{alpha:g}" for alpha in second])
    axes.set_xlabel(f"α {summary.names[0]}")
    axes.set_ylabel(f"α {summary.names[1]}")
    axes.set_title(f"mean S {summary.names[i]}", fontsize="medium")
    return image


def plot_collectives(summaries: Sequence[CollectivesSummary], out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """One figure per group of several-collective runs (Karan et al. 2025): S_i against α_i, and the grid.

    Top row, one panel per collective i: S_i (mean over seeds, interval as error bars) against
    α_i on a log axis (symmetric-log when α_i = 0 was run), one curve per value of the other
    collectives' α. With two collectives, a bottom row of heatmaps shows each mean S_i over the
    (α_1, α_2) grid. Writes :func:`~lightning_aca.analysis.collectives.figure_name` files
    (``collectives_1.png``, …) atomically and returns ``{"collectives_png_1": path, …}``.
    """
    if not summaries:
        raise ValueError("no groups to plot.")
    paths = {}
    for index, summary in enumerate(summaries):
        count = len(summary.names)
        rows = 2 if count == 2 else 1
        figure = _figure(5.2 * count, 4.2 * rows)
        grid = figure.subplots(rows, count, squeeze=False)
        for i in range(count):
            _collective_curves(grid[0][i], summary, i)
        if rows == 2:
            image = None
            for i in range(count):
                image = _collective_heatmap(grid[1][i], summary, i)
            figure.colorbar(image, ax=list(grid[1]), label="mean S")
        figure.suptitle(_short_label(summary.label))
        paths[f"collectives_png_{index + 1}"] = _save(figure, out_dir, figure_name(index))
    return paths
