import csv
import json
import math
import statistics
import time
from pathlib import Path

import numpy as np
import pytest

from lightning_aca.analysis.plot import plot_critical_mass_against
from lightning_aca.analysis.report import REPORT_COLUMNS, format_table, main, plot_curves, summarize, write_report
from lightning_aca.analysis.summary import against_key, critical_mass_against
from lightning_aca.analysis.tables import AGAINST_COLUMNS, against_rows, format_against_table, write_against
from lightning_aca.runs.records import load_records

ALPHAS = [0.0, *np.logspace(-3, -1, 9).tolist()]
SEED_OFFSETS = {0: -0.02, 1: 0.0, 2: 0.02}
ALPHA_0, SLOPE = 0.01, 3.0
# logistic(α*) = 0.9  ⇔  α* = α₀ · 9^(1/k)
TRUE_ALPHA_STAR = ALPHA_0 * 9 ** (1 / SLOPE)


def logistic(alpha):
    """S(α) = 1 / (1 + (α/α₀)^(−k)), S-shaped in log α; 0 at α = 0."""
    return 0.0 if alpha == 0 else 1.0 / (1.0 + (alpha / ALPHA_0) ** -SLOPE)


@pytest.fixture
def make_record(run_record):
    """``make_record(alpha, seed, firm)``: erm reaches S* = 0.9 near TRUE_ALPHA_STAR; dpsgd (half the S, with ε) never does."""

    def make_record(alpha, seed, firm):
        scale = 0.5 if firm == "dpsgd" else 1.0
        metrics = {
            "aca/success": min(max(scale * logistic(alpha) + SEED_OFFSETS[seed] + 0.02, 0.0), 1.0),
            "aca/clean_acc": 0.97 - 0.01 * seed - (0.05 if firm == "dpsgd" else 0.0),
            "aca/alpha": alpha,
        }
        return run_record(
            alpha,
            seed,
            firm,
            metrics,
            epsilon=8.0 + 0.1 * seed if firm == "dpsgd" else None,
            theory={"xi": 0.0 if firm == "erm" else None, "n_train": 1347},
            config={},
            wall_time_s=1.0,
            versions={"lightning_aca": "0.1.0"},
        )

    return make_record


def fragile_records(make_record):
    """Mean S reaches 0.9 at α = 0.1, but no resample holding seed 0 twice (7/27 of them) does: α*'s high end is ∞."""
    runs = [(0.01, 0, 0.1), (0.1, 0, 0.8), (0.01, 1, 0.5), (0.1, 1, 1.0), (0.01, 2, 0.5), (0.1, 2, 1.0)]
    return [make_record(alpha, seed, "fragile") | {"metrics": {"aca/success": s}} for alpha, seed, s in runs]


@pytest.fixture
def sweeps(tmp_path, make_record):
    """Two Hydra multiruns under one directory, one per firm, jobs numbered as Hydra does."""
    root = tmp_path / "multirun"
    for firm in ("erm", "dpsgd"):
        combos = [(alpha, seed) for alpha in ALPHAS for seed in SEED_OFFSETS]
        for job, (alpha, seed) in enumerate(combos):
            path = root / f"sweep_{firm}" / str(job) / "record.json"
            path.parent.mkdir(parents=True)
            path.write_text(json.dumps(make_record(alpha, seed, firm)))
    return root


def by_label(summaries):
    return {summary.label: summary for summary in summaries}


def test_summarize_groups_runs_and_rows_equal_hand_computed_statistics(sweeps):
    records = load_records([sweeps])
    summaries = by_label(summarize(records, n_bootstrap=200))

    assert list(summaries) == ["firm=dpsgd", "firm=erm"]
    for firm, summary in (("erm", summaries["firm=erm"]), ("dpsgd", summaries["firm=dpsgd"])):
        assert summary.key == (("firm", firm),)
        assert [row.alpha for row in summary.rows] == ALPHAS
        for row in summary.rows:
            runs = [r for r in records if r["sweep"]["firm"] == firm and r["alpha"] == row.alpha]
            success = [r["metrics"]["aca/success"] for r in runs]
            assert row.n_seeds == 3
            assert row.success_mean == pytest.approx(statistics.mean(success))
            assert row.success_std == pytest.approx(statistics.stdev(success))
            assert row.clean_acc_mean == pytest.approx(statistics.mean(r["metrics"]["aca/clean_acc"] for r in runs))
            assert row.epsilon_mean == (pytest.approx(8.1) if firm == "dpsgd" else None)
    assert summaries["firm=erm"].rows[0].success_mean == pytest.approx(0.02)


def test_summarize_finds_the_known_critical_mass_and_a_group_that_never_reaches_it(sweeps):
    summaries = by_label(summarize(load_records([sweeps]), success_level=0.9, n_bootstrap=200))

    erm = summaries["firm=erm"].alpha_star
    assert erm.reached and erm.n_seeds == 3
    assert erm.alpha_range == (pytest.approx(1e-3), pytest.approx(0.1))  # α = 0 left out of α*
    # log-α interpolation on a grid of ratio 10^(1/4) stays within ~15% of the logistic's α*
    assert erm.alpha_star == pytest.approx(TRUE_ALPHA_STAR, rel=0.15)
    assert erm.low <= erm.alpha_star <= erm.high < math.inf

    dpsgd = summaries["firm=dpsgd"].alpha_star
    assert not dpsgd.reached and dpsgd.alpha_star is None
    assert dpsgd.max_mean_success == pytest.approx(0.5 * logistic(0.1) + 0.02)


def test_summarize_single_seed_sweep_without_settings(make_record, tmp_path):
    records = [make_record(alpha, 1, "erm") | {"sweep": {"seed": 1, "collective.alpha": alpha}} for alpha in ALPHAS]
    (summary,) = summarize(records, n_bootstrap=0)
    assert summary.label == "(all runs)"
    assert {row.success_std for row in summary.rows} == {0.0}
    assert summary.alpha_star.low is None

    alpha_zero_only = summarize([make_record(0.0, 0, "erm")])
    assert alpha_zero_only[0].alpha_star is None
    assert "α* (S* = 0.9): no runs with α > 0" in format_table(alpha_zero_only)

    with pytest.raises(ValueError, match=r"success_level must be a finite number in \(0.0, 1.0\], got 1.5"):
        summarize(records, success_level=1.5)


def test_format_table_shows_each_groups_values_and_epsilon_only_for_dp(sweeps):
    summaries = summarize(load_records([sweeps]), n_bootstrap=200)
    dpsgd, erm = format_table(summaries).split("\n\n")

    assert erm.splitlines()[0] == "firm=erm"
    assert erm.splitlines()[1].split() == ["α", "S", "mean", "±", "std", "clean", "acc", "seeds"]
    assert dpsgd.splitlines()[1].split()[-1] == "ε"
    for block, summary in ((dpsgd, summaries[0]), (erm, summaries[1])):
        lines = block.splitlines()
        assert len(lines) == 1 + 1 + len(ALPHAS) + 1
        for line, row in zip(lines[2:-1], summary.rows, strict=True):
            cells = [
                f"{row.alpha:g}",
                f"{row.success_mean:.3f}",
                "±",
                f"{row.success_std:.3f}",
                f"{row.clean_acc_mean:.3f}",
            ]
            assert line.split()[:6] == [*cells, "3"]
        members = f"; {summary.members_star} (n = 1347)" if summary.members_star.reached else ""
        assert lines[-1] == f"α* (S* = 0.9): {summary.alpha_star}{members}"
    assert summaries[1].members_star.members_star == pytest.approx(summaries[1].alpha_star.alpha_star * 1347)
    assert erm.splitlines()[-1].startswith("α* (S* = 0.9): α* = 0.02")
    assert dpsgd.splitlines()[2].split()[-1] == "8.1"
    assert dpsgd.splitlines()[-1].startswith("α* (S* = 0.9): not reached (max S = 0.52")


def test_write_report_csv_and_json(sweeps, tmp_path):
    summaries = summarize(load_records([sweeps]), n_bootstrap=200)
    out = tmp_path / "report"
    paths = write_report(summaries, out)

    assert paths == {"csv": out / "report.csv", "json": out / "report.json"}
    assert sorted(p.name for p in out.iterdir()) == ["report.csv", "report.json"]  # no temp files left
    with paths["csv"].open() as file:
        rows = list(csv.DictReader(file))
    assert tuple(rows[0]) == REPORT_COLUMNS
    assert len(rows) == 2 * len(ALPHAS)
    erm = summaries[1]
    erm_rows = [row for row in rows if row["group"] == "firm=erm"]
    assert float(erm_rows[5]["alpha"]) == pytest.approx(erm.rows[5].alpha)
    assert float(erm_rows[5]["success_mean"]) == pytest.approx(erm.rows[5].success_mean)
    assert float(erm_rows[5]["success_std"]) == pytest.approx(erm.rows[5].success_std)
    assert int(erm_rows[5]["n_seeds"]) == 3 and erm_rows[5]["epsilon_mean"] == ""
    assert float(erm_rows[5]["alpha_star"]) == pytest.approx(erm.alpha_star.alpha_star)
    assert float(erm_rows[5]["alpha_star_low"]) == pytest.approx(erm.alpha_star.low)
    assert erm_rows[5]["reached"] == "True"
    dpsgd_row = next(row for row in rows if row["group"] == "firm=dpsgd")
    assert (dpsgd_row["alpha_star"], dpsgd_row["reached"], float(dpsgd_row["epsilon_mean"])) == ("", "False", 8.1)

    document = json.loads(paths["json"].read_text())
    groups = {group["label"]: group for group in document["groups"]}
    assert groups["firm=erm"]["sweep"] == {"firm": "erm"}
    assert groups["firm=erm"]["rows"][5]["success_mean"] == pytest.approx(erm.rows[5].success_mean)
    assert groups["firm=erm"]["alpha_star"]["alpha_star"] == pytest.approx(erm.alpha_star.alpha_star)
    assert groups["firm=dpsgd"]["alpha_star"]["reached"] is False
    assert groups["firm=dpsgd"]["alpha_star"]["alpha_star"] is None


def test_write_report_json_stays_strict_with_an_interval_above_the_range(make_record, tmp_path):
    (summary,) = summarize(fragile_records(make_record), n_bootstrap=200)
    assert summary.alpha_star.high == math.inf

    paths = write_report([summary], tmp_path)

    text = paths["json"].read_text()
    assert "Infinity" not in text
    assert json.loads(text)["groups"][0]["alpha_star"]["high"] == "inf"


def test_plot_curves_writes_png_and_pdf(sweeps, tmp_path):
    records = load_records([sweeps])
    paths = plot_curves(summarize(records, n_bootstrap=200), records, tmp_path / "plots", theory_epsilon=0.01)

    png = paths["png"].read_bytes()
    assert paths["png"].name == "s_curve.png" and png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 20_000
    assert paths["pdf"].name == "s_curve.pdf" and paths["pdf"].read_bytes().startswith(b"%PDF")


def test_the_erm_bound_is_drawn_for_erm_groups_only(make_record, tmp_path, monkeypatch):
    from lightning_aca.analysis import plot

    drawn = []
    real = plot.feature_label_success_bound
    monkeypatch.setattr(plot, "feature_label_success_bound", lambda *a, **k: drawn.append(a[1]) or real(*a, **k))
    for firm, expected in (("dpsgd", 0), ("erm", 200)):
        records = [
            make_record(alpha, seed, firm) | {"theory": {"xi": 0.1, "n_train": 1347}}
            for alpha in ALPHAS
            for seed in (0, 1)
        ]
        drawn.clear()
        plot_curves(summarize(records, n_bootstrap=50), records, tmp_path / firm)
        assert len(drawn) == expected, firm


def test_main_prints_table_and_written_paths(sweeps, capsys):
    assert main([str(sweeps), "--bootstrap", "200"]) == 0

    out = capsys.readouterr().out
    assert "firm=erm\n" in out and "α* (S* = 0.9): α* = 0.02" in out and "not reached" in out
    for name in ("report.csv", "report.json", "s_curve.png", "s_curve.pdf"):
        assert f"wrote {sweeps / name}\n" in out
        assert (sweeps / name).is_file()


def test_main_with_only_alpha_zero_runs_writes_the_table_and_no_plot(tmp_path, make_record, capsys):
    for seed in SEED_OFFSETS:
        (tmp_path / str(seed)).mkdir()
        (tmp_path / str(seed) / "record.json").write_text(json.dumps(make_record(0.0, seed, "erm")))
    assert main([str(tmp_path), "--bootstrap", "0"]) == 0
    captured = capsys.readouterr()
    assert "no S(α) curve to plot" in captured.err and "no runs with α > 0" in captured.out
    assert (tmp_path / "report.csv").is_file() and not (tmp_path / "s_curve.png").exists()


def test_main_reports_skipped_records_on_stderr(sweeps, tmp_path, capsys):
    broken = sweeps / "sweep_erm" / "99" / "record.json"
    broken.parent.mkdir()
    broken.write_text('{"schema_version": 1, "alpha": 0.')

    assert main([str(sweeps), "--out", str(tmp_path / "out"), "--success-level", "0.8", "--bootstrap", "0"]) == 0

    captured = capsys.readouterr()
    assert captured.err.startswith(f"aca-report: warning: skipping {broken}: unreadable or partial JSON")
    assert "α* (S* = 0.8)" in captured.out


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ([], "aca-report: error: no usable record.json under {empty} (none found)."),
        (
            ["--success-level", "1.5"],
            "aca-report: error: success_level must be a finite number in (0.0, 1.0], got 1.5.",
        ),
    ],
)
def test_main_errors_are_one_line_with_exit_code_2(sweeps, tmp_path, capsys, arguments, message):
    empty = tmp_path / "empty"
    empty.mkdir()
    path = sweeps if arguments else empty

    assert main([str(path), *arguments]) == 2

    captured = capsys.readouterr()
    assert captured.err == message.format(empty=empty) + "\n"
    assert captured.out == ""


def test_main_wandb_logs_an_offline_run_under_the_out_dir(make_record, sweeps, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for variable in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(variable, str(tmp_path / variable.lower()))
    for job, record in enumerate(fragile_records(make_record)):  # an "inf" interval end beside finite ones in the table
        path = sweeps / "sweep_fragile" / str(job) / "record.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(record))
    out = tmp_path / "out"

    start = time.perf_counter()
    assert main([str(sweeps), "--out", str(out), "--bootstrap", "200", "--wandb", "--wandb-project", "aca-test"]) == 0

    assert time.perf_counter() - start < 30
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert list(runs[0].glob("*.wandb"))


def constant_model_records(make_record):
    """A model that predicts y* everywhere: S = 1 at every α, and S = 1 on the clean inputs too."""
    records = []
    for alpha in (0.01, 0.1):
        for seed in (0, 1):
            record = make_record(alpha, seed, "constant")
            record["metrics"] = {"aca/success": 1.0, "aca/baseline_success": 1.0, "aca/clean_acc": 0.1}
            records.append(record)
    return records


def trained_records(make_record):
    return [
        make_record(alpha, seed, "trained")
        | {"metrics": {"aca/success": s, "aca/baseline_success": 0.05, "aca/clean_acc": 0.95}}
        for alpha, s in ((0.01, 0.5), (0.1, 1.0))
        for seed in (0, 1)
    ]


def test_success_not_above_its_baseline_is_flagged(make_record, tmp_path):
    summaries = by_label(summarize(constant_model_records(make_record) + trained_records(make_record), n_bootstrap=0))
    constant, trained = summaries["firm=constant"], summaries["firm=trained"]

    assert [(row.success_mean, row.baseline_success_mean, row.above_baseline) for row in constant.rows] == [
        (1.0, 1.0, False),
        (1.0, 1.0, False),
    ]
    assert constant.not_above_baseline == (0.01, 0.1)
    assert trained.not_above_baseline == () and {row.above_baseline for row in trained.rows} == {True}

    table = format_table([constant, trained])
    constant_block, trained_block = table.split("\n\n")
    assert constant_block.splitlines()[1].split() == ["α", "S", "mean", "±", "std", "baseline", "clean", "acc", "seeds"]
    assert constant_block.splitlines()[2].split() == ["0.01", "1.000", "±", "0.000", "1.000", "0.100", "2", "!"]
    assert constant_block.splitlines()[-1] == (
        "! S is not above its baseline (the same success measure on clean inputs) at α = 0.01, 0.1"
    )
    assert "!" not in trained_block

    paths = write_report([constant, trained], tmp_path)
    with paths["csv"].open() as file:
        rows = list(csv.DictReader(file))
    assert [(row["group"], row["baseline_success_mean"], row["above_baseline"]) for row in rows] == [
        ("firm=constant", "1.0", "False"),
        ("firm=constant", "1.0", "False"),
        ("firm=trained", "0.05", "True"),
        ("firm=trained", "0.05", "True"),
    ]
    document = json.loads(paths["json"].read_text())
    assert document["groups"][0]["success_level"] == 0.9
    assert document["groups"][0]["rows"][0]["above_baseline"] is False


def test_erasing_runs_and_runs_without_a_baseline_are_not_flagged(make_record):
    erasing = [record | {"target_class": None} for record in constant_model_records(make_record)]
    assert summarize(erasing, n_bootstrap=0)[0].not_above_baseline == ()
    (old,) = summarize([make_record(0.1, 0, "erm")], n_bootstrap=0)
    assert old.rows[0].baseline_success_mean is None and old.rows[0].above_baseline is None
    assert "baseline" not in format_table([old])


C_KEY, SIGMA_KEY, EPSILON_KEY = (
    f"firm.callbacks.dpsgd.{name}" for name in ("max_grad_norm", "noise_multiplier", "target_epsilon")
)
#: (swept settings, m): S(α) = logistic(α/m), so α* = m · TRUE_ALPHA_STAR; m = None: half the S, S* never reached
AGAINST_SETTINGS = [
    ({"firm": "erm"}, 1.0),
    ({"firm": "dpsgd", C_KEY: 0.1, SIGMA_KEY: 1.0}, None),
    ({"firm": "dpsgd", C_KEY: 1.0, SIGMA_KEY: 1.0}, 2.0),
    ({"firm": "dpsgd", C_KEY: 10.0, SIGMA_KEY: 1.0}, 1.5),
    ({"firm": "dpsgd", C_KEY: 0.1, EPSILON_KEY: 4.0}, 3.0),
    ({"firm": "dpsgd", C_KEY: 1.0, EPSILON_KEY: 4.0}, 2.5),
]


def against_records(run_record, settings=AGAINST_SETTINGS):
    """ERM, and DP-SGD sweeps over the clipping norm C at σ = 1 and at ε = 4, α > 0 on ALPHAS, three seeds."""
    records = []
    for sweep, m in settings:
        for alpha in ALPHAS[1:]:
            for seed, offset in SEED_OFFSETS.items():
                mean = 0.5 * logistic(alpha) if m is None else logistic(alpha / m)
                record = run_record(
                    alpha, seed, sweep["firm"], {"aca/success": min(max(mean + offset + 0.02, 0.0), 1.0)}
                )
                record["sweep"] = {"collective.alpha": alpha, "seed": seed, **sweep}
                records.append(record)
    return records


def test_critical_mass_against_places_each_groups_own_alpha_star_one_line_per_other_setting(run_record):
    summaries = summarize(against_records(run_record), n_bootstrap=100)
    points = critical_mass_against(summaries, "max_grad_norm")

    assert [(point.value, point.others) for point in points] == [
        (0.1, ((SIGMA_KEY, 1.0),)),
        (1.0, ((SIGMA_KEY, 1.0),)),
        (10.0, ((SIGMA_KEY, 1.0),)),
        (0.1, ((EPSILON_KEY, 4.0),)),
        (1.0, ((EPSILON_KEY, 4.0),)),
        (None, ()),
    ]
    assert all(any(point.summary is summary for summary in summaries) for point in points)
    assert points[-1].summary.label == "firm=erm"
    # α* = m · TRUE_ALPHA_STAR within the interpolation error: m = 1 for ERM, 3 for C = 0.1 at ε = 4
    assert points[-1].summary.alpha_star.alpha_star == pytest.approx(TRUE_ALPHA_STAR, rel=0.15)
    assert points[3].summary.alpha_star.alpha_star == pytest.approx(3.0 * TRUE_ALPHA_STAR, rel=0.15)


def test_against_table_equals_summarize_per_group_alpha_star(run_record, tmp_path):
    records = against_records(run_record)
    points = critical_mass_against(summarize(records, n_bootstrap=100), C_KEY)
    fresh = {summary.label: summary.alpha_star for summary in summarize(list(reversed(records)), n_bootstrap=100)}

    rows = against_rows(points)
    assert len(rows) == len(AGAINST_SETTINGS)
    for row in rows:
        row = dict(zip(AGAINST_COLUMNS, row, strict=True))
        mass = fresh[row["group"]]
        assert (row["alpha_star"], row["alpha_star_low"], row["alpha_star_high"]) == (
            mass.alpha_star,
            mass.low,
            mass.high,
        )
        assert (row["n_seeds"], row["reached"]) == (3, mass.reached)

    paths = write_against(points, C_KEY, tmp_path)
    assert paths == {
        "against_csv": tmp_path / "critical_mass_against_max_grad_norm.csv",
        "against_json": tmp_path / "critical_mass_against_max_grad_norm.json",
    }
    with paths["against_csv"].open() as file:
        written = list(csv.DictReader(file))
    assert tuple(written[0]) == AGAINST_COLUMNS
    assert written[1]["group"] == f"firm=dpsgd, {C_KEY}=1.0, {SIGMA_KEY}=1.0"
    assert (written[1]["value"], written[1]["others"]) == ("1.0", f"{SIGMA_KEY}=1.0")
    assert float(written[1]["alpha_star"]) == fresh[written[1]["group"]].alpha_star
    document = json.loads(paths["against_json"].read_text())
    assert (document["key"], document["success_level"]) == (C_KEY, 0.9)
    assert document["rows"][4]["others"] == {EPSILON_KEY: 4.0}
    assert document["rows"][4]["alpha_star"] == fresh[document["rows"][4]["group"]].alpha_star


def test_against_reference_group_and_group_that_does_not_reach_s_star(run_record, tmp_path):
    points = critical_mass_against(summarize(against_records(run_record), n_bootstrap=100), EPSILON_KEY)

    # only the ε = 4 groups hold the key; ERM and the σ = 1 groups are references, by label
    assert [point.value for point in points] == [4.0, 4.0, None, None, None, None]
    assert [point.others for point in points[:2]] == [((C_KEY, 0.1),), ((C_KEY, 1.0),)]
    assert [point.summary.label for point in points[2:]] == sorted(point.summary.label for point in points[2:])
    erm = next(point for point in points if point.summary.label == "firm=erm")
    assert erm.others == ()
    unreached = next(point for point in points if point.summary.label == f"firm=dpsgd, {C_KEY}=0.1, {SIGMA_KEY}=1.0")
    assert not unreached.summary.alpha_star.reached

    rows = {row[0]: dict(zip(AGAINST_COLUMNS, row, strict=True)) for row in against_rows(points)}
    assert rows["firm=erm"]["value"] is None and rows["firm=erm"]["others"] is None
    assert rows["firm=erm"]["alpha_star"] == erm.summary.alpha_star.alpha_star
    assert rows[unreached.summary.label] | {"group": None} == {
        "group": None,
        "value": None,
        "others": None,
        "alpha_star": None,
        "alpha_star_low": None,
        "alpha_star_high": None,
        "n_train": None,
        "members_star": None,
        "members_star_low": None,
        "members_star_high": None,
        "n_seeds": 3,
        "reached": False,
    }

    lines = format_against_table(points, EPSILON_KEY).splitlines()
    assert lines[0] == f"α* and m* against {EPSILON_KEY} (S* = 0.9)"
    header = ["target_epsilon", "other", "settings", "α*", "low", "high", "n", "m*", "low", "high", "seeds", "reached"]
    assert lines[1].split() == header
    mass = erm.summary.alpha_star
    erm_line = next(line for line in lines if line.endswith("yes") and "firm=erm" in line)
    assert erm_line.split() == [
        "not",
        "set",
        "firm=erm",
        f"{mass.alpha_star:.3g}",
        f"{mass.low:.3g}",
        f"{mass.high:.3g}",
        "–",
        "–",
        "–",
        "–",
        "3",
        "yes",
    ]
    unreached_line = next(line for line in lines if unreached.summary.label in line)
    assert unreached_line.split()[-5:] == ["–", "–", "–", "3", "no"]
    assert lines[-1] == f"not set: groups whose records lack {EPSILON_KEY} (reference lines in the plot)"

    png = plot_critical_mass_against(points, EPSILON_KEY, tmp_path)
    assert png == tmp_path / "critical_mass_against_target_epsilon.png"
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and len(png.read_bytes()) > 20_000


def test_against_key_resolves_full_keys_and_last_parts_and_says_which_keys_vary(run_record):
    ambiguous = [({"firm": "dpsgd", C_KEY: 1.0, "model.max_grad_norm": 2.0}, 2.0)]
    summaries = summarize(against_records(run_record, AGAINST_SETTINGS + ambiguous), n_bootstrap=0)
    varying = f"firm, {C_KEY}, {SIGMA_KEY}, {EPSILON_KEY}, model.max_grad_norm"

    assert against_key(summaries, "target_epsilon") == against_key(summaries, EPSILON_KEY) == EPSILON_KEY
    assert against_key(summaries, "firm") == "firm"
    with pytest.raises(ValueError) as error:
        against_key(summaries, "max_grad_norm")
    assert str(error.value) == (
        f"--against 'max_grad_norm' is ambiguous: it names {C_KEY}, model.max_grad_norm; pass the full key."
    )
    with pytest.raises(ValueError) as error:
        against_key(summaries, "clip")
    assert str(error.value) == (
        f"--against 'clip' is not a setting swept between these groups: swept keys are {varying}."
    )
    with pytest.raises(ValueError, match=r"'collective.alpha' is not .* \(α and seed are each curve's own axes\)"):
        critical_mass_against(summaries, "collective.alpha")
    (only,) = summarize(against_records(run_record, AGAINST_SETTINGS[:1]), n_bootstrap=0)
    with pytest.raises(ValueError, match=r"swept keys are none \(only α and seed vary\)\.$"):
        against_key([only], "max_grad_norm")


@pytest.mark.parametrize(
    ("against", "message"),
    [
        (
            "epsilon",
            f"--against 'epsilon' is not a setting swept between these groups: swept keys are firm, {C_KEY}, {SIGMA_KEY}, {EPSILON_KEY}.",
        ),
        (
            "seed",
            f"--against 'seed' is not a setting swept between these groups (α and seed are each curve's own axes): swept keys are firm, {C_KEY}, {SIGMA_KEY}, {EPSILON_KEY}.",
        ),
    ],
)
def test_main_against_key_errors_are_one_line_with_exit_code_2_and_write_nothing(
    write_records, run_record, tmp_path, capsys, against, message
):
    root = write_records(against_records(run_record), tmp_path / "runs")
    out = tmp_path / "out"

    assert main([str(root), "--out", str(out), "--bootstrap", "0", "--against", against]) == 2

    captured = capsys.readouterr()
    assert captured.err == f"aca-report: error: {message}\n"
    assert captured.out == ""
    assert not out.exists()


def test_main_against_prints_the_table_and_writes_it_beside_the_report(write_records, run_record, tmp_path, capsys):
    root = write_records(against_records(run_record), tmp_path / "runs")

    assert main([str(root), "--bootstrap", "100", "--against", "max_grad_norm"]) == 0

    out = capsys.readouterr().out
    assert f"α* and m* against {C_KEY} (S* = 0.9)\n" in out
    names = ["report.csv", "report.json", "s_curve.png", "s_curve.pdf"]
    names += [f"critical_mass_against_max_grad_norm.{kind}" for kind in ("csv", "json", "png")]
    for name in names:
        assert f"wrote {root / name}\n" in out
        assert (root / name).is_file()
    with (root / "critical_mass_against_max_grad_norm.csv").open() as file:
        assert [row["reached"] for row in csv.DictReader(file)] == ["False", "True", "True", "True", "True", "True"]

    assert main([str(root), "--distances", "--against", "max_grad_norm"]) == 2
    assert capsys.readouterr().err.startswith("aca-report: error: --against compares α* and m* between groups")


RECIPE_RUNS = Path(__file__).parents[2] / "recipes" / "dp_digits" / "runs"


def test_against_target_epsilon_on_the_dp_digits_recipe_records(tmp_path):
    records = load_records([RECIPE_RUNS / "erm", RECIPE_RUNS / "epsilon"])
    summaries = summarize(records, n_bootstrap=100)
    points = critical_mass_against(summaries, "target_epsilon")

    assert [point.value for point in points] == [0.5, 1, 2, 4, 8, None]
    assert points[-1].summary.label == "experiment=dp_erm_baseline" and points[0].others == ()
    by_label = {summary.label: summary.alpha_star for summary in summaries}
    for point in points:
        assert point.summary.alpha_star == by_label[point.summary.label]
    # the recipe README's table: ε = 0.5 never reaches S* = 0.9, ε = 1 needs α* ≈ 0.096, ERM ≈ 0.020
    assert not points[0].summary.alpha_star.reached
    assert round(points[1].summary.alpha_star.alpha_star, 3) == 0.096
    assert round(points[-1].summary.alpha_star.alpha_star, 3) == 0.020
    png = plot_critical_mass_against(points, "firm.callbacks.dpsgd.target_epsilon", tmp_path)
    assert png.name == "critical_mass_against_target_epsilon.png" and png.stat().st_size > 20_000


def test_main_prints_the_devices_under_the_table(write_records, run_record, tmp_path, capsys):
    records = against_records(run_record, AGAINST_SETTINGS[:1])
    for record in records[:3]:
        record.update(device="NVIDIA H100 80GB HBM3", accelerator_count=1, engine="stacked")
    assert main([str(write_records(records, tmp_path / "runs")), "--bootstrap", "0"]) == 0

    out = capsys.readouterr().out
    table, devices = out.split("\nwrote")[0].rstrip().rsplit("\n", 1)
    assert table.splitlines()[-1].startswith("α* (S* = 0.9): α* = ")  # the last line of the table
    n = len(records)
    assert devices == f"device: NVIDIA H100 80GB HBM3 ×1, stacked engine (3 runs); device not recorded ({n - 3} runs)"


def test_main_wandb_logs_table_and_plots_to_one_report_run_in_the_sweeps_group(
    write_records, run_record, tmp_path, wandb_runs
):
    records = against_records(run_record)
    for record in records:
        record["config"] = {"logger": {"wandb": {"group": "multirun/2026-11-25/20-37-49"}}}
    root = write_records(records, tmp_path / "runs")

    assert main([str(root), "--bootstrap", "50", "--against", "max_grad_norm", "--wandb"]) == 0

    (run,) = wandb_runs
    assert (run.job_type, run.group) == ("report", "multirun/2026-11-25/20-37-49")
    assert run.config["against"] == C_KEY and run.config["n_records"] == len(records)
    assert run.config["devices"] == f"device not recorded ({len(records)} runs)"
    logged = {key: (value["_type"], value.get("nrows")) for key, value in run.summary.items() if key.startswith("aca/")}
    assert (
        logged
        == {
            "aca/report": ("table-file", 6 * len(ALPHAS[1:])),  # one row per group × α
            "aca/s_curve": ("image-file", None),
            "aca/s_curve_chart_table": (
                "table-file",
                6 * len(ALPHAS[1:]),
            ),  # the line chart's data: S against α by group
            "aca/critical_mass_against_max_grad_norm": ("image-file", None),
            "aca/critical_mass_against_max_grad_norm_table": ("table-file", 6),  # one row per group
        }
    )


def test_main_keeps_one_record_per_group_alpha_and_seed_unless_told(make_record, tmp_path, capsys):
    """A stacked and a standard sweep of the same settings: the same 3 seeds, not 6."""
    for launcher in ("basic", "stacked"):
        for job, (alpha, seed) in enumerate((alpha, seed) for alpha in (0.01, 0.1) for seed in SEED_OFFSETS):
            path = tmp_path / launcher / str(job) / "record.json"
            path.parent.mkdir(parents=True)
            record = make_record(alpha, seed, "erm")
            record["sweep"]["hydra/launcher"] = launcher  # Hydra's own choice: the same S(α) curve
            record["config"] = {"output_dir": str(path.parent)}
            path.write_text(json.dumps(record))

    assert main([str(tmp_path / "basic"), str(tmp_path / "stacked"), "--bootstrap", "0"]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith("aca-report: warning: dropped 6 record(s) repeating a (group, alpha, seed)")
    assert f"e.g. {tmp_path / 'stacked' / '0'}, {tmp_path / 'stacked' / '1'}, {tmp_path / 'stacked' / '2'}, ..." in (
        captured.err
    )
    rows = json.loads((tmp_path / "basic" / "report.json").read_text())
    assert [row["n_seeds"] for group in rows["groups"] for row in group["rows"]] == [3, 3]

    assert main([str(tmp_path / "basic"), str(tmp_path / "stacked"), "--bootstrap", "0", "--keep-duplicates"]) == 0
    assert "dropped" not in capsys.readouterr().err
    rows = json.loads((tmp_path / "basic" / "report.json").read_text())
    assert [row["n_seeds"] for group in rows["groups"] for row in group["rows"]] == [6, 6]


def test_worst_group_accuracy_is_reported_for_data_with_groups(tmp_path):
    worst = {(0.0, 0): 0.61, (0.0, 1): 0.65, (0.01, 0): 0.58, (0.01, 1): 0.52}
    records = [
        {
            "alpha": alpha,
            "seed": seed,
            "target_class": 0,
            "metrics": {"aca/success": 0.1 + alpha * 50, "aca/clean_acc": 0.9, "aca/worst_group_acc": acc},
        }
        for (alpha, seed), acc in worst.items()
    ]
    summary = summarize(records, n_bootstrap=50)[0]
    assert [row.worst_group_acc_mean for row in summary.rows] == pytest.approx([0.63, 0.55])
    table = format_table([summary]).splitlines()
    assert "worst group" in table[1] and table[2].split()[-2:] == ["0.630", "2"]
    paths = write_report([summary], tmp_path)
    with paths["csv"].open() as file:
        assert [float(row["worst_group_acc_mean"]) for row in csv.DictReader(file)] == pytest.approx([0.63, 0.55])
    without = summarize([{**r, "metrics": {"aca/success": 0.5}} for r in records], n_bootstrap=50)[0]
    assert "worst group" not in format_table([without]) and without.rows[0].worst_group_acc_mean is None
