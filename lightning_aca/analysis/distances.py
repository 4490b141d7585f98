"""Distance to θ* against training step for runs with a gradient strategy (gradient control/neutralization).

Reads the ``aca-run`` records of a sweep with a gradient strategy and each run's CSV log
(``<run>/csv/metrics.csv``, the ``logger=csv`` default), which holds ``aca/param_distance`` for
every logged step (set ``trainer.log_every_n_steps=1`` for every step) and the critical-mass bounds
``aca/alpha_norm_bound`` (the norm bound G/(G + B)) and ``aca/alpha_star`` (the exact α* of the
model family) of Hardt et al. 2023 (arXiv 2302.04262, §4).
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lightning_aca.runs.records import find_records, group_key, group_label

__all__ = ["DistanceCurve", "load_distance_curves", "summarize_distances"]

DISTANCE_KEY = "aca/param_distance"
CONTROLLABLE_KEY = "aca/controllable_distance"
#: each bound's log key
BOUND_KEYS = {"alpha_norm_bound": "aca/alpha_norm_bound", "alpha_star": "aca/alpha_star"}


@dataclass(frozen=True)
class DistanceCurve:
    """One run's distance ‖θ_t − θ*‖ by step (and its controllable part, where logged), with its α, seed, group and bounds."""

    alpha: float
    seed: int
    group: str
    settings: tuple[tuple[str, object], ...]
    steps: tuple[int, ...]
    distances: tuple[float, ...]
    controllable: tuple[float, ...] | None
    alpha_norm_bound: float | None
    alpha_star: float | None
    success: float | None


def _read_log(path: Path) -> tuple[list[int], list[float], list[float], dict[str, float]]:
    steps, distances, controllable, bounds = [], [], [], {}
    with path.open(newline="", encoding="utf-8") as file:
        for row in csv.DictReader(file):
            if row.get(DISTANCE_KEY):
                steps.append(int(row["step"]))
                distances.append(float(row[DISTANCE_KEY]))
                if row.get(CONTROLLABLE_KEY):
                    controllable.append(float(row[CONTROLLABLE_KEY]))
            for name, key in BOUND_KEYS.items():
                if row.get(key):
                    bounds[name] = float(row[key])
    return steps, distances, controllable, bounds


def load_distance_curves(paths: Sequence[str | Path]) -> list[DistanceCurve]:
    """One :class:`DistanceCurve` per run under ``paths`` that has a record and a CSV log with distances."""
    curves = []
    for record_path in find_records(paths):
        record = json.loads(record_path.read_text(encoding="utf-8"))
        logs = sorted(record_path.parent.rglob("metrics.csv"))
        if not logs:
            continue
        steps, distances, controllable, bounds = _read_log(logs[0])
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
                alpha_norm_bound=bounds.get("alpha_norm_bound"),
                alpha_star=bounds.get("alpha_star"),
                success=(record.get("metrics") or {}).get("aca/success"),
            )
        )
    if not curves:
        where = ", ".join(map(str, paths))
        raise ValueError(
            f"no run under {where} has a record.json and a csv/metrics.csv with {DISTANCE_KEY}; run aca-run with "
            "a gradient strategy (collective=gradient_control) and logger=csv."
        )
    return curves


def by_group_and_alpha(curves: Sequence[DistanceCurve]) -> dict[str, dict[float, list[DistanceCurve]]]:
    """Curves by group label, then by α."""
    grouped: dict[str, dict[float, list[DistanceCurve]]] = defaultdict(lambda: defaultdict(list))
    for curve in curves:
        grouped[curve.group][curve.alpha].append(curve)
    return grouped


def mean_or_none(values: Sequence[float | None]) -> float | None:
    """Mean of the values that are not ``None``; ``None`` if there are none."""
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def summarize_distances(curves: Sequence[DistanceCurve]) -> list[dict[str, object]]:
    """Rows ``{group, alpha, n_seeds, final_mean, final_std, controllable_mean, success_mean, alpha_norm_bound, alpha_star}``.

    ``final`` is the distance at each run's last logged step (``controllable``: its controllable part);
    the bounds are averaged over seeds.
    """
    rows = []
    for group, by_alpha in sorted(by_group_and_alpha(curves).items()):
        for alpha, runs in sorted(by_alpha.items()):
            finals = [run.distances[-1] for run in runs]
            rows.append(
                {
                    "group": group,
                    "alpha": alpha,
                    "n_seeds": len(runs),
                    "final_mean": float(np.mean(finals)),
                    "final_std": float(np.std(finals, ddof=1)) if len(finals) > 1 else 0.0,
                    "controllable_mean": mean_or_none(
                        [run.controllable[-1] if run.controllable else None for run in runs]
                    ),
                    "success_mean": mean_or_none([run.success for run in runs]),
                    "alpha_norm_bound": mean_or_none([run.alpha_norm_bound for run in runs]),
                    "alpha_star": mean_or_none([run.alpha_star for run in runs]),
                }
            )
    return rows
