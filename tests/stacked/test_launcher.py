"""``hydra/launcher=stacked``: grouping, the standard path, resume, layout, callbacks.

Most tests run ``aca-run``'s Hydra app in this process with a stand-in engine (records written at
once, calls remembered) and a stand-in ``run_experiment`` for the standard path, so they check the
launcher's own work in seconds; the last one runs the real engine end to end.
"""

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_module
from omegaconf import DictConfig, OmegaConf, open_dict

from hydra_plugins.aca_stacked_launcher._core import engine_config, group_key
from lightning_aca import cli
from lightning_aca.experiment import overrides_of, validate
from lightning_aca.runs.records import RECORD_NAME, sweep_params, write_record
from lightning_aca.stacked import STACKABLE_KEYS
from lightning_aca.stacked.config import plain

GDRO_REASON = "Group DRO is trained by the standard path"
TINY = ["trainer.max_epochs=1", "quiet=true", "~hydra.callbacks.report"]


def _record(cfg: DictConfig, engine: str, overrides: list[str], config: dict | None = None) -> dict:
    return {
        "schema_version": 1,
        "alpha": float(cfg.collective.alpha),
        "seed": int(cfg.seed),
        "engine": engine,
        "overrides": overrides,
        "sweep": sweep_params(overrides),
        "metrics": {"aca/success": 0.5, "aca/clean_acc": 0.9},
        "config": OmegaConf.to_container(cfg, resolve=True) if config is None else config,
    }


@pytest.fixture(autouse=True)
def _restore_hydra_and_logging(hydra_in_process):
    """Every test here runs an in-process multirun (see ``hydra_in_process`` in conftest.py)."""


@pytest.fixture
def engine(monkeypatch):
    """A stand-in ``lightning_aca.stacked``: writes each config's record at once, remembers the calls."""
    fake = types.ModuleType("lightning_aca.stacked")
    fake.STACKABLE_KEYS = STACKABLE_KEYS
    fake.calls = []

    def stackable_reason(cfg):
        return GDRO_REASON if cfg.firm.name == "gdro" else None

    def run_stacked(cfgs, device=None, max_models=None):
        fake.calls.append({"cfgs": list(cfgs), "device": device, "max_models": max_models})
        records = []
        for cfg in cfgs:
            assert Path(cfg.output_dir).is_absolute() and OmegaConf.to_container(cfg, resolve=True)
            # as the engine records a job: its overrides and resolved config from what the launcher hands over
            overrides = [str(o) for o in OmegaConf.select(cfg, "hydra.overrides.task", default=[])]
            records.append(_record(cfg, "stacked", overrides, plain(cfg)))
            write_record(records[-1], Path(cfg.output_dir))
        return records

    fake.stackable_reason, fake.run_stacked = stackable_reason, run_stacked
    monkeypatch.setitem(sys.modules, "lightning_aca.stacked", fake)
    return fake


@pytest.fixture
def standard(monkeypatch):
    """A stand-in ``run_experiment`` (the standard path's work): skips as aca-run does, remembers the rest."""
    trained = []

    def run_experiment(cfg):
        existing = Path(cfg.output_dir) / RECORD_NAME
        if existing.exists():
            print(f"aca-run: skip, record exists: {existing}", flush=True)
            return json.loads(existing.read_text())
        validate(cfg)
        trained.append(cfg)
        record = _record(cfg, "trainer", overrides_of(cfg))
        write_record(record, Path(cfg.output_dir))
        return record

    monkeypatch.setattr(cli, "run_experiment", run_experiment)
    return trained


def _aca_run(monkeypatch, *args):
    monkeypatch.setattr(sys, "argv", ["aca-run", "-m", *args])
    cli._hydra_main()


def _alphas(cfgs):
    return sorted((c.collective.alpha, c.seed) for c in cfgs)


def _composed(overrides: list[str], sweep: Path, num: int) -> DictConfig:
    """A job's engine config, as the launcher builds it from the job's composed config (hydra node included)."""
    cfg = compose("config", overrides=[*overrides, f"hydra.sweep.dir={sweep}"], return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(sweep / str(num))
        cfg.hydra.job.override_dirname = ",".join(overrides)
        cfg.hydra.job.num = num
    return engine_config(cfg)


def test_group_key_ignores_stackable_keys_and_per_job_hydra_values(tmp_path):
    base = ["firm=dpsgd", "logger=wandb", "firm.callbacks.dpsgd.target_epsilon=1"]
    changes = [
        [],
        ["collective.alpha=0.2"],
        ["seed=3"],
        ["collective.seed=5"],
        ["firm.callbacks.dpsgd.target_epsilon=8"],
        ["firm.callbacks.dpsgd.max_grad_norm=0.1"],
        ["firm.callbacks.dpsgd.noise_multiplier=2"],
        ["model.lr=0.3"],
    ]
    others = [["model=cnn"], ["data=synthetic"], ["trainer.max_epochs=7"], ["firm.callbacks.dpsgd.delta=1e-6"]]
    with initialize_config_module("lightning_aca.conf", version_base="1.3"):
        keys = [
            group_key(_composed([*base, *change], tmp_path, i), STACKABLE_KEYS)
            for i, change in enumerate(changes + others)
        ]
    # the csv and W&B loggers' save_dir and run name differ per job, yet the first eight share one stack
    assert len(set(keys[: len(changes)])) == 1
    assert len(set(keys)) == 1 + len(others)


def test_jobs_differing_in_stackable_keys_are_one_stack_with_their_own_directories(
    tmp_path, monkeypatch, engine, standard, capsys
):
    sweep = tmp_path / "sweep"
    _aca_run(
        monkeypatch,
        *TINY,
        "firm=dpsgd",
        "logger=wandb",
        "collective.alpha=0.01,0.05",
        "model.lr=0.05,0.1",
        "hydra.launcher.max_models=3",
        "hydra.launcher.device=cpu",
        f"hydra.sweep.dir={sweep}",
        "hydra/launcher=stacked",
    )
    (call,) = engine.calls
    assert standard == [] and call["device"] == "cpu" and call["max_models"] == 3  # run_stacked chunks
    cfgs = call["cfgs"]
    assert sorted((c.collective.alpha, c.model.lr) for c in cfgs) == [
        (a, lr) for a in (0.01, 0.05) for lr in (0.05, 0.1)
    ]
    # each config as written (equal outside the stackable keys, as the engine checks) ...
    written = {json.dumps(OmegaConf.to_container(c.logger), sort_keys=True) for c in cfgs}
    assert len(written) == 1 and "${output_dir}" in written.pop()
    # ... resolving to its own output directory and Hydra values
    assert len({c.output_dir for c in cfgs}) == 4
    assert all(c.logger.csv.save_dir == c.output_dir and Path(c.output_dir).parent == sweep for c in cfgs)
    assert all(c.logger.wandb.name == Path(c.output_dir).name and c.logger.wandb.group == str(sweep) for c in cfgs)
    assert all(c.hydra.sweep.dir == str(sweep) for c in cfgs)  # what the engine's loggers name as the sweep
    # and its own overrides, which its record keeps
    assert all(f"collective.alpha={c.collective.alpha}" in c.hydra.overrides.task for c in cfgs)
    assert all(f"model.lr={c.model.lr}" in c.hydra.overrides.task for c in cfgs)
    out = capsys.readouterr().out
    assert "4 jobs: 4 in 1 stack(s) on cpu (at most 3 models a stack), 0 on the standard path, 0 done" in out
    assert "stack 1/1: 4 runs (collective.alpha, model.lr varying)" in out


def test_another_model_or_data_forms_another_stack(tmp_path, monkeypatch, engine, standard):
    _aca_run(
        monkeypatch,
        *TINY,
        "model=mlp,linear",
        "data=digits,synthetic",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "hydra/launcher=stacked",
    )
    assert len(engine.calls) == 4 and standard == []
    kinds = [{(c.model.arch, c.data.datamodule._target_) for c in call["cfgs"]} for call in engine.calls]
    assert all(len(k) == 1 for k in kinds) and len(set().union(*kinds)) == 4


def test_group_dro_jobs_run_through_the_standard_path_with_the_reason(tmp_path, monkeypatch, engine, standard, capsys):
    sweep = tmp_path / "sweep"
    _aca_run(
        monkeypatch,
        *TINY,
        "data=spurious",
        "firm=erm,gdro",
        "collective.alpha=0.01,0.05",
        f"hydra.sweep.dir={sweep}",
        "hydra/launcher=stacked",
    )
    (call,) = engine.calls
    assert {c.firm.name for c in call["cfgs"]} == {"erm"} and len(call["cfgs"]) == 2
    assert {c.firm.name for c in standard} == {"gdro"} and _alphas(standard) == [(0.01, 0), (0.05, 0)]
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if "not stacked" in line)
    assert f"not stacked ({GDRO_REASON}), 2 on the standard path" in line
    named = line.split(": ")[-1].split(" | ")
    assert sorted(named) == [f"collective.alpha={a},data=spurious,firm=gdro,trainer.max_epochs=1" for a in (0.01, 0.05)]
    assert len(list(sweep.glob("*/record.json"))) == 4


def test_a_killed_sweep_rerun_trains_only_the_missing_runs(tmp_path, monkeypatch, engine, standard, capsys):
    sweep = tmp_path / "sweep"
    args = [*TINY, "collective.alpha=0.01,0.05,0.1", f"hydra.sweep.dir={sweep}", "hydra/launcher=stacked"]
    _aca_run(monkeypatch, *args)
    assert len(engine.calls[0]["cfgs"]) == 3
    (lost,) = sweep.glob("collective.alpha=0.05,*/record.json")
    lost.unlink()
    capsys.readouterr()
    _aca_run(monkeypatch, *args)
    assert _alphas(engine.calls[1]["cfgs"]) == [(0.05, 0)] and lost.exists()
    out = capsys.readouterr().out
    assert out.count("skip, record exists") == 2 and "1 in 1 stack(s)" in out and "2 done" in out
    assert standard == []  # the skipped jobs went through run_experiment's skip, nothing trained


def _tree(sweep: Path) -> dict[str, str]:
    return {
        str(p.relative_to(sweep)): p.read_text() for p in sorted(sweep.rglob("*")) if p.is_file() and p.suffix != ".log"
    }


def test_output_directories_hydra_files_and_records_match_the_basic_launcher(tmp_path, monkeypatch, engine, standard):
    args = [*TINY, "collective.alpha=0.01,0.05", "logger=none"]
    _aca_run(monkeypatch, *args, f"hydra.sweep.dir={tmp_path / 'basic'}")
    _aca_run(monkeypatch, *args, f"hydra.sweep.dir={tmp_path / 'stacked'}", "hydra/launcher=stacked")
    basic, stacked = _tree(tmp_path / "basic"), _tree(tmp_path / "stacked")
    assert sorted(basic) == sorted(stacked)
    assert sorted(p for p in basic if p.endswith("record.json")) == [
        f"collective.alpha={a},logger=none,trainer.max_epochs=1/record.json" for a in (0.01, 0.05)
    ]
    logs = {str(p.relative_to(tmp_path / "basic")) for p in (tmp_path / "basic").rglob("*.log")}
    assert logs == {str(p.relative_to(tmp_path / "stacked")) for p in (tmp_path / "stacked").rglob("*.log")}
    for path, text in basic.items():
        if path.endswith(("config.yaml", "overrides.yaml")) and path != "multirun.yaml":
            assert stacked[path] == text, path
        if path.endswith("hydra.yaml"):
            mine, theirs = (yaml.safe_load(t)["hydra"] for t in (stacked[path], text))
            assert mine["job"] == theirs["job"]
            for h, root in ((mine, "stacked"), (theirs, "basic")):
                assert Path(h["runtime"]["output_dir"]) == tmp_path / root / Path(path).parent.parent
        if path.endswith("record.json"):
            mine, theirs = json.loads(stacked[path]), json.loads(text)
            assert mine["overrides"] == theirs["overrides"] and mine["sweep"] == theirs["sweep"]
            here = json.dumps(theirs["config"]).replace(str(tmp_path / "basic"), str(tmp_path / "stacked"))
            assert mine["config"] == json.loads(here)  # aca-run's resolved config, in its own directory
            assert mine["engine"] == "stacked" and theirs["engine"] == "trainer"


def test_hydra_callbacks_see_every_job_and_the_sweep_end(tmp_path, monkeypatch, engine, standard):
    seen = []
    monkeypatch.setattr(cli.SweepReport, "on_multirun_end", lambda self, config, **kw: seen.append("end"))
    monkeypatch.setattr(
        cli.SweepReport,
        "on_job_end",
        lambda self, config, job_return, **kw: seen.append((config.hydra.job.num, job_return.status.name)),
        raising=False,
    )
    _aca_run(
        monkeypatch,
        "trainer.max_epochs=1",
        "quiet=true",
        "data=spurious",
        "firm=gdro,erm",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "hydra/launcher=stacked",
    )
    assert sorted(seen[:-1]) == [(n, "COMPLETED") for n in range(2)] and seen[-1] == "end"


def test_a_failing_stack_fails_its_jobs_with_the_error(tmp_path, monkeypatch, engine, standard, capsys):
    def refuse(cfgs, device=None, max_models=None):
        raise ValueError("the configs differ in model.arch")

    monkeypatch.setattr(engine, "run_stacked", refuse)
    with pytest.raises(SystemExit):
        _aca_run(
            monkeypatch, *TINY, "collective.alpha=0.01,0.05", f"hydra.sweep.dir={tmp_path}", "hydra/launcher=stacked"
        )
    captured = capsys.readouterr()
    assert "a stack of 2 failed: ValueError: the configs differ in model.arch" in captured.out
    assert not list(tmp_path.glob("*/record.json"))


def test_an_invalid_job_fails_before_any_stack_trains(tmp_path, monkeypatch, engine, standard, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _aca_run(monkeypatch, *TINY, "seed=0,-2", f"hydra.sweep.dir={tmp_path}", "hydra/launcher=stacked")
    assert exit_info.value.code == 2 and engine.calls == []
    assert "seed must be a non-negative int, got -2" in capsys.readouterr().err


def test_launcher_config_composes_with_its_defaults():
    with initialize_config_module("lightning_aca.conf", version_base="1.3"):
        cfg = compose("config", overrides=["hydra/launcher=stacked"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.aca_stacked_launcher.stacked_launcher.StackedLauncher"
    assert launcher.max_models == 256 and launcher.device is None


def test_launcher_rejects_a_non_positive_max_models():
    from hydra_plugins.aca_stacked_launcher.stacked_launcher import StackedLauncher

    with pytest.raises(ValueError, match="max_models must be a positive int or null, got 0"):
        StackedLauncher(max_models=0)


@pytest.mark.slow
def test_quickstart_with_the_real_engine_end_to_end(tmp_path):
    pytest.importorskip("lightning_aca.stacked")
    sweep = tmp_path / "sweep"
    env = {**os.environ, "WANDB_SILENT": "true"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lightning_aca.cli",
            "-m",
            "experiment=quickstart",
            "hydra/launcher=stacked",
            "trainer.max_epochs=2",
            "logger=none",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(p.read_text()) for p in sweep.glob("*/record.json")]
    assert len(records) == 10 and {r["engine"] for r in records} == {"stacked"}
    assert sorted((r["alpha"], r["seed"]) for r in records) == sorted(
        (a, s) for a in (0.0025, 0.005, 0.01, 0.02, 0.05) for s in (0, 1)
    )
    assert all(r["sweep"]["collective.alpha"] == r["alpha"] and r["sweep"]["seed"] == r["seed"] for r in records)
    assert all(0 <= r["metrics"]["aca/success"] <= 1 and r["metrics"]["aca/clean_acc"] > 0.3 for r in records)
    assert (sweep / "s_curve.png").exists() and "alpha" in proc.stdout
    # re-run: every job is found done
    again = subprocess.run(proc.args, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 0 and again.stdout.count("skip, record exists") == 10


def test_group_key_ignores_each_collectives_alpha(tmp_path):
    two = ["collective=two_collectives", "logger=none"]
    grid = [("0.02", "0.02"), ("0.1", "0.02"), ("0.02", "0.2")]
    alphas = [[f"collective.collectives.first.alpha={a}", f"collective.collectives.second.alpha={b}"] for a, b in grid]
    target = ["collective.collectives.second.strategy.target_class=0"]
    with initialize_config_module("lightning_aca.conf", version_base="1.3"):
        keys = [group_key(_composed([*two, *change], tmp_path, i), STACKABLE_KEYS) for i, change in enumerate(alphas)]
        other = group_key(_composed([*two, *target], tmp_path, 9), STACKABLE_KEYS)
    assert len(set(keys)) == 1 and other != keys[0]
