"""``aca-report``: the command line that turns ``aca-run`` records into tables and plots.

``aca-report PATH ...`` prints each group's success curve S(α) with its baseline, the collective's
number of members m beside α, and the critical mass α* with the critical number of members
m* = α*·n for a group of one training-set size n (Hardt, Mazumdar, Mendler-Dünner, Zrnic, "Algorithmic Collective Action in Machine
Learning", ICML 2023, arXiv 2302.04262, §3), writes ``report.csv``/``report.json`` and the plot
``s_curve.png``/``.pdf``, prints the device(s) the runs were trained on, and optionally logs the
table and plots to one Weights & Biases report run in the sweep's group. ``aca-report PATH ...
--against KEY`` adds α* and m* against the swept setting KEY (a full key or its last part; ``n_train``
is the training-set size n): a table, printed and written as ``critical_mass_against_<key>.csv``/``.json``,
and the plot ``critical_mass_against_<key>.png``.
``aca-report --distances PATH ...`` prints the distance-to-θ* table of runs with a gradient
strategy (§4) and writes ``distance_curves.png``. ``--economics`` adds the economics of joining per
group (:mod:`lightning_aca.economics`): ``economics.csv``/``.json``/``.png``. Records of several
collectives (Karan et al. 2025) get their own report instead: each collective's S_i over the
(α_1, α_2, …) grid, printed, written as ``collectives.csv``/``collectives.json`` and drawn in
``collectives_<n>.png`` (:mod:`~lightning_aca.analysis.collectives`); one report never mixes the two
kinds. The parts live in :mod:`~lightning_aca.analysis.summary` (summarize),
:mod:`~lightning_aca.analysis.tables` (text, CSV, JSON) and :mod:`~lightning_aca.analysis.plot`.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from lightning_aca.analysis.collectives import (
    collectives_columns,
    collectives_rows,
    format_collectives_table,
    has_several_collectives,
    summarize_collectives,
    write_collectives,
)
from lightning_aca.analysis.distances import load_distance_curves, summarize_distances
from lightning_aca.analysis.plot import plot_collectives, plot_critical_mass_against, plot_curves, plot_distance_curves
from lightning_aca.analysis.summary import (
    AlphaRow,
    GroupSummary,
    against_key,
    critical_mass_against,
    summarize,
)
from lightning_aca.analysis.tables import (
    AGAINST_COLUMNS,
    REPORT_COLUMNS,
    against_rows,
    format_against_table,
    format_distance_table,
    format_table,
    strict_json,
    table_rows,
    write_against,
    write_report,
)
from lightning_aca.runs.records import load_records, unique_runs
from lightning_aca.runs.run_info import devices_line, wandb_group

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
    tables: dict[str, tuple[Sequence[str], list[list[object]]]],
    images: dict[str, Path],
    out_dir: Path,
    project: str,
    records: list[dict],
    config: dict,
) -> None:
    """Log the report to one W&B run (``job_type="report"``) in the sweep's group, offline unless WANDB_MODE says otherwise.

    ``tables`` maps each key to ``(columns, rows)`` and ``images`` each key to a figure file; the
    records' devices are added to ``config``. The
    one-collective table ``aca/report`` is also drawn as a W&B line chart (``aca/s_curve_chart``:
    mean S against α, one line per group).
    """
    import wandb

    mode = None if os.environ.get("WANDB_MODE") else "offline"
    group = wandb_group(records) or str(out_dir)
    config = config | {"devices": devices_line(records)}
    run = wandb.init(
        project=project, job_type="report", name="aca-report", group=group, dir=out_dir, config=config, mode=mode
    )
    try:
        # "inf" (an interval end above the tested range) shares a column with numbers, hence mixed types.
        logged: dict[str, object] = {
            key: wandb.Table(columns=list(columns), data=strict_json(rows), allow_mixed_types=True)
            for key, (columns, rows) in tables.items()
        }
        if "aca/report" in logged:
            logged["aca/s_curve_chart"] = wandb.plot.line(
                logged["aca/report"], x="alpha", y="success_mean", stroke="group", title="S(α): mean success"
            )
        logged.update({key: wandb.Image(str(image)) for key, image in images.items()})
        run.log(logged)
    finally:
        run.finish()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aca-report",
        description="Success curves S(α) and critical masses α* from aca-run records (record.json).",
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="run or sweep directories, or record files")
    parser.add_argument("--success-level", type=float, default=0.9, help="success level S* defining α* (default: 0.9)")
    parser.add_argument(
        "--distances",
        action="store_true",
        help="runs with a gradient strategy: table of the distance to θ* and distance_curves.png",
    )
    parser.add_argument(
        "--against",
        metavar="KEY",
        help="also α* and m* (critical number of members) against the swept setting KEY (full key or its last "
        "part, e.g. target_epsilon; n_train: the training-set size n): critical_mass_against_<KEY>.csv/.json/.png",
    )
    economics = parser.add_argument_group("economics of joining (lightning_aca.economics)")
    economics.add_argument(
        "--economics",
        action="store_true",
        help="also participation equilibria and the smallest benefit b* per group: economics.csv/.json/.png",
    )
    economics.add_argument("--benefit", type=float, default=1.0, help="benefit b of success, in the costs' unit")
    economics.add_argument(
        "--costs",
        default="uniform:0,1",
        help="cost distribution: uniform:LOW,HIGH, exponential:MEAN or lognormal:MEDIAN,SIGMA (default: uniform:0,1)",
    )
    economics.add_argument("--rule", default="naive", choices=("naive", "free_rider"), help="participation rule")
    economics.add_argument(
        "--privacy-cost", type=float, default=0.0, help="κ, cost of being identified as a member (default: 0, off)"
    )
    parser.add_argument(
        "--keep-duplicates",
        action="store_true",
        help="count records of the same (group, α, seed) as separate runs (default: keep the first, drop the others)",
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

    With ``--against KEY``: also print and write α* and m* against the swept setting KEY, and plot them.
    With ``--economics``: also print and write the participation equilibria and b* per group.
    With ``--distances``: print the distance-to-θ* table and write ``distance_curves.png``.
    Returns 0 on success and 2, with a one-line message on stderr, when there is nothing to report
    or an option is out of range. Skipped records are listed on stderr as warnings, and so are
    records repeating a (group, α, seed) already read: only the first is kept unless
    ``--keep-duplicates``.
    """
    args = _parser().parse_args(argv)
    try:
        out_dir = args.out if args.out is not None else args.paths[0]
        if args.distances:
            if args.against is not None:
                raise ValueError(
                    "--against compares α* and m* between groups of success curves; it does not apply to --distances."
                )
            return _distances(args.paths, args.out)
        if args.economics:  # bad costs, benefit or privacy cost fail before any report file is written
            from lightning_aca.economics import Participation, parse_costs

            # the rule is one of argparse's choices; the free-rider rule's N comes from the records later
            Participation(parse_costs(args.costs), args.benefit, privacy_cost=args.privacy_cost)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            records = load_records(args.paths)
        for warning in caught:
            print(f"aca-report: warning: {warning.message}", file=sys.stderr)
        if not args.keep_duplicates:
            records = _without_duplicates(records)
        if not out_dir.is_dir() and args.out is None:
            raise ValueError(f"the first PATH {out_dir} is not a directory; pass --out DIR.")
        if has_several_collectives(records):
            paths = _collectives(records, out_dir, args)
        else:
            paths = _curves(records, out_dir, args)
    except (ValueError, TypeError, OSError) as error:
        print(f"aca-report: error: {error}", file=sys.stderr)
        return 2
    print()
    for path in paths.values():
        print(f"wrote {path}")
    return 0


def _without_duplicates(records: list[dict]) -> list[dict]:
    """The first record of each (group, α, seed); a warning counts the others and names a few."""
    kept, dropped = unique_runs(records)
    if dropped:
        shown = ", ".join(str((r.get("config") or {}).get("output_dir", "?")) for r in dropped[:3])
        print(
            f"aca-report: warning: dropped {len(dropped)} record(s) repeating a (group, alpha, seed) already read, "
            f"e.g. {shown}{', ...' if len(dropped) > 3 else ''} (two sweeps of the same settings?); "
            "pass --keep-duplicates to count them as further runs.",
            file=sys.stderr,
        )
    return kept


def _curves(records: list[dict], out_dir: Path, args: argparse.Namespace) -> dict[str, Path]:
    """The one-collective report: S(α) table, ``report.csv``/``.json``, the plot, and ``--against``/``--economics``."""
    summaries = summarize(records, success_level=args.success_level, n_bootstrap=args.bootstrap)
    key = None if args.against is None else against_key(summaries, args.against)
    print(format_table(summaries))
    print(devices_line(records))
    paths = write_report(summaries, out_dir)
    if any(row.alpha > 0 for summary in summaries for row in summary.rows):
        paths.update(plot_curves(summaries, records, out_dir, theory_epsilon=args.theory_epsilon))
    else:  # S(α) is drawn on a log-α axis, and α = 0 alone has no curve
        print("aca-report: every run has α = 0 (no collective): no S(α) curve to plot", file=sys.stderr)
    points = None
    if key is not None:
        points = critical_mass_against(summaries, key)
        print()
        print(format_against_table(points, key))
        paths.update(write_against(points, key, out_dir))
        paths["against_png"] = plot_critical_mass_against(points, key, out_dir)
    if args.economics:
        paths.update(_economics(summaries, records, args, out_dir))
    if args.wandb:
        tables = {"aca/report": (REPORT_COLUMNS, table_rows(summaries))}
        images = {"aca/s_curve": paths["png"]}
        if key is not None:
            name = f"aca/{paths['against_png'].stem}"
            images[name] = paths["against_png"]
            tables[f"{name}_table"] = (AGAINST_COLUMNS, against_rows(points))
        config = {
            "success_level": args.success_level,
            "theory_epsilon": args.theory_epsilon,
            "n_records": len(records),
            "against": key,
        }
        _push_to_wandb(tables, images, out_dir, args.wandb_project, records, config)
    return paths


def _economics(summaries: Sequence[GroupSummary], records: list, args: argparse.Namespace, out: Path) -> dict:
    """``aca-report --economics``: print the table, write ``economics.csv``/``.json``/``.png``."""
    from lightning_aca.analysis.economics import firm_economics, format_economics_table, plot_economics, write_economics
    from lightning_aca.economics import parse_costs

    costs = parse_costs(args.costs)
    results = firm_economics(summaries, records, costs, args.benefit, args.rule, args.privacy_cost)
    print()
    print(format_economics_table(results, args.costs))
    return write_economics(results, args.costs, out) | {"economics_png": plot_economics(results, out)}


def _collectives(records: list[dict], out_dir: Path, args: argparse.Namespace) -> dict[str, Path]:
    """The several-collective report: table, ``collectives.csv``/``.json`` and one figure per group."""
    for flag, given in (("--against", args.against is not None), ("--economics", args.economics)):
        if given:
            raise ValueError(
                f"{flag} works on one-collective S(α) curves and their critical mass α*; these records hold several "
                "collectives (their report is S_i over the α grid): drop the option."
            )
    summaries = summarize_collectives(records)
    print(format_collectives_table(summaries))
    print(devices_line(records))
    paths = write_collectives(summaries, out_dir)
    figures = plot_collectives(summaries, out_dir)
    paths.update(figures)
    if args.wandb:
        tables = {"aca/collectives": (collectives_columns(summaries), collectives_rows(summaries))}
        images = {f"aca/{path.stem}": path for path in figures.values()}
        config = {"n_records": len(records), "collectives": list(summaries[0].names)}
        _push_to_wandb(tables, images, out_dir, args.wandb_project, records, config)
    return paths


def _distances(paths: Sequence[Path], out: Path | None) -> int:
    """``aca-report --distances``: the distance table, and the plot into ``out`` or the first directory."""
    curves = load_distance_curves(paths)
    print(format_distance_table(summarize_distances(curves)))
    out = out or (paths[0] if paths[0].is_dir() else paths[0].parent)
    print(f"\nwrote {plot_distance_curves(curves, out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
