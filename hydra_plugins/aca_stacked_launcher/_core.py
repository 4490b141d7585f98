"""One batch of a sweep for :class:`StackedLauncher`: compose, sort into stacks, train, return in order.

Every job is first laid out as Hydra's basic launcher lays it out (``run_job`` makes its output
directory, ``.hydra/`` files and log, with a no-op task). Then

- a job whose ``record.json`` exists, or whose config fails ``aca-run``'s validation, runs through
  the standard path (``aca-run``'s task: it skips, or fails with ``aca-run``'s message);
- a job :func:`lightning_aca.stacked.stackable_reason` refuses runs through the standard path,
  and one line per reason names those jobs;
- the other jobs are grouped by their resolved configs without
  :data:`lightning_aca.stacked.STACKABLE_KEYS` (per-job Hydra values — output directory,
  ``override_dirname``, job id — fixed, so a ``save_dir: ${output_dir}`` does not split a group),
  and each group is trained by :func:`lightning_aca.stacked.run_stacked`.

``run_stacked`` gets each job's task config as written (so configs of one group stay equal outside
the stackable keys) but self-contained: ``output_dir`` is the job's directory, each
``${hydra:key}`` reads a ``hydra`` node holding that job's value of ``key``,
``hydra.overrides.task`` holds the job's overrides, which its record keeps, and ``hydra.sweep.dir``
the sweep directory its loggers name.

Returns one ``JobReturn`` per job, in job order; a stacked job's return value is its record.
"""

from __future__ import annotations

import copy
import importlib
import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus, configure_log, env_override, run_job, setup_globals
from hydra.types import HydraContext
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

if TYPE_CHECKING:
    from .stacked_launcher import StackedLauncher

# Hydra values that differ between a sweep's jobs without changing what a job computes, and the
# stand-ins they take when two jobs' configs are compared.
_PER_JOB = {
    "runtime.output_dir": "<output_dir>",
    "job.override_dirname": "<override_dirname>",
    "job.id": "<id>",
    "job.num": 0,
}
_PREFIX = "aca-run: stacked launcher:"
_HYDRA_RESOLVER = re.compile(r"\$\{hydra:\s*([^{}:]+?)\s*\}")


class _NoCallbacks:
    """Hydra callbacks of a job being laid out: none (they run when the job trains)."""

    def on_job_start(self, **kwargs: Any) -> None:
        pass

    def on_job_end(self, **kwargs: Any) -> None:
        pass


@dataclass
class _Job:
    num: int
    config: DictConfig  # the composed sweep config, hydra node included
    ret: JobReturn
    cfg: DictConfig | None = None  # what run_stacked gets: see engine_config
    key: str | None = None  # the stack it joins: the resolved config less the stackable keys
    reason: str | None = None  # why it runs through the standard path
    done: bool = False  # its record exists

    @property
    def name(self) -> str:
        return str(self.ret.hydra_cfg.hydra.job.override_dirname) or f"#{self.num}"


def _engine() -> ModuleType:
    try:
        return importlib.import_module("lightning_aca.stacked")
    except ImportError as err:
        raise ImportError(f"hydra/launcher=stacked needs lightning_aca.stacked, which failed to import: {err}") from err


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@contextmanager
def _hydra_config(config: DictConfig) -> Iterator[None]:
    """``HydraConfig`` (what ``${hydra:…}`` reads) set to ``config``'s hydra node, then restored."""
    instance = HydraConfig.instance()
    saved = instance.cfg
    instance.set_config(config)
    try:
        yield
    finally:
        instance.cfg = saved


def _resolve(config: DictConfig) -> DictConfig:
    """The task config of ``config`` (its ``hydra`` node removed, as ``run_job`` does), fully resolved.

    ``${hydra:…}`` (and so ``${output_dir}``) reads ``config.hydra``.
    """
    task = copy.deepcopy(config)
    with read_write(task), open_dict(task):
        del task["hydra"]
    with _hydra_config(config):
        return OmegaConf.create(OmegaConf.to_container(task, resolve=True))


def engine_config(config: DictConfig) -> DictConfig:
    """The task config of ``config`` as written, with the job's Hydra values made local.

    ``output_dir`` becomes the job's directory; each ``${hydra:key}`` becomes ``${hydra.key}``,
    read from a ``hydra`` node holding this job's value of ``key``; ``hydra.overrides.task`` holds
    the job's overrides and ``hydra.sweep.dir`` its sweep directory. Other interpolations
    (``save_dir: ${output_dir}``, ``seed: ${seed}``) stay as written, so the configs of one group
    differ only in stackable keys, ``output_dir`` and ``hydra``.
    """
    task = OmegaConf.to_container(config, resolve=False)
    del task["hydra"]
    referenced: set[str] = set()

    def localize(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: localize(value) for key, value in node.items()}
        if isinstance(node, list):
            return [localize(value) for value in node]
        if isinstance(node, str) and "${hydra:" in node:
            referenced.update(_HYDRA_RESOLVER.findall(node))
            return _HYDRA_RESOLVER.sub(lambda match: "${hydra." + match.group(1) + "}", node)
        return node

    task = localize(task)
    referenced.add("sweep.dir")  # the run's loggers name its sweep (run_info.sweep_dir)
    hydra = OmegaConf.create()
    with _hydra_config(config):
        for key in sorted(referenced):
            value = OmegaConf.select(config.hydra, key)
            OmegaConf.update(
                hydra, key, OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
            )
        output_dir = str(OmegaConf.select(config, "output_dir", default=None) or config.hydra.runtime.output_dir)
    OmegaConf.update(hydra, "overrides.task", [str(o) for o in config.hydra.overrides.task], merge=False)
    local = OmegaConf.create(task)
    with open_dict(local):
        local.output_dir = output_dir
        local.hydra = hydra
    return local


def group_key(config: DictConfig, stackable_keys: Sequence[str]) -> str:
    """The job's resolved task config less ``stackable_keys`` (``*``: any key), per-job Hydra values stood in for, as JSON.

    ``config`` is the job's composed config, ``hydra`` node included, with ``hydra.runtime.output_dir``
    set. Two jobs can share a stack exactly when their keys are equal: a ``save_dir: ${output_dir}``
    or a ``name: ${hydra:job.override_dirname}`` does not tell them apart.
    """
    neutral = copy.deepcopy(config)
    with read_write(neutral.hydra), open_dict(neutral.hydra):
        for key, value in _PER_JOB.items():
            OmegaConf.update(neutral.hydra, key, value, merge=False)
    from lightning_aca.stacked.config import expand_keys

    container = OmegaConf.to_container(_resolve(neutral))
    for dotted in expand_keys(stackable_keys, container):
        *parents, leaf = dotted.split(".")
        node: Any = container
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    return json.dumps(container, sort_keys=True, default=str)


def _lay_out(launcher: StackedLauncher, overrides: Sequence[str], num: int) -> _Job:
    """Compose job ``num`` and make its output directory and ``.hydra/`` files, running no task."""
    assert launcher.config is not None and launcher.hydra_context is not None
    config = launcher.hydra_context.config_loader.load_sweep_config(launcher.config, list(overrides))
    with open_dict(config):
        config.hydra.job.id = num
        config.hydra.job.num = num
    quiet_context = HydraContext(config_loader=launcher.hydra_context.config_loader, callbacks=_NoCallbacks())
    ret = run_job(
        task_function=lambda cfg: None,
        config=config,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
        hydra_context=quiet_context,
    )
    ret.status = JobStatus.UNKNOWN
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    return _Job(num, config, ret)


def _standard(launcher: StackedLauncher, job: _Job) -> None:
    """Run ``job`` as the basic launcher does: ``run_job`` with ``aca-run``'s task function."""
    assert launcher.config is not None and launcher.hydra_context is not None and launcher.task_function
    job.ret = run_job(
        task_function=launcher.task_function,
        config=job.config,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
        hydra_context=launcher.hydra_context,
    )
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)


def _sort(launcher: StackedLauncher, job: _Job, engine: ModuleType) -> None:
    """Decide the job's path: done, standard (with a reason) or a stack (with a key)."""
    from lightning_aca.experiment import validate
    from lightning_aca.runs.records import finished_record
    from lightning_aca.stacked.config import plain

    try:
        job.cfg = engine_config(job.config)
        _resolve(job.config)  # a config that cannot resolve fails on the standard path, with aca-run's message
    except Exception as err:  # the standard path reports it as aca-run does
        job.reason = f"its config does not resolve ({type(err).__name__}: {err})"
        return
    try:
        job.done = finished_record(job.cfg.output_dir, plain(job.cfg)) is not None
    except ValueError:
        _standard(launcher, job)  # fails now, before any stack trains, with aca-run's message
        job.reason = "a record of another configuration"
        return
    if job.done:
        return
    try:
        validate(job.cfg)
    except ValueError:
        _standard(launcher, job)  # fails now, before any stack trains, with aca-run's message
        job.reason = "invalid config"
        return
    job.reason = engine.stackable_reason(job.cfg)
    if job.reason is None:
        job.key = group_key(job.config, engine.STACKABLE_KEYS)


def _varying(jobs: Sequence[_Job], keys: Sequence[str]) -> list[str]:
    from lightning_aca.stacked.config import expand_keys

    keys = expand_keys(keys, OmegaConf.to_container(jobs[0].cfg, resolve=False))
    return [key for key in keys if len({repr(OmegaConf.select(j.cfg, key)) for j in jobs}) > 1]


def _train_stack(launcher: StackedLauncher, jobs: list[_Job], engine: ModuleType, device: str) -> None:
    """Train one group with ``run_stacked``; each job's ``JobReturn`` gets its record or the error."""
    assert launcher.hydra_context is not None and launcher.task_function is not None
    callbacks = launcher.hydra_context.callbacks
    for job in jobs:
        with _hydra_config(job.config):
            callbacks.on_job_start(config=job.config, task_function=launcher.task_function)
    try:
        with env_override(jobs[0].ret.hydra_cfg.hydra.job.env_set):
            records = engine.run_stacked([j.cfg for j in jobs], device=device, max_models=launcher.max_models)
        if len(records) != len(jobs):
            raise RuntimeError(f"run_stacked returned {len(records)} records for {len(jobs)} configs")
    except Exception as err:
        print(f"{_PREFIX} a stack of {len(jobs)} failed: {type(err).__name__}: {err}", flush=True)
        for job in jobs:
            job.ret.status, job.ret.return_value = JobStatus.FAILED, err
    else:
        for job, record in zip(jobs, records, strict=True):
            if record.get("status") == "failed":  # its training went non-finite: no result
                job.ret.status, job.ret.return_value = JobStatus.FAILED, ValueError(record["error"])
            else:
                job.ret.status, job.ret.return_value = JobStatus.COMPLETED, record
    for job in jobs:
        with _hydra_config(job.config):
            callbacks.on_job_end(config=job.config, job_return=job.ret)


def launch(launcher: StackedLauncher, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[JobReturn]:
    """Run one batch of jobs; ``JobReturn``s in the order of ``job_overrides``."""
    setup_globals()
    assert launcher.config is not None
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    Path(str(launcher.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
    engine = _engine()
    device = launcher.device or _default_device()

    jobs = [_lay_out(launcher, overrides, initial_job_idx + i) for i, overrides in enumerate(job_overrides)]
    for job in jobs:
        _sort(launcher, job, engine)
    groups: dict[str, list[_Job]] = {}
    for job in jobs:
        if job.key is not None:
            groups.setdefault(job.key, []).append(job)
    unstacked = [j for j in jobs if j.key is None]
    standard = [j for j in unstacked if j.ret.status is JobStatus.UNKNOWN]  # the others ran in _sort
    done = sum(j.done for j in unstacked)
    size = (
        "as many models a stack as fit"
        if launcher.max_models is None
        else f"at most {launcher.max_models} models a stack"
    )
    print(
        f"{_PREFIX} {len(jobs)} jobs: {sum(map(len, groups.values()))} in {len(groups)} stack(s) on {device} "
        f"({size}), {len(unstacked) - done} on the standard path, "
        f"{done} done",
        flush=True,
    )
    by_reason: dict[str, list[_Job]] = {}
    for job in unstacked:
        if job.reason is not None:
            by_reason.setdefault(job.reason, []).append(job)
    for reason, refused in by_reason.items():
        names = " | ".join(j.name for j in refused)
        print(f"{_PREFIX} not stacked ({reason}), {len(refused)} on the standard path: {names}", flush=True)

    for i, group in enumerate(groups.values(), 1):
        varying = ", ".join(_varying(group, engine.STACKABLE_KEYS)) or "nothing"
        print(f"{_PREFIX} stack {i}/{len(groups)}: {len(group)} runs ({varying} varying)", flush=True)
        _train_stack(launcher, group, engine, device)
    for job in standard:
        _standard(launcher, job)
    return [job.ret for job in jobs]
