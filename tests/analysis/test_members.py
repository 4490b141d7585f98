import csv
import itertools
import json
import math
import re

import numpy as np
import pytest

from lightning_aca.analysis.report import main
from lightning_aca.analysis.summary import critical_mass_against, size_exponents, summarize

SIZES = (1000, 2000, 4000)
ALPHAS = np.logspace(-3, -0.7, 25).tolist()
SEED_OFFSETS = {0: -0.02, 1: 0.0, 2: 0.02}
CENTRE, WIDTH = 60.0, 8.0
#: S(m) = logistic((m − 60)/8) reaches 0.9 at m* = 60 + 8 ln 9 whatever n is
TRUE_MEMBERS_STAR = CENTRE + WIDTH * math.log(9)
DATA_KEY = "data.datamodule.n_train"


def success(members):
    return 1.0 / (1.0 + math.exp(-(members - CENTRE) / WIDTH))


def size_records(run_record, law="members"):
    """Nested subsets of n = 1000/2000/4000 points, swept by DATA_KEY, where S depends on the members m = α·n only
    (``law="fraction"``: on α only, as the members of n = 1000 would)."""
    records = []
    for n in SIZES:
        for alpha in ALPHAS:
            members = round(alpha * n)
            level = success(members if law == "members" else alpha * 1000)
            for seed, offset in SEED_OFFSETS.items():
                metrics = {"aca/success": min(max(level + offset, 0.0), 1.0), "aca/members": float(members)}
                record = run_record(alpha, seed, "erm", metrics, theory={"xi": None, "n_train": n})
                record["sweep"] = {"collective.alpha": alpha, "seed": seed, DATA_KEY: n}
                records.append(record)
    return records


def test_members_star_is_flat_in_n_while_alpha_star_falls_as_one_over_n(run_record):
    points = critical_mass_against(summarize(size_records(run_record), n_bootstrap=200), "n_train")

    # the swept data-size override maps one to one onto n: one series, no other settings
    assert [point.value for point in points] == list(SIZES)
    assert all(point.others == () for point in points)
    alpha_stars = [point.summary.alpha_star for point in points]
    members_stars = [point.summary.members_star for point in points]
    for n, alpha_star, members_star in zip(SIZES, alpha_stars, members_stars, strict=True):
        assert members_star.n_train == n
        assert members_star.members_star == pytest.approx(alpha_star.alpha_star * n)
        assert (members_star.low, members_star.high) == pytest.approx((alpha_star.low * n, alpha_star.high * n))
        assert members_star.members_star == pytest.approx(TRUE_MEMBERS_STAR, rel=0.1)
    # α* halves as n doubles, its intervals apart; one member count lies in every n's m* interval
    ratios = [a.alpha_star / b.alpha_star for a, b in itertools.pairwise(alpha_stars)]
    assert ratios == pytest.approx([2.0, 2.0], rel=0.1)
    assert alpha_stars[0].low > alpha_stars[1].high and alpha_stars[1].low > alpha_stars[2].high
    assert max(m.low for m in members_stars) <= min(m.high for m in members_stars)


def test_main_against_n_train_writes_the_table_and_the_plot(write_records, run_record, tmp_path, capsys):
    records = size_records(run_record)
    root = write_records(records, tmp_path / "runs")
    expected = {p.value: p.summary for p in critical_mass_against(summarize(records, n_bootstrap=100), "n_train")}

    assert main([str(root), "--bootstrap", "100", "--against", "n_train"]) == 0

    out = capsys.readouterr().out
    assert "α* and m* against n_train (S* = 0.9)\n" in out
    assert re.search(r"m\* ∝ n\^b: b = -?0\.0\d ± 0\.\d\d over n = 1000, 2000, 4000 \(b = 0: a constant number", out)
    header = next(line for line in out.splitlines() if line.lstrip().startswith("α  members"))
    assert header.split() == ["α", "members", "S", "mean", "±", "std", "clean", "acc", "seeds"]
    for kind in ("csv", "json", "png"):
        path = root / f"critical_mass_against_n_train.{kind}"
        assert f"wrote {path}\n" in out and path.is_file()
    with (root / "critical_mass_against_n_train.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert [int(row["value"]) for row in rows] == list(SIZES)
    for row in rows:
        summary = expected[int(row["value"])]
        assert float(row["alpha_star"]) == pytest.approx(summary.alpha_star.alpha_star)
        assert float(row["members_star"]) == pytest.approx(summary.members_star.members_star)
        assert float(row["members_star_low"]) == pytest.approx(summary.members_star.low)
        assert float(row["members_star_high"]) == pytest.approx(summary.members_star.high)
        assert int(row["n_train"]) == int(row["value"]) and row["others"] == ""
    document = json.loads((root / "critical_mass_against_n_train.json").read_text())
    assert document["key"] == "n_train"
    assert [row["members_star"] for row in document["rows"]] == pytest.approx([float(r["members_star"]) for r in rows])
    (fit,) = document["size_exponents"]
    assert fit["sizes"] == list(SIZES) and abs(fit["b"]) < 0.05 and fit["others"] == {}
    report = json.loads((root / "report.json").read_text())
    assert [group["n_train"] for group in report["groups"]] == list(SIZES)
    assert report["groups"][0]["rows"][0]["members_mean"] == round(ALPHAS[0] * SIZES[0])
    assert report["groups"][0]["members_star"]["members_star"] == pytest.approx(TRUE_MEMBERS_STAR, rel=0.1)
    png = (root / "critical_mass_against_n_train.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 20_000


def test_against_a_swept_setting_other_than_n_splits_series_by_it(run_record):
    records = size_records(run_record)
    for record in records:
        record["sweep"]["firm"] = "erm"
    extra = [r | {"sweep": r["sweep"] | {"firm": "dpsgd"}} for r in records if r["theory"]["n_train"] == 1000]
    points = critical_mass_against(summarize(records + extra, n_bootstrap=0), "n_train")

    assert [(point.value, point.others) for point in points] == [
        (1000, (("firm", "dpsgd"),)),
        *((n, (("firm", "erm"),)) for n in SIZES),
    ]


def test_main_against_a_key_no_record_has_is_one_line_with_exit_code_2(write_records, run_record, tmp_path, capsys):
    root = write_records(size_records(run_record), tmp_path / "runs")
    out = tmp_path / "out"

    assert main([str(root), "--out", str(out), "--bootstrap", "0", "--against", "target_epsilon"]) == 2

    captured = capsys.readouterr()
    assert captured.err == (
        "aca-report: error: --against 'target_epsilon' is not a setting swept between these groups: "
        f"swept keys are {DATA_KEY}, n_train.\n"
    )
    assert captured.out == "" and not out.exists()


@pytest.mark.parametrize(("law", "b"), [("members", 0.0), ("fraction", 1.0)])
def test_the_size_exponent_tells_a_constant_count_from_a_constant_fraction(run_record, law, b):
    points = critical_mass_against(summarize(size_records(run_record, law), n_bootstrap=0), "n_train")
    (fit,) = size_exponents(points)
    assert fit.others == () and fit.sizes == SIZES
    assert fit.b == pytest.approx(b, abs=0.05) and fit.stderr < 0.05
    assert size_exponents(points[:1]) == []  # one size: no line
