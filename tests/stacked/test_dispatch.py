"""``hydra/launcher=stacked`` across local devices (``hydra.launcher.devices``) and as submitit jobs.

The sweeps run ``aca-run``'s Hydra app in this process; the stacks train in spawned worker processes
(two CPU "devices") or submitit jobs. The real engine checks that a dispatched sweep writes the
records of the same sweep trained as one stack; stand-ins (a training function run by the workers,
an engine for submitit's in-process ``debug`` cluster) check failures, callbacks and parameters.
"""

import json
import logging
import os
import re
import sys
import types
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from hydra_plugins.aca_stacked_launcher import _core, _dispatch
from hydra_plugins.aca_stacked_launcher.stacked_launcher import StackedLauncher
from lightning_aca import cli
from lightning_aca.runs.records import write_record
from lightning_aca.stacked import STACKABLE_KEYS, stackable_reason

SWEEP = ["trainer.max_epochs=1", "quiet=true", "logger=none", "collective.alpha=0.02,0.05", "seed=0,1"]


def _aca_run(*args: str) -> None:
    """``aca-run -m ARGS`` in this process, leaving ``HydraConfig`` and the root logger as they were."""
    saved, root = HydraConfig.instance().cfg, logging.getLogger()
    handlers, level = root.handlers[:], root.level
    argv = sys.argv
    sys.argv = ["aca-run", "-m", *args]
    try:
        cli._hydra_main()
    finally:
        sys.argv = argv
        HydraConfig.instance().cfg = saved
        root.handlers[:] = handlers
        root.setLevel(level)


def _records(sweep: Path) -> dict[str, dict]:
    """Each run's record, less its wall time, its config's paths made relative to the sweep directory."""
    out = {}
    for path in sorted(sweep.glob("*/record.json")):
        record = json.loads(path.read_text().replace(str(sweep), "<sweep>"))
        del record["wall_time_s"]
        out[path.parent.name] = record
    return out


@pytest.fixture(scope="module")
def one_stack(tmp_path_factory):
    """The records of the 2 α x 2 seeds sweep trained as one stack in this process (the launcher's default)."""
    sweep = tmp_path_factory.mktemp("one_stack")
    _aca_run(*SWEEP, "~hydra.callbacks.report", f"hydra.sweep.dir={sweep}", "hydra/launcher=stacked")
    records = _records(sweep)
    assert len(records) == 4 and {r["engine"] for r in records.values()} == {"stacked"}
    return records


@pytest.fixture
def seen(monkeypatch):
    """Hydra's ``on_job_start`` / ``on_job_end`` of ``aca-run``'s report callback, as (event, job number, status)."""
    events = []
    monkeypatch.setattr(cli.SweepReport, "on_multirun_end", lambda self, config, **kw: events.append(("end",)))
    monkeypatch.setattr(
        cli.SweepReport,
        "on_job_start",
        lambda self, config, **kw: events.append(("start", config.hydra.job.num)),
        raising=False,
    )
    monkeypatch.setattr(
        cli.SweepReport,
        "on_job_end",
        lambda self, config, job_return, **kw: events.append(("job_end", config.hydra.job.num, job_return)),
        raising=False,
    )
    return events


def _check_callbacks(events: list, jobs: int) -> dict[int, object]:
    """Each job started once, then ended once with its return. Returns job number -> JobReturn."""
    starts = [e[1] for e in events if e[0] == "start"]
    ends = {e[1]: e[2] for e in events if e[0] == "job_end"}
    assert sorted(starts) == list(range(jobs)) and sorted(ends) == list(range(jobs))
    for num in range(jobs):
        assert events.index(("start", num)) < next(i for i, e in enumerate(events) if e[:2] == ("job_end", num))
    return ends


def test_pieces_give_every_device_a_share_and_never_an_empty_stack():
    for sizes, workers in [([10], 2), ([10, 2], 4), ([7, 1, 1], 3), ([5], 8), ([3, 3, 3, 3], 2), ([100, 1, 1], 2)]:
        counts = _dispatch.pieces(sizes, workers)
        stacks = [len(p) for n, c in zip(sizes, counts, strict=True) for p in _dispatch.split(list(range(n)), c)]
        assert sum(stacks) == sum(sizes) and min(stacks) >= 1
        assert len(stacks) >= min(workers, sum(sizes))  # every device gets work where there is enough
        assert max(stacks) <= -(-sum(sizes) // workers)  # none above its device's share
    assert _dispatch.pieces([3, 3, 3, 3], 2) == [1, 1, 1, 1]  # enough groups: none is cut


def test_a_sweep_over_two_cpu_devices_writes_the_records_of_one_stack_and_resumes(tmp_path, one_stack, seen, capfd):
    sweep = tmp_path / "sweep"
    args = [*SWEEP, f"hydra.sweep.dir={sweep}", "hydra/launcher=stacked", "hydra.launcher.devices=[cpu,cpu]"]
    _aca_run(*args)
    out = capfd.readouterr().out
    assert "4 jobs: 4 in 2 stack(s) on 2 devices (cpu, cpu)" in out
    for part in (1, 2):  # the group of 4 cut in two, one stack for each device
        assert re.search(rf"stack \d/2: 2 runs \(.* varying; part {part}/2 of a group of 4\) on cpu", out)
    assert out.count("aca-run[stacked]: alpha=") == 4  # each run trained once, in a worker
    assert _records(sweep) == one_stack  # same S, clean accuracy, members, seeds, α, config and overrides
    returns = _check_callbacks(seen, 4)
    assert all(r.status.name == "COMPLETED" and r.return_value["engine"] == "stacked" for r in returns.values())
    assert seen[-1] == ("end",)

    seen.clear()
    written = {p: p.stat().st_mtime_ns for p in sweep.glob("*/record.json")}
    _aca_run(*args)
    out = capfd.readouterr().out
    assert "4 jobs: 0 in 0 stack(s)" in out and "4 done" in out and out.count("skip, record exists") == 4
    assert {p: p.stat().st_mtime_ns for p in sweep.glob("*/record.json")} == written  # nothing trained again
    assert all(r.status.name == "COMPLETED" for r in _check_callbacks(seen, 4).values())


def test_the_sweep_as_submitit_jobs_on_the_local_cluster_writes_the_same_records(tmp_path, one_stack, capfd):
    sweep = tmp_path / "sweep"
    _aca_run(
        *SWEEP,
        "~hydra.callbacks.report",
        f"hydra.sweep.dir={sweep}",
        "hydra/launcher=stacked",
        "hydra.launcher.max_models=2",
        "hydra.launcher.submitit={cluster:local,timeout_min:5}",
    )
    out = capfd.readouterr().out
    assert "4 jobs: 4 in 2 stack(s) as submitit jobs (local)" in out
    assert out.count("as submitit job ") == 2  # one submitit job a stack of at most max_models runs
    assert _records(sweep) == one_stack
    logs = sorted((sweep / ".submitit").glob("*/*_log.out"))
    assert len(logs) == 2 and sum(log.read_text().count("aca-run[stacked]: alpha=") for log in logs) == 4


def _error(job_return) -> BaseException:
    """The error a failed job's ``JobReturn`` holds (reading ``return_value`` raises it)."""
    with pytest.raises(Exception) as raised:
        _ = job_return.return_value
    return raised.value


def _train_or_fail(cfgs, max_models, env, device=None):
    """A worker's training stand-in: writes records at once; a stack of ``linear`` models on digits raises, on synthetic data its worker dies."""
    model, data = cfgs[0].model.arch, cfgs[0].data.datamodule._target_
    if model == "linear":
        if "Digits" in data:
            raise ValueError("this stack cannot be trained")
        os._exit(3)
    records = []
    for cfg in cfgs:
        records.append({"alpha": float(cfg.collective.alpha), "device": device, "pid": os.getpid()})
        write_record(records[-1], Path(cfg.output_dir))
    return records


def test_a_failed_stack_or_a_killed_worker_fails_only_its_own_jobs(tmp_path, monkeypatch, seen, capfd):
    monkeypatch.setattr(_dispatch, "train", _train_or_fail)  # what each worker runs (imported there from this module)
    sweep = tmp_path / "sweep"
    with pytest.raises(SystemExit):  # a failed job fails the multirun, as with the basic launcher
        _aca_run(
            "trainer.max_epochs=1",
            "quiet=true",
            "logger=none",
            "model=mlp,linear",
            "data=digits,synthetic",
            "collective.alpha=0.02,0.05",
            f"hydra.sweep.dir={sweep}",
            "hydra/launcher=stacked",
            "hydra.launcher.devices=[cpu,cpu]",
        )
    out = capfd.readouterr().out
    assert "8 jobs: 8 in 4 stack(s) on 2 devices (cpu, cpu)" in out and out.count(") on cpu") == 4
    returns = _check_callbacks(seen, 8)
    by_kind = {}
    for ret in returns.values():
        overrides = dict(o.split("=") for o in ret.overrides)
        by_kind.setdefault((overrides["model"], overrides["data"]), []).append(ret)
    assert all(r.status.name == "COMPLETED" for kind in ("digits", "synthetic") for r in by_kind["mlp", kind])
    assert len(list(sweep.glob("*model=mlp*/record.json"))) == 4 and not list(sweep.glob("*model=linear*/record.json"))
    refused, killed = by_kind["linear", "digits"], by_kind["linear", "synthetic"]
    assert all(r.status.name == "FAILED" and "cannot be trained" in str(_error(r)) for r in refused)
    assert all(r.status.name == "FAILED" and isinstance(_error(r), BrokenProcessPool) for r in killed)
    assert "a stack of 2 failed (on cpu): ValueError: this stack cannot be trained" in out


def _exit_or_pid(code, device=None):
    """A worker's task: its worker dies with exit code ``code`` if nonzero, else returns its process id and device."""
    if code:
        os._exit(code)
    return os.getpid(), device


def test_a_device_whose_worker_died_goes_on_with_a_new_worker():
    sent = []
    results = dict(
        _dispatch.run_on_devices(_exit_or_pid, [(3,), (0,), (0,)], ["cpu"], lambda i, w: sent.append((i, w)))
    )
    assert sent == [(0, "on cpu"), (1, "on cpu"), (2, "on cpu")]  # one task at a time on the device
    assert isinstance(results[0], BrokenProcessPool)
    assert results[1] == results[2] and results[1][1] == "cpu" and results[1][0] != os.getpid()


@pytest.fixture
def engine(monkeypatch):
    """A stand-in ``lightning_aca.stacked`` for submitit's in-process ``debug`` cluster: writes records, remembers calls."""
    fake = types.ModuleType("lightning_aca.stacked")
    fake.STACKABLE_KEYS, fake.stackable_reason, fake.calls = STACKABLE_KEYS, stackable_reason, []

    def run_stacked(cfgs, device=None, max_models=None):
        fake.calls.append(
            {"alphas": [float(c.collective.alpha) for c in cfgs], "device": device, "env": os.getenv("ACA_ENV")}
        )
        records = [{"alpha": float(c.collective.alpha), "seed": int(c.seed)} for c in cfgs]
        for cfg, record in zip(cfgs, records, strict=True):
            write_record(record, Path(cfg.output_dir))
        return records

    fake.run_stacked = run_stacked
    monkeypatch.setitem(sys.modules, "lightning_aca.stacked", fake)
    return fake


def test_submitit_jobs_get_the_device_max_models_and_the_jobs_environment(tmp_path, engine, seen, capfd):
    sweep = tmp_path / "sweep"
    _aca_run(
        "trainer.max_epochs=1",
        "quiet=true",
        "logger=none",
        "collective.alpha=0.01,0.02,0.05",
        f"hydra.sweep.dir={sweep}",
        "hydra/launcher=stacked",
        "hydra.launcher.device=cpu",
        "hydra.launcher.max_models=2",
        "hydra.launcher.submitit={cluster:debug,partition:gpu,timeout_min:7,additional_parameters:{mail-type:END}}",
        "+hydra.job.env_set.ACA_ENV=from-hydra",
    )
    out = capfd.readouterr().out
    assert "3 jobs: 3 in 2 stack(s) as submitit jobs (debug)" in out and out.count("(debug)") == 3
    assert sorted(map(tuple, (c["alphas"] for c in engine.calls))) == [(0.01, 0.02), (0.05,)]
    assert all(c["device"] == "cpu" and c["env"] == "from-hydra" for c in engine.calls)
    assert (sweep / ".submitit").is_dir()
    returns = _check_callbacks(seen, 3)
    assert [returns[n].return_value["alpha"] for n in range(3)] == [0.01, 0.02, 0.05]


def test_submitit_parameters_reach_slurm_as_hydra_submitit_launcher_sends_them(tmp_path, monkeypatch):
    from submitit.slurm.slurm import _make_sbatch_string

    srun = tmp_path / "bin" / "srun"  # submitit's SLURM executor only checks that srun exists
    srun.parent.mkdir()
    srun.write_text("#!/bin/sh\n")
    srun.chmod(0o755)
    monkeypatch.setenv("PATH", f"{srun.parent}{os.pathsep}{os.environ['PATH']}")
    params = _dispatch.submitit_option(
        OmegaConf.create(
            {
                "cluster": "slurm",
                "partition": "gpu",
                "gpus_per_node": 1,
                "mem_gb": 16,
                "max_num_timeout": 2,
                "additional_parameters": {"mail-type": "END"},
            }
        )
    )
    executor = _dispatch.submitit_executor(params, str(tmp_path / "%j"), "aca-run")
    assert executor.cluster == "slurm" and executor._executor.max_num_timeout == 2
    sbatch = _make_sbatch_string(command="train", folder=tmp_path / "%j", **executor._executor.parameters)
    for line in (
        "--partition=gpu",
        "--gpus-per-node=1",
        "--mem=16GB",
        "--time=60",
        "--job-name=aca-run",
        "--mail-type=END",
    ):
        assert f"#SBATCH {line}" in sbatch
    # the same parameters run on the local cluster, which ignores SLURM's
    local = _dispatch.submitit_executor({**params, "cluster": "local"}, str(tmp_path / "%j"), "aca-run")
    assert local.cluster == "local" and local._executor.parameters["timeout_min"] == 60


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"devices": []}, "hydra.launcher.devices must be null .* got \\[\\]"),
        ({"devices": 5}, "hydra.launcher.devices must be null .* got 5"),
        ({"devices": ["cpu", "gpu:0"]}, "hydra.launcher.devices: 'gpu:0' is not a torch device"),
        ({"devices": ["cuda:0"]}, "hydra.launcher.devices: 'cuda:0' is not among this machine's 0 CUDA"),
        (
            {"devices": "all"},
            "hydra.launcher.devices='all' found no CUDA device .* hydra.launcher.devices=\\[cpu,cpu\\]",
        ),
        ({"devices": ["cpu", "cpu"], "device": "cpu"}, "hydra.launcher.device='cpu' and hydra.launcher.devices"),
        ({"submitit": {"partitoin": "gpu"}}, "hydra.launcher.submitit has no key 'partitoin'; known keys: cluster"),
        ({"submitit": {"cluster": "slrum"}}, "hydra.launcher.submitit.cluster must be one of debug, local, slurm"),
        ({"submitit": {"tasks_per_node": 2}}, "hydra.launcher.submitit.tasks_per_node must be 1"),
        ({"submitit": "slurm"}, "hydra.launcher.submitit must be null or a mapping"),
        ({"submitit": {"cluster": "local"}, "devices": ["cpu", "cpu"]}, "devices and hydra.launcher.submitit are both"),
    ],
)
def test_bad_options_name_the_option_and_the_fix(options, message):
    import torch

    if torch.cuda.is_available() and "CUDA" in message:
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match=message):
        StackedLauncher(**options)


def test_a_bad_option_stops_aca_run_before_any_job(tmp_path, capfd):
    with pytest.raises(SystemExit):
        _aca_run(*SWEEP, f"hydra.sweep.dir={tmp_path}", "hydra/launcher=stacked", "hydra.launcher.devices=[]")
    assert "hydra.launcher.devices must be null (one device: hydra.launcher.device)" in capfd.readouterr().err
    assert not list(tmp_path.glob("*/record.json"))


def test_each_job_is_composed_and_laid_out_once(tmp_path, monkeypatch, engine):
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    composed, ran = [], []
    original = ConfigLoaderImpl.load_sweep_config
    monkeypatch.setattr(
        ConfigLoaderImpl,
        "load_sweep_config",
        lambda self, master, overrides: composed.append(tuple(overrides)) or original(self, master, overrides),
    )
    run_job = _core.run_job
    monkeypatch.setattr(_core, "run_job", lambda **kw: ran.append(kw["config"].hydra.job.num) or run_job(**kw))
    _aca_run(
        "trainer.max_epochs=1",
        "quiet=true",
        "logger=none",
        "~hydra.callbacks.report",
        "data=spurious",
        "firm=erm,gdro",
        f"hydra.sweep.dir={tmp_path}",
        "hydra/launcher=stacked",
    )
    assert len(composed) == 2 and len(set(composed)) == 2  # the sweeper's, kept for the jobs
    assert sorted(ran) == [0, 1]  # the stacked job laid out, the Group DRO job run: once each
