"""Runs to locate α*: the critical-mass sweeper against a 10-point log grid, ``python -m benchmarks.critical_mass_sweeper``.

For each case (``quickstart``: signal planting on digits, 2 seeds; ``dp_epsilon_sweep``: the same
under DP-SGD at 5 target ε, 3 seeds) two ``aca-run -m`` commands run in fresh processes on the
CPU, with the same seeds and the experiment's α range:

- **grid**: ``collective.alpha`` at 10 log-spaced values over the range × every seed, α* and its
  95% bootstrap interval per setting as ``aca-report`` computes them;
- **search**: ``hydra/sweeper=critical_mass`` with its defaults (tolerance ±25%), once for each
  ``--points-per-round`` k (default: 1, bisection, and the sweeper's default), α* per setting
  from its ``critical_mass.json``.

Per case a table gives each variant's runs, rounds (launcher batches) and wall time; per setting,
both α*, whether the search's α* lies inside the grid's interval and within ±25% of the grid's
α*, and the runs each used. The goals: at most a third of the grid's runs, and, where rounds are
trained as stacks, no more wall time than the grid. All commands use ``--launcher`` (default
``stacked``: the grid, and each round of the search, trained as stacked models). Results go to
``benchmarks/results/critical_mass_sweeper-<device>.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hydra_plugins.aca_critical_mass_sweeper.config import CriticalMassSweeperConf
from lightning_aca.analysis.summary import summarize
from lightning_aca.runs.records import group_key, group_label, load_records

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
GRID_POINTS = 10
TOLERANCE = 0.25


@dataclass(frozen=True)
class Case:
    """One experiment as both variants run it."""

    experiment: str
    alpha_range: tuple[float, float]
    seeds: tuple[int, ...]


CASES = {
    "quickstart": Case("quickstart", (0.0025, 0.05), (0, 1)),
    "dp_epsilon_sweep": Case("dp_epsilon_sweep", (0.01, 0.2), (0, 1, 2)),
}


def log_grid(low: float, high: float, points: int = GRID_POINTS) -> list[float]:
    """``points`` α values log-spaced from ``low`` to ``high`` (both included), to 4 significant digits."""
    return [
        float(f"{math.exp(math.log(low) + (math.log(high) - math.log(low)) * i / (points - 1)):.4g}")
        for i in range(points)
    ]


def _aca_run(args: list[str], sweep: Path) -> float:
    """Wall seconds of one ``aca-run -m`` into ``sweep`` in a fresh process."""
    command = [
        sys.executable,
        "-m",
        "lightning_aca.cli",
        "-m",
        *args,
        f"hydra.sweep.dir={sweep}",
        "~hydra.callbacks.report",
    ]
    paths = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "WANDB_SILENT": "true", "PYTHONPATH": os.pathsep.join(paths)}
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=sweep.parent, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"aca-run failed ({' '.join(args)}):\n{proc.stderr[-4000:]}")
    (sweep / "aca-run.log").write_text(proc.stdout)
    return wall


def _alpha_star_text(alpha_star: dict[str, Any] | None) -> str:
    if alpha_star is None or not alpha_star["reached"]:
        return "not reached"
    text = f"{alpha_star['alpha_star']:.3g}"
    if alpha_star["low"] is None:
        return text
    high = alpha_star["high"]
    return f"{text} [{alpha_star['low']:.3g}, {'> range' if math.isinf(high) else f'{high:.3g}'}]"


def compare(case: Case, workdir: Path, launcher: str, points_per_round: list[int]) -> dict[str, Any]:
    """Run the grid and a search per ``points_per_round`` of ``case`` under ``workdir``; runs, rounds and wall
    time of each, and per setting both α* and the runs each used."""
    common = [f"experiment={case.experiment}", f"hydra/launcher={launcher}", f"seed={','.join(map(str, case.seeds))}"]
    grid_dir = workdir / "grid"
    grid = ",".join(map(str, log_grid(*case.alpha_range)))
    grid_s = _aca_run([*common, f"collective.alpha={grid}"], grid_dir)
    grid_records = load_records([grid_dir])
    by_label = {s.label: s for s in summarize(grid_records, success_level=0.9)}
    searches = []
    for k in points_per_round:
        search_dir = workdir / f"search_k{k}"
        search_s = _aca_run([*common, "hydra/sweeper=critical_mass", f"hydra.sweeper.points_per_round={k}"], search_dir)
        found = json.loads((search_dir / "critical_mass.json").read_text())
        rows = [_row(setting, by_label[setting["setting"]], grid_records) for setting in found["settings"]]
        searches.append(
            {
                "points_per_round": k,
                "runs": sum(r["search_runs"] for r in rows),
                "rounds": found["rounds"],
                "wall_s": round(search_s, 1),
                "rows": rows,
            }
        )
    return {
        "experiment": case.experiment,
        "alpha_range": list(case.alpha_range),
        "seeds": list(case.seeds),
        "grid_runs": len(grid_records),
        "grid_wall_s": round(grid_s, 1),
        "searches": searches,
    }


def _row(setting: dict[str, Any], reference: Any, grid_records: list[dict[str, Any]]) -> dict[str, Any]:
    """One setting of a search against the grid's α* of the same setting."""
    ours, theirs = setting["alpha_star"], reference.alpha_star
    reached = bool(ours and ours["reached"]), bool(theirs and theirs.reached)
    inside = within = reached == (False, False)
    if all(reached) and theirs.low is not None:
        inside = theirs.low <= ours["alpha_star"] <= theirs.high
        within = abs(ours["alpha_star"] / theirs.alpha_star - 1) <= TOLERANCE
    return {
        "setting": setting["setting"],
        "status": setting["status"],
        "search_runs": setting["runs"],
        "grid_runs": len(reference_runs(grid_records, setting["setting"])),
        "search_alpha_star": _alpha_star_text(ours),
        "grid_alpha_star": _alpha_star_text(None if theirs is None else asdict(theirs)),
        "inside_grid_interval": inside,
        "within_tolerance_of_grid": within,
    }


def reference_runs(records: list[dict[str, Any]], label: str) -> list[dict[str, Any]]:
    """The grid's records of the setting ``label`` (same swept values other than α and seed)."""
    return [r for r in records if group_label(group_key(r)) == label]


def _markdown(results: list[dict[str, Any]], launcher: str) -> str:
    import torch

    lines = [
        "# Benchmark: the critical-mass sweeper against a 10-point log grid",
        "",
        f"Environment: python {platform.python_version()}, torch {torch.__version__}, CPU "
        f"({platform.machine()}, {os.cpu_count()} cores, shared), launcher `{launcher}` for every variant. "
        f"Goal: at most ⅓ of the grid's runs, with the search's α* inside the grid's 95% interval, and with "
        f"stacked rounds no more wall time than the grid.",
        "",
    ]
    for result in results:
        lines += [
            f"## `experiment={result['experiment']}`: α in {result['alpha_range']}, seeds {result['seeds']}",
            "",
            "| variant | runs | of the grid's | rounds | wall (s) |",
            "|---|---:|---:|---:|---:|",
            f"| grid, {GRID_POINTS} log-spaced α | {result['grid_runs']} | 1.00 | 1 | {result['grid_wall_s']} |",
        ]
        lines += [
            f"| search, points_per_round={s['points_per_round']} | {s['runs']} | {s['runs'] / result['grid_runs']:.2f} | "
            f"{s['rounds']} | {s['wall_s']} |"
            for s in result["searches"]
        ]
        for search in result["searches"]:
            lines += [
                "",
                f"Search with points_per_round={search['points_per_round']}:",
                "",
                "| setting | search: status | runs | α* | grid: runs | α* [95% interval] | inside grid interval | "
                "within ±25% of grid α* |",
                "|---|---|---:|---|---:|---|---|---|",
            ]
            lines += [
                f"| {r['setting']} | {r['status']} | {r['search_runs']} | {r['search_alpha_star']} | {r['grid_runs']} | "
                f"{r['grid_alpha_star']} | {'yes' if r['inside_grid_interval'] else 'no'} | "
                f"{'yes' if r['within_tolerance_of_grid'] else 'no'} |"
                for r in search["rows"]
            ]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="*", choices=sorted(CASES), default=list(CASES))
    parser.add_argument("--launcher", choices=("stacked", "basic"), default="stacked")
    parser.add_argument(
        "--points-per-round",
        type=int,
        nargs="+",
        default=sorted({1, CriticalMassSweeperConf.points_per_round}),
        help="one search per value of hydra.sweeper.points_per_round (default: 1 and the sweeper's default)",
    )
    parser.add_argument("--keep", type=Path, help="write the sweeps under this directory (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=RESULTS / "critical_mass_sweeper-CPU.md")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.cases:
            workdir = (args.keep or Path(tmp)) / name
            workdir.mkdir(parents=True, exist_ok=True)
            results.append(compare(CASES[name], workdir, args.launcher, args.points_per_round))
            print(json.dumps(results[-1], indent=2), flush=True)
    args.out.write_text(_markdown(results, args.launcher))
    print(args.out.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
