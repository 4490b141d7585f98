"""Several collectives' report: S_i over the (α_1, α_2) grid, its table, files, figure and the mixing error."""

import csv
import json

import pytest
from scipy import stats

from lightning_aca.analysis.collectives import (
    format_collectives_table,
    has_several_collectives,
    mean_interval,
    summarize_collectives,
    write_collectives,
)
from lightning_aca.analysis.plot import plot_collectives
from lightning_aca.analysis.report import main
from lightning_aca.runs.records import write_record

GRID = [0.01, 0.05, 0.2]
OFFSETS = {0: -0.03, 1: 0.0, 2: 0.03}  # per seed: the mean over seeds is the offset-free value


def first_success(a, b):
    """Grows with its own α, shrinks as the other collective grows (competing)."""
    return round(min(4 * a, 0.8) + 0.15 - 0.5 * b, 6)


def second_success(a, b):
    return round(min(4 * b, 0.8) + 0.15 - 0.25 * a, 6)


def two_record(a, b, seed, firm="erm"):
    """A several-collective record as aca-run writes it (Karan et al. 2025 grid point)."""
    sweep = {"collective.collectives.first.alpha": a, "collective.collectives.second.alpha": b, "seed": seed}
    sweep["firm"] = firm
    entries = [
        {"name": "first", "alpha": a, "strategy": "SignalPlanting", "target_class": 0, "members": 0, "xi": None},
        {"name": "second", "alpha": b, "strategy": "SignalPlanting", "target_class": 1, "members": 0, "xi": None},
    ]
    offset = OFFSETS[seed]
    metrics = {
        "aca/success/first": first_success(a, b) + offset,
        "aca/success/second": second_success(a, b) - offset,
        "aca/clean_acc": 0.9 + offset,
    }
    return {
        "schema_version": 1,
        "engine": "stacked",
        "overrides": [f"{key}={value}" for key, value in sweep.items()],
        "sweep": sweep,
        "alpha": None,
        "seed": seed,
        "strategy": None,
        "target_class": None,
        "metrics": metrics,
        "epsilon": None,
        "theory": {"xi": None, "n_train": 1347},
        "config": {},
        "wall_time_s": 1.0,
        "versions": {},
        "collectives": entries,
    }


@pytest.fixture
def records():
    return [two_record(a, b, seed, firm) for firm in ("erm", "dpsgd") for a in GRID for b in GRID for seed in OFFSETS]


@pytest.fixture
def sweep(tmp_path, records):
    for i, record in enumerate(records):
        write_record(record, tmp_path / "sweep" / str(i))
    return tmp_path / "sweep"


def test_mean_interval_is_students_t_and_clipped():
    values = [0.2, 0.4, 0.9]
    mean, low, high = mean_interval(values)
    half = stats.t.ppf(0.975, 2) * stats.sem(values)
    assert mean == pytest.approx(0.5) and low == pytest.approx(0.5 - half if half < 0.5 else 0.0)
    assert low == 0.0 and high == 1.0  # the interval is wider than [0, 1]
    mean, low, high = mean_interval([0.5, 0.52, 0.54], confidence=0.9)
    half = stats.t.ppf(0.95, 2) * stats.sem([0.5, 0.52, 0.54])
    assert mean == pytest.approx(0.52) and (low, high) == pytest.approx((0.52 - half, 0.52 + half))
    with pytest.raises(ValueError, match="confidence must be"):
        mean_interval([0.1, 0.2], confidence=1.0)


def test_cells_hold_the_known_means_per_collective(records):
    summaries = summarize_collectives(records)
    assert [s.label for s in summaries] == ["firm=dpsgd", "firm=erm"]
    erm = summaries[1]
    assert erm.names == ("first", "second") and len(erm.cells) == 9
    assert [cell.alphas for cell in erm.cells] == [(a, b) for a in GRID for b in GRID]
    for cell in erm.cells:
        a, b = cell.alphas
        assert cell.n_seeds == 3
        assert cell.success_mean == pytest.approx((first_success(a, b), second_success(a, b)))
        half = stats.t.ppf(0.975, 2) * 0.03 / 3**0.5  # three seeds at ±0.03: sample std 0.03
        assert cell.success_low[0] == pytest.approx(max(first_success(a, b) - half, 0))
        assert cell.success_high[1] == pytest.approx(min(second_success(a, b) + half, 1))
        assert cell.clean_acc_mean == pytest.approx(0.9)


def test_table_prints_each_cell(records):
    text = format_collectives_table(summarize_collectives(records))
    erm = text.split("\n\n")[1].splitlines()
    assert erm[0] == "firm=erm: S_i mean [95% interval over seeds]"
    assert erm[1].split() == ["α", "first", "α", "second", "S", "first", "S", "second", "clean", "acc", "seeds"]
    cells = erm[2 + 3 * 1 + 2].split()  # α first = 0.05, α second = 0.2
    assert cells[:3] == ["0.05", "0.2", f"{first_success(0.05, 0.2):.3f}"] and cells[-2:] == ["0.900", "3"]
    assert cells[5] == f"{second_success(0.05, 0.2):.3f}"


def test_csv_json_and_figures_are_written(records, tmp_path):
    summaries = summarize_collectives(records)
    paths = write_collectives(summaries, tmp_path)
    with paths["collectives_csv"].open() as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0])[:5] == ["group", "alpha_first", "alpha_second", "S_first", "S_first_low"]
    assert list(rows[0])[-2:] == ["clean_acc_mean", "n_seeds"] and len(rows) == 18
    row = next(
        r for r in rows if r["group"] == "firm=erm" and r["alpha_first"] == "0.2" and r["alpha_second"] == "0.01"
    )
    assert float(row["S_first"]) == pytest.approx(first_success(0.2, 0.01))
    assert float(row["S_second"]) == pytest.approx(second_success(0.2, 0.01)) and row["n_seeds"] == "3"
    document = json.loads(paths["collectives_json"].read_text())
    assert [g["figure"] for g in document["groups"]] == ["collectives_1.png", "collectives_2.png"]
    assert document["groups"][1]["sweep"] == {"firm": "erm"} and document["groups"][1]["names"] == ["first", "second"]
    figures = plot_collectives(summaries, tmp_path)
    assert sorted(p.name for p in figures.values()) == ["collectives_1.png", "collectives_2.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 20_000 for p in figures.values())


def test_one_and_several_collective_records_are_not_mixed(records, run_record):
    single = run_record(0.1, 0, metrics={"aca/success": 0.4})
    assert has_several_collectives(records) and not has_several_collectives([single])
    with pytest.raises(
        ValueError, match=r"mix 1 one-collective runs .* with 54 several-collective runs \(collectives first, second"
    ):
        has_several_collectives([*records, single])


def test_aca_report_on_a_two_collective_sweep(sweep, capsys, run_record):
    assert main([str(sweep)]) == 0
    out = capsys.readouterr().out
    assert "firm=erm: S_i mean [95% interval over seeds]" in out and "wrote " in out
    for name in ("collectives.csv", "collectives.json", "collectives_1.png", "collectives_2.png"):
        assert (sweep / name).is_file()
    assert not (sweep / "report.csv").exists()
    assert main([str(sweep), "--against", "firm"]) == 2
    assert "--against works on one-collective S(α) curves" in capsys.readouterr().err
    write_record(run_record(0.1, 0), sweep / "single")
    assert main([str(sweep)]) == 2
    err = capsys.readouterr().err
    assert "one-collective runs" in err and "several-collective runs" in err
