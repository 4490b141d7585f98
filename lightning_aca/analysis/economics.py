"""``aca-report --economics``: the economics of joining per firm setting, as a table, CSV/JSON and a figure.

The model is :mod:`lightning_aca.economics`; this module applies it to each group of records
(:func:`firm_economics`, one :class:`FirmEconomics` per group) and presents the results: the text
table (b*, the tipping size and the stable equilibria at the given benefit),
``economics.csv``/``economics.json`` (:data:`ECONOMICS_COLUMNS`) and ``economics.png``, the
participation response R(α) against α with the diagonal, one panel per group, equilibria marked.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lightning_aca.analysis.distances import mean_or_none
from lightning_aca.analysis.plot import _figure, _save, varying_labels
from lightning_aca.analysis.summary import _delta, group_records
from lightning_aca.analysis.tables import format_columns, number, write_table_files
from lightning_aca.economics import (
    Equilibrium,
    Participation,
    SuccessCurve,
    alpha_star,
    participation_equilibria,
    response,
    smallest_benefit,
    tipping_size,
)

__all__ = [
    "ECONOMICS_COLUMNS",
    "FirmEconomics",
    "economics_rows",
    "firm_economics",
    "format_economics_table",
    "plot_economics",
    "write_economics",
]


@dataclass(frozen=True)
class FirmEconomics:
    """The economics of joining against one firm setting (one ``aca-report`` group).

    Attributes:
        label: the group's label (its swept settings).
        curve: the group's measured success curve.
        participation: the participation model, with the firm's ε and δ.
        success_level: S*.
        alpha_star: the smallest α with S ≥ S* on the curve; ``None`` if never reached.
        benefit_star: b*, the smallest benefit sustaining a stable equilibrium with S ≥ S*;
            ``None`` when not reachable.
        equilibria: the equilibria at ``participation.benefit``.
        tipping: the tipping size at that benefit (:func:`tipping_size`).
    """

    label: str
    curve: SuccessCurve
    participation: Participation
    success_level: float
    alpha_star: float | None
    benefit_star: float | None
    equilibria: tuple[Equilibrium, ...] = ()
    tipping: float | None = None

    @property
    def successful(self) -> tuple[Equilibrium, ...]:
        """The stable equilibria whose S reaches S*."""
        return tuple(eq for eq in self.equilibria if eq.stable and eq.success >= self.success_level)

    @property
    def not_reachable(self) -> str | None:
        """Why no benefit sustains a successful collective; ``None`` when one does."""
        if self.benefit_star is not None:
            return None
        if self.alpha_star is None:
            top = self.curve.alpha_max
            return (
                f"S never reaches S* = {self.success_level:g} on the measured range "
                f"(S = {self.curve.successes[-1]:.3g} at α = {top:g})"
            )
        return "no member's marginal contribution is positive at or above α*"


def firm_economics(
    summaries: Sequence[Any],
    records: Sequence[dict[str, Any]],
    costs: Any,
    benefit: float = 1.0,
    rule: str = "naive",
    privacy_cost: float = 0.0,
) -> list[FirmEconomics]:
    """The economics of joining for each group of ``aca-report``'s summaries (one firm setting each).

    Each group's curve is :meth:`SuccessCurve.from_summary`; its ε is the mean ε of its DP runs
    (``None`` for ERM and other non-private firms), its δ its DPSGD callback's, and N its records'
    training set size (``theory.n_train``). S* is the summaries' success level.
    """
    by_key = group_records(records)
    results = []
    for summary in summaries:
        runs = by_key.get(summary.key, [])
        deltas = [d for d in map(_delta, runs) if d is not None]
        sizes = {(run.get("theory") or {}).get("n_train") for run in runs} - {None}
        if len(sizes) > 1:
            raise ValueError(f"group {summary.label!r} mixes training set sizes {sorted(sizes)}: N is ambiguous.")
        if rule == "free_rider" and not sizes:
            raise ValueError(
                f"rule='free_rider' needs N, the training set size (theory.n_train), which the records of group "
                f"{summary.label!r} lack; use rule='naive'."
            )
        participation = Participation(
            costs,
            benefit,
            rule,
            population=next(iter(sizes)) if sizes else None,
            privacy_cost=privacy_cost,
            epsilon=mean_or_none([row.epsilon_mean for row in summary.rows]),
            delta=max(deltas) if deltas else 0.0,
        )
        curve = SuccessCurve.from_summary(summary)
        equilibria = participation_equilibria(curve, participation)
        results.append(
            FirmEconomics(
                summary.label,
                curve,
                participation,
                summary.success_level,
                alpha_star(curve, summary.success_level),
                smallest_benefit(curve, participation, summary.success_level),
                equilibria,
                tipping_size(equilibria),
            )
        )
    return results


#: columns of ``economics.csv``: one row per group; ``stable_equilibria`` lists "α:S" pairs, ";"-separated
ECONOMICS_COLUMNS = (
    "group",
    "epsilon",
    "rule",
    "benefit",
    "privacy_term",
    "success_at_zero",
    "alpha_star",
    "benefit_star",
    "not_reachable",
    "tipping",
    "stable_equilibria",
)


def _equilibria_text(result: FirmEconomics, separator: str, pair: str) -> str:
    return separator.join(
        pair.format(alpha=eq.alpha, success=eq.success, end="+" if eq.at_range_end else "")
        for eq in result.equilibria
        if eq.stable
    )


def economics_rows(results: Sequence[FirmEconomics]) -> list[list[Any]]:
    """One row per group, in the order of :data:`ECONOMICS_COLUMNS`."""
    return [
        [
            result.label,
            result.participation.epsilon,
            result.participation.rule,
            result.participation.benefit,
            result.participation.privacy_term,
            result.curve.successes[0],
            result.alpha_star,
            result.benefit_star,
            result.not_reachable,
            result.tipping,
            _equilibria_text(result, ";", "{alpha:.6g}{end}:{success:.6g}"),
        ]
        for result in results
    ]


def format_economics_table(results: Sequence[FirmEconomics], costs: str) -> str:
    """The economics of joining as text: per group ε, S(0), α*, b*, the tipping size and the stable equilibria.

    ``costs`` is the cost distribution's text form, for the title. Equilibria at the largest
    measured α, where at least that many join, are marked ``+``.
    """
    if not results:
        raise ValueError("no groups to tabulate.")
    first = results[0]
    model = first.participation
    title = (
        f"economics of joining (rule {model.rule}, costs {costs}, b = {model.benefit:g}, "
        f"privacy cost κ = {model.privacy_cost:g}; b, b* in the costs' unit; S* = {first.success_level:g})"
    )
    header = ["group", "ε", "S(0)", "α*", "b*", "tipping α", f"stable equilibria at b = {model.benefit:g}: α (S)"]
    rows = []
    titles = varying_labels([result.label for result in results])
    for result, label in zip(results, titles, strict=True):
        stable = _equilibria_text(result, ", ", "{alpha:.4g}{end} ({success:.3f})") or "–"
        rows.append(
            [
                label,
                number(result.participation.epsilon, ".3g"),
                f"{result.curve.successes[0]:.3f}",
                number(result.alpha_star, ".3g"),
                "not reachable" if result.benefit_star is None else f"{result.benefit_star:.4g}",
                number(result.tipping, ".3g"),
                stable,
            ]
        )
    lines = [title, format_columns(header, rows)]
    lines += [f"{label}: {r.not_reachable}" for r, label in zip(results, titles, strict=True) if r.not_reachable]
    if any(eq.at_range_end for result in results for eq in result.equilibria):
        lines.append("+ at the largest measured α: at least that many join; S beyond it was not measured")
    return "\n".join(lines)


def write_economics(results: Sequence[FirmEconomics], costs: str, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``economics.csv`` (columns :data:`ECONOMICS_COLUMNS`) and ``economics.json`` atomically.

    The JSON holds the model (costs, rule, benefit, privacy cost) and per group its row, the fitted
    curve and every equilibrium with its slope and stability. Returns
    ``{"economics_csv": path, "economics_json": path}``.
    """
    if not results:
        raise ValueError("no groups to tabulate.")
    rows = economics_rows(results)
    model = results[0].participation
    document = {
        "costs": costs,
        "rule": model.rule,
        "benefit": model.benefit,
        "privacy_cost": model.privacy_cost,
        "success_level": results[0].success_level,
        "groups": [
            dict(zip(ECONOMICS_COLUMNS, row, strict=True))
            | {
                "delta": result.participation.delta,
                "population": result.participation.population,
                "curve": asdict(result.curve),
                "equilibria": [asdict(eq) for eq in result.equilibria],
            }
            for result, row in zip(results, rows, strict=True)
        ],
    }
    names = {"economics_csv": "economics.csv", "economics_json": "economics.json"}
    return write_table_files(out_dir, names, ECONOMICS_COLUMNS, rows, document)


def plot_economics(results: Sequence[FirmEconomics], out_dir: str | os.PathLike[str]) -> Path:
    """Plot each group's participation response R(α) against α with the diagonal; write ``economics.png``.

    One panel per group; stable equilibria are filled circles, unstable ones open circles, α* is
    a dotted vertical line (absent where S never reaches S*). Returns the path.
    """
    if not results:
        raise ValueError("no groups to plot.")
    columns = min(3, len(results))
    rows = -(-len(results) // columns)
    figure = _figure(3.6 * columns, 3.2 * rows)
    grid = figure.subplots(rows, columns, squeeze=False)
    titles = varying_labels([result.label for result in results])
    for index, (result, title) in enumerate(zip(results, titles, strict=True)):
        axes = grid[index // columns][index % columns]
        top = result.curve.alpha_max
        alphas = np.linspace(0.0, top, 801)
        axes.plot(alphas, response(result.curve, result.participation, alphas), color="C0", label="response R(α)")
        axes.plot([0.0, top], [0.0, top], color="grey", linewidth=1, label="α = R(α)")
        for eq in result.equilibria:
            face = "C3" if eq.stable else "white"
            axes.plot([eq.alpha], [eq.alpha], marker="o", color="C3", markerfacecolor=face, linestyle="")
        if result.alpha_star is not None:
            axes.axvline(result.alpha_star, color="C2", linestyle=":", label=f"α* (S* = {result.success_level:g})")
        star = "not reachable" if result.benefit_star is None else f"{result.benefit_star:.3g}"
        axes.set_title(f"{title}\nb* = {star}", fontsize="small")
        axes.set_xlim(0.0, top * 1.02)
        axes.set_ylim(0.0, top * 1.05)
        axes.set_xlabel("collective size α")
        axes.set_ylabel("joining at α: R(α)")
    for index in range(len(results), rows * columns):
        grid[index // columns][index % columns].set_axis_off()
    grid[0][0].plot([], [], marker="o", color="C3", linestyle="", label="stable equilibrium")
    grid[0][0].plot([], [], marker="o", color="C3", markerfacecolor="white", linestyle="", label="unstable")
    grid[0][0].legend(fontsize="x-small")
    model = results[0].participation
    figure.suptitle(f"participation response, rule {model.rule}, b = {model.benefit:g}", fontsize="medium")
    return _save(figure, out_dir, "economics.png")
