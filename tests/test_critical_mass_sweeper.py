"""``hydra/sweeper=critical_mass``: rounds, stopping, "not reached", settings, resume, bad input.

Most tests run ``aca-run``'s Hydra app in this process with the basic launcher and a stand-in
``run_experiment`` that writes a record at once from a known S(α) curve plus noise, so each
search takes seconds; the last one runs the real quickstart.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from lightning_aca import cli
from lightning_aca.experiment import overrides_of
from lightning_aca.runs.records import RECORD_NAME, load_records, sweep_params, write_record

ROOT = Path(__file__).resolve().parent.parent
QUIET = ["~hydra.callbacks.report"]


def alpha_50(cfg):
    """The fake curve's S = 0.5 point: 0.006 at one epoch, 0.02 at two (a second swept setting)."""
    return {1: 0.006, 2: 0.02}.get(cfg.trainer.max_epochs, 0.006)


def success(alpha, seed, center, ceiling=1.0):
    rng = np.random.default_rng([seed, round(alpha * 1e6)])
    clean = ceiling / (1.0 + math.exp(-3.0 * (math.log(alpha) - math.log(center))))
    return float(np.clip(clean + rng.normal(0, 0.02), 0, 1))


def truth(center):
    return center * 9 ** (1 / 3)  # where 1 / (1 + exp(-3 log(α / center))) = 0.9


@pytest.fixture(autouse=True)
def _restore_hydra_and_logging(hydra_in_process):
    """Every test here runs an in-process multirun (see ``hydra_in_process`` in conftest.py)."""


@pytest.fixture
def objective(monkeypatch):
    """A stand-in ``run_experiment``: skips a finished run as aca-run does, else writes S from the fake curve."""
    state = {"trained": [], "ceiling": 1.0, "fail_after": None}

    def run_experiment(cfg):
        existing = Path(cfg.output_dir) / RECORD_NAME
        if existing.exists():
            return json.loads(existing.read_text())
        if state["fail_after"] is not None and len(state["trained"]) >= state["fail_after"]:
            raise KeyboardInterrupt  # the search is killed mid-round
        state["trained"].append((cfg.collective.alpha, cfg.seed, cfg.trainer.max_epochs))
        overrides = overrides_of(cfg)
        record = {
            "schema_version": 1,
            "alpha": float(cfg.collective.alpha),
            "seed": int(cfg.seed),
            "overrides": overrides,
            "sweep": sweep_params(overrides),
            "metrics": {"aca/success": success(cfg.collective.alpha, cfg.seed, alpha_50(cfg), state["ceiling"])},
            "config": OmegaConf.to_container(cfg, resolve=True),
        }
        write_record(record, Path(cfg.output_dir))
        return record

    monkeypatch.setattr(cli, "run_experiment", run_experiment)
    return state


def _aca_run(monkeypatch, *args):
    monkeypatch.setattr(sys, "argv", ["aca-run", "-m", *args, *QUIET])
    cli._hydra_main()


def _summary(sweep):
    return json.loads((sweep / "critical_mass.json").read_text())


def test_quickstart_search_finds_alpha_star_within_tolerance_and_stops(tmp_path, monkeypatch, objective, capsys):
    sweep = tmp_path / "sweep"
    _aca_run(monkeypatch, "experiment=quickstart", "hydra/sweeper=critical_mass", f"hydra.sweep.dir={sweep}")
    out = capsys.readouterr().out
    found = _summary(sweep)
    # the range and seeds are the quickstart's, S* is report.success_level
    assert found["alpha_range"] == [0.0025, 0.05] and found["seeds"] == [0, 1] and found["success_level"] == 0.9
    (setting,) = found["settings"]
    fit = setting["alpha_star"]
    assert setting["status"] == "converged"
    assert fit["low"] >= 0.75 * fit["alpha_star"] and fit["high"] <= 1.25 * fit["alpha_star"]
    assert abs(fit["alpha_star"] / truth(0.006) - 1) <= 0.25
    # a third of the 10-point grid's 20 runs or so, each an ordinary record in its override directory
    assert setting["runs"] == len(objective["trained"]) <= 8
    records = load_records([sweep])
    assert len(records) == setting["runs"]
    assert all((sweep / f"collective.alpha={r['alpha']!r},seed={r['seed']}" / RECORD_NAME).exists() for r in records)
    assert "critical_mass: round 1 | experiment=quickstart: no runs yet → 3 new: α = 0.005287 (seed 0)" in out
    assert "critical_mass: round 2 | experiment=quickstart: 3 runs, bracket [" in out
    assert f"experiment=quickstart: converged after {setting['runs']} runs: α* = " in out


def test_each_setting_gets_its_own_search_and_not_reached_is_reported(tmp_path, monkeypatch, objective, capsys):
    sweep = tmp_path / "sweep"
    objective["ceiling"] = 0.8
    _aca_run(
        monkeypatch,
        "hydra/sweeper=critical_mass",
        "hydra.sweeper.alpha_range=[0.002,0.1]",
        "hydra.sweeper.seeds=3",
        "trainer.max_epochs=1,2",
        f"hydra.sweep.dir={sweep}",
    )
    found = _summary(sweep)
    assert [s["setting"] for s in found["settings"]] == ["trainer.max_epochs=1", "trainer.max_epochs=2"]
    assert all(s["status"] == "not reached" for s in found["settings"])
    assert {(a, s) for a, s, epochs in objective["trained"] if a == 0.1} == {(0.1, 0), (0.1, 1), (0.1, 2)}
    # 3 runs at the start, 4 up to the range's end (points_per_round), the other 2 seeds there
    assert "trainer.max_epochs=2: not reached after 9 runs: not reached (max S = " in capsys.readouterr().out


def test_two_settings_find_their_own_alpha_star(tmp_path, monkeypatch, objective):
    sweep = tmp_path / "sweep"
    _aca_run(
        monkeypatch,
        "hydra/sweeper=critical_mass",
        "collective.alpha=interval(0.002,0.2)",
        "seed=0,1",
        "trainer.max_epochs=1,2",
        f"hydra.sweep.dir={sweep}",
    )
    found = _summary(sweep)
    assert found["alpha_range"] == [0.002, 0.2]
    for setting, center in zip(found["settings"], (0.006, 0.02), strict=True):
        assert setting["status"] == "converged"
        assert abs(setting["alpha_star"]["alpha_star"] / truth(center) - 1) <= 0.25


def test_a_killed_search_resumes_from_its_records(tmp_path, monkeypatch, objective, capsys):
    sweep = tmp_path / "sweep"
    args = ["experiment=quickstart", "hydra/sweeper=critical_mass", f"hydra.sweep.dir={sweep}"]
    objective["fail_after"] = 4
    with pytest.raises(KeyboardInterrupt):
        _aca_run(monkeypatch, *args)
    first = list(objective["trained"])
    assert len(first) == 4 and len(load_records([sweep])) == 4
    objective["fail_after"] = None
    capsys.readouterr()
    _aca_run(monkeypatch, *args)
    # the finished runs count and are not trained again; the search ends where an unbroken one does
    assert len(set(objective["trained"])) == len(objective["trained"])
    assert "critical_mass: round 1 | experiment=quickstart: 4 runs, bracket [" in capsys.readouterr().out
    resumed = _summary(sweep)["settings"][0]
    uninterrupted = tmp_path / "again"
    _aca_run(monkeypatch, "experiment=quickstart", "hydra/sweeper=critical_mass", f"hydra.sweep.dir={uninterrupted}")
    assert resumed["alpha_star"] == _summary(uninterrupted)["settings"][0]["alpha_star"]
    assert resumed["status"] == "converged"


def test_a_run_that_writes_no_record_stops_the_search(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "run_experiment", lambda cfg: None)
    with pytest.raises(SystemExit):
        _aca_run(monkeypatch, "experiment=quickstart", "hydra/sweeper=critical_mass", f"hydra.sweep.dir={tmp_path}")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "hydra.sweeper.alpha_range is not set and collective.alpha is not swept"),
        (["hydra.sweeper.alpha_range=[0.1,0.01]"], "hydra.sweeper.alpha_range must be [low, high] with low < high"),
        (["experiment=quickstart", "hydra.sweeper.tolerance=1.5"], "hydra.sweeper.tolerance must be a finite number"),
        (
            ["experiment=quickstart", "hydra.sweeper.seeds=0"],
            "hydra.sweeper.seeds must be a list of seeds or a positive",
        ),
        (
            ["experiment=quickstart", "collective=two_collectives"],
            "collective=two_collectives has no single collective.alpha",
        ),
        (["experiment=quickstart", "collective=none"], "collective=none has no collective"),
        (["experiment=quickstart", "collective=signal_planting,none"], "collective=none has no collective"),
    ],
)
def test_bad_sweeper_settings_name_the_key(tmp_path, args, message):
    proc = subprocess.run(
        [sys.executable, "-m", "lightning_aca.cli", "-m", "hydra/sweeper=critical_mass", *args, *QUIET],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.splitlines()  # one line, no traceback
    assert line.startswith("aca-run: error: ") and message in line
    assert not list(tmp_path.rglob(RECORD_NAME))


@pytest.mark.slow
def test_real_quickstart_search_locates_alpha_star(tmp_path):
    sweep = tmp_path / "sweep"
    command = ["-m", "experiment=quickstart", "hydra/sweeper=critical_mass", f"hydra.sweep.dir={sweep}"]
    proc = subprocess.run(
        [sys.executable, "-m", "lightning_aca.cli", *command],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (setting,) = _summary(sweep)["settings"]
    # fewer runs than the 10-point grid's 20; the quickstart's grid puts alpha* near 0.02
    assert setting["alpha_star"]["reached"] and setting["runs"] < 20
    assert 0.01 <= setting["alpha_star"]["alpha_star"] <= 0.05
    assert len(load_records([sweep])) == setting["runs"]
    assert "critical_mass: experiment=quickstart: " in proc.stdout and "α* (S* = 0.9)" in proc.stdout


def test_several_alpha_a_round_take_fewer_rounds_than_bisection(tmp_path, monkeypatch, objective, capsys):
    """α* ≈ 0.042 lies above the first round's α: bisection brackets it with the range's end and then
    bisects, the default's four points a round bracket and cut it in one round."""
    found = {}
    for k in (1, 4):
        sweep = tmp_path / f"k{k}"
        args = [
            "experiment=quickstart",
            "trainer.max_epochs=2",
            "hydra/sweeper=critical_mass",
            f"hydra.sweep.dir={sweep}",
        ]
        _aca_run(monkeypatch, *args, *([f"hydra.sweeper.points_per_round={k}"] if k == 1 else []))
        found[k] = _summary(sweep)
        (setting,) = found[k]["settings"]
        assert setting["status"] == "converged" and abs(setting["alpha_star"]["alpha_star"] / truth(0.02) - 1) <= 0.25
    assert found[1]["points_per_round"] == 1 and found[4]["points_per_round"] == 4  # 4: the default
    assert [(found[k]["rounds"], found[k]["settings"][0]["runs"]) for k in (1, 4)] == [(4, 7), (3, 8)]
    assert "tolerance ±25%, up to 4 α a round, at most 40 runs a setting" in capsys.readouterr().out


@pytest.mark.parametrize("bad", ["0", "-1", "2.5", "true"])
def test_a_bad_points_per_round_names_the_key_and_the_fix(tmp_path, bad):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lightning_aca.cli",
            "-m",
            "experiment=quickstart",
            "hydra/sweeper=critical_mass",
            f"hydra.sweeper.points_per_round={bad}",
            *QUIET,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith("aca-run: error: hydra.sweeper.points_per_round must be a positive int")
    assert "give a whole number such as 3" in line
    assert not list(tmp_path.rglob(RECORD_NAME))
