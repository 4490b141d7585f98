"""``aca-report``: the command line that turns ``aca-run`` records into tables and plots.

``aca-report PATH ...`` prints each group's success curve S(α) with its baseline and the critical
mass α* (Hardt, Mazumdar, Mendler-Dünner, Zrnic, "Algorithmic Collective Action in Machine
Learning", ICML 2023, arXiv 2302.04262, §3), writes ``report.csv``/``report.json`` and the plot
``s_curve.png``/``.pdf``, prints the device(s) the runs were trained on, and optionally logs the
table and plots to one Weights & Biases report run in the sweep's group. ``aca-report PATH ...
--versus KEY`` adds α* against the swept setting KEY (a full key or its last part): a table, printed
and written as ``alpha_star_vs_<key>.csv``/``.json``, and the plot ``alpha_star_vs_<key>.png``.
``aca-report --distances PATH ...`` prints the distance-to-θ* table of runs with a gradient
strategy (§4) and writes ``distance_curves.png``. The parts live in :mod:`~lightning_aca.analysis.summary` (summarize),
:mod:`~lightning_aca.analysis.tables` (text, CSV, JSON) and :mod:`~lightning_aca.analysis.plot`.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from lightning_aca.analysis.distances import load_distance_curves, summarize_distances
from lightning_aca.analysis.plot import plot_alpha_star_versus, plot_curves, plot_distance_curves
from lightning_aca.analysis.records import load_records
from lightning_aca.analysis.run_info import devices_line, wandb_group
from lightning_aca.analysis.summary import (
    AlphaRow,
    GroupSummary,
    VersusPoint,
    alpha_star_versus,
    summarize,
    versus_key,
)
from lightning_aca.analysis.tables import (
    REPORT_COLUMNS,
    VERSUS_COLUMNS,
    format_distance_table,
    format_table,
    format_versus_table,
    strict_json,
    table_rows,
    versus_rows,
    write_report,
    write_versus,
)

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


def _push_to_wandb(
    summaries: Sequence[GroupSummary],
    paths: dict[str, Path],
    points: Sequence[VersusPoint] | None,
    out_dir: Path,
    project: str,
    group: str,
    config: dict,
) -> None:
    """Log the report to one W&B run (``job_type="report"``) in ``group``, offline unless WANDB_MODE says otherwise.

    Logged: the table (``aca/report``), the S(α) plot (``aca/s_curve``) and the same curves as a W&B
    line chart (``aca/s_curve_chart``: mean S against α, one line per group); with ``--versus``,
    the α*-against-setting plot and table (``aca/alpha_star_vs_<key>``, ``…_table``).
    """
    import wandb

    mode = None if os.environ.get("WANDB_MODE") else "offline"
    run = wandb.init(
        project=project, job_type="report", name="aca-report", group=group, dir=out_dir, config=config, mode=mode
    )
    try:
        # "inf" (an interval end above the tested range) shares a column with numbers, hence mixed types.
        table = wandb.Table(
            columns=list(REPORT_COLUMNS), data=strict_json(table_rows(summaries)), allow_mixed_types=True
        )
        chart = wandb.plot.line(table, x="alpha", y="success_mean", stroke="group", title="S(α): mean success")
        logged = {"aca/report": table, "aca/s_curve": wandb.Image(str(paths["png"])), "aca/s_curve_chart": chart}
        if points is not None:
            name = f"aca/{paths['versus_png'].stem}"
            logged[name] = wandb.Image(str(paths["versus_png"]))
            logged[f"{name}_table"] = wandb.Table(
                columns=list(VERSUS_COLUMNS), data=strict_json(versus_rows(points)), allow_mixed_types=True
            )
        run.log(logged)
    finally:
        run.finish()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aca-report",
        description="Success curves S(α) and critical masses α* from aca-run records (record.json).",
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="run or sweep directories, or record files")
    parser.add_argument("--success-level", type=float, default=None, help="success level S* defining α* (default: 0.9)")
    parser.add_argument("--threshold", type=float, default=None, help=argparse.SUPPRESS)  # old name of --success-level
    parser.add_argument(
        "--distances",
        action="store_true",
        help="runs with a gradient strategy: table of the distance to θ* and distance_curves.png",
    )
    parser.add_argument(
        "--versus",
        metavar="KEY",
        help="also α* against the swept setting KEY (full key or its last part, e.g. target_epsilon): "
        "alpha_star_vs_<KEY>.csv/.json/.png",
    )
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
        "--wandb",
        action="store_true",
        help="log the table and plots to a W&B report run in the sweep's group (offline unless WANDB_MODE is set)",
    )
    parser.add_argument("--wandb-project", default="lightning-aca", help="W&B project (default: lightning-aca)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``aca-report PATH [PATH ...]``: print the table, write the report and the plot.

    With ``--versus KEY``: also print and write α* against the swept setting KEY, and plot it.
    With ``--distances``: print the distance-to-θ* table and write ``distance_curves.png``.
    Returns 0 on success and 2, with a one-line message on stderr, when there is nothing to report
    or an option is out of range. Skipped records are listed on stderr as warnings.
    """
    args = _parser().parse_args(argv)
    try:
        out_dir = args.out if args.out is not None else args.paths[0]
        if args.distances:
            if args.versus is not None:
                raise ValueError(
                    "--versus compares α* between groups of success curves; it does not apply to --distances."
                )
            return _distances(args.paths, args.out)
        if args.threshold is not None:
            if args.success_level is not None:
                raise ValueError("pass --success-level only (--threshold is its old name).")
            print("aca-report: warning: --threshold is deprecated; use --success-level.", file=sys.stderr)
        level = next((value for value in (args.success_level, args.threshold) if value is not None), 0.9)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            records = load_records(args.paths)
        for warning in caught:
            print(f"aca-report: warning: {warning.message}", file=sys.stderr)
        if not out_dir.is_dir() and args.out is None:
            raise ValueError(f"the first PATH {out_dir} is not a directory; pass --out DIR.")
        summaries = summarize(records, success_level=level, n_bootstrap=args.bootstrap)
        key = None if args.versus is None else versus_key(summaries, args.versus)
        print(format_table(summaries))
        print(devices_line(records))
        paths = write_report(summaries, out_dir)
        paths.update(plot_curves(summaries, records, out_dir, theory_epsilon=args.theory_epsilon))
        points = None
        if key is not None:
            points = alpha_star_versus(summaries, key)
            print()
            print(format_versus_table(points, key))
            paths.update(write_versus(points, key, out_dir))
            paths["versus_png"] = plot_alpha_star_versus(points, key, out_dir)
        if args.wandb:
            config = {
                "success_level": level,
                "theory_epsilon": args.theory_epsilon,
                "n_records": len(records),
                "versus": key,
                "devices": devices_line(records),
            }
            group = wandb_group(records) or str(out_dir)
            _push_to_wandb(summaries, paths, points, out_dir, args.wandb_project, group, config)
    except (ValueError, TypeError, OSError) as error:
        print(f"aca-report: error: {error}", file=sys.stderr)
        return 2
    print()
    for path in paths.values():
        print(f"wrote {path}")
    return 0


def _distances(paths: Sequence[Path], out: Path | None) -> int:
    """``aca-report --distances``: the distance table, and the plot into ``out`` or the first directory."""
    curves = load_distance_curves(paths)
    print(format_distance_table(summarize_distances(curves)))
    out = out or (paths[0] if paths[0].is_dir() else paths[0].parent)
    print(f"\nwrote {plot_distance_curves(curves, out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
