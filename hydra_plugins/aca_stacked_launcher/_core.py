"""One batch of a sweep for :class:`StackedLauncher`: compose, sort into stacks, train, return in order.

Each job's config is composed once: the sweeper's composition, when it validated the batch, is the
one the job runs with (:class:`KeptCompositions`). Its output directory is set as Hydra's
``run_job`` sets it, and its config resolved once. Then

- a job whose ``record.json`` exists, or whose config fails ``aca-run``'s validation, runs through
  the standard path (``aca-run``'s task: it skips, or fails with ``aca-run``'s message);
- a job :func:`lightning_aca.stacked.stackable_reason` refuses runs through the standard path,
  and one line per reason names those jobs;
- the other jobs are grouped by their resolved configs without
  :data:`lightning_aca.stacked.STACKABLE_KEYS` (per-job Hydra values — output directory,
  ``override_dirname``, job id — stood in for, so a ``save_dir: ${output_dir}`` does not split a
  group); a group's jobs are laid out as Hydra's basic launcher lays a job out (``run_job`` makes
  its output directory, ``.hydra/`` files and log, with a no-op task), and the group is trained by
  :func:`lightning_aca.stacked.run_stacked`: here, on several local devices, or as submitit jobs
  (:mod:`._dispatch`), one line per stack saying where it went.

A job on the standard path goes through Hydra's ``run_job`` once, with ``aca-run``'s task function.

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
import os
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

from . import _dispatch

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
_active: list[DictConfig] = []  # the configs HydraConfig was set to by _hydra_config, innermost last
_views: dict[int, tuple[DictConfig, Any]] = {}  # id(config) -> (config, HydraConfig's copy of its hydra node)


class KeptCompositions:
    """Hydra's config loader, composing each job of a sweep once and keeping it for the launcher.

    Hydra's sweepers compose every job of a batch to validate it (``Sweeper.validate_batch_is_legal``)
    and drop the result; the launcher then needs the same composition (same master config, same
    overrides). Installed as the sweep's ``HydraContext.config_loader``, this loader keeps a copy
    of each, which :meth:`take` hands to the launcher; everything else is the wrapped loader's.

    Jobs that differ from a job already composed only in the values of plain keys (``seed=1``
    where that job had ``seed=0``: no config group, no ``+``/``~``, no mapping value, no ``hydra.``
    key) are not composed again: the composed config is copied and those values are set on it, as
    Hydra's composition sets an override's value last; the job's ``hydra.overrides.task``,
    ``hydra.job.override_dirname`` and ``hydra.runtime.cwd`` are set as Hydra sets them. A sweep of
    many values of a few keys costs one composition per combination of the rest.
    """

    def __init__(self, loader: Any) -> None:
        self.loader = loader
        self._kept: dict[tuple[int, tuple[str, ...]], DictConfig] = {}
        self._composed: dict[tuple[Any, ...], tuple[list[Any], DictConfig]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)

    def load_sweep_config(self, master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        config = self._derived(master_config, sweep_overrides)
        if config is None:
            config = self.loader.load_sweep_config(master_config, sweep_overrides)
        self._kept[(id(master_config), tuple(sweep_overrides))] = copy.deepcopy(config)
        return config

    def take(self, master_config: DictConfig, sweep_overrides: Sequence[str]) -> DictConfig:
        """The job's composed config: the kept composition of these overrides, else composed now."""
        kept = self._kept.pop((id(master_config), tuple(sweep_overrides)), None)
        return kept if kept is not None else self.load_sweep_config(master_config, list(sweep_overrides))

    def forget(self) -> None:
        """Drop what no launch took (e.g. a sweeper's compositions of partial overrides)."""
        self._kept.clear()
        self._composed.clear()

    def _value_only(self, override: Any) -> bool:
        """Whether ``override`` sets the value of a plain key (a composition is not changed otherwise)."""
        from hydra.core.override_parser.types import OverrideType

        key = override.key_or_group
        return (
            override.type == OverrideType.CHANGE
            and override.package is None
            and not override.is_sweep_override()
            and not override.is_hydra_override()
            and not isinstance(override.value(), dict)
            and not self.loader.repository.group_exists(key.replace(".", "/"))
        )

    def _derived(self, master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig | None:
        """This job's config from a composed one that differs in plain values only; ``None``: compose it."""
        from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
        from hydra.core.override_parser.overrides_parser import OverridesParser

        lines = [*OmegaConf.to_container(master_config.hydra.overrides.hydra), *sweep_overrides]
        try:
            parsed = OverridesParser.create().parse_overrides(lines)
        except Exception:  # Hydra's own composition reports it
            return None
        # the key, and for an override that is more than a value its whole line: jobs with equal
        # signatures differ in plain values only
        signature = (
            id(master_config),
            *((o.key_or_group, None if self._value_only(o) else o.input_line) for o in parsed),
        )
        if signature not in self._composed:
            config = self.loader.load_sweep_config(master_config, sweep_overrides)
            self._composed[signature] = (parsed, copy.deepcopy(config))
            return config
        composed_overrides, composed = self._composed[signature]
        config = copy.deepcopy(composed)
        changed = [o for o, c in zip(parsed, composed_overrides, strict=True) if o.input_line != c.input_line]
        ConfigLoaderImpl._apply_overrides_to_config(changed, config)
        task = [o for o in parsed if not o.is_hydra_override()]
        job = config.hydra.job
        config.hydra.overrides.task = [o.input_line for o in task]
        config.hydra.runtime.cwd = os.getcwd()
        job.override_dirname = get_overrides_dirname(
            overrides=task,
            kv_sep=job.config.override_dirname.kv_sep,
            item_sep=job.config.override_dirname.item_sep,
            exclude_keys=job.config.override_dirname.exclude_keys,
        )
        OmegaConf.copy_cache(from_config=master_config, to_config=config)
        return config


class _NoCallbacks:
    """Hydra callbacks of a job being laid out: none (they run when the job trains)."""

    def on_job_start(self, **kwargs: Any) -> None:
        pass

    def on_job_end(self, **kwargs: Any) -> None:
        pass


@dataclass
class _Job:
    num: int
    config: DictConfig  # the composed sweep config, hydra node included, hydra.runtime.output_dir set
    ret: JobReturn | None = None  # set when the job is laid out or run
    cfg: DictConfig | None = None  # what run_stacked gets: see engine_config
    key: str | None = None  # the stack it joins: the resolved config less the stackable keys
    reason: str | None = None  # why it runs through the standard path
    done: bool = False  # its record exists

    @property
    def name(self) -> str:
        return str(self.config.hydra.job.override_dirname) or f"#{self.num}"


@dataclass
class _Stack:
    jobs: list[_Job]
    part: str = ""  # "part 1/2 of a group of 10" when a group was cut for several devices or jobs


def _engine() -> ModuleType:
    try:
        return importlib.import_module("lightning_aca.stacked")
    except ImportError as err:
        raise ImportError(f"hydra/launcher=stacked needs lightning_aca.stacked, which failed to import: {err}") from err


@contextmanager
def _hydra_config(config: DictConfig) -> Iterator[None]:
    """``HydraConfig`` (what ``${hydra:…}`` reads) set to ``config``'s hydra node, then restored; nested: set once.

    ``HydraConfig.set_config`` copies the hydra node; the copy is kept in :data:`_views` and
    reused each time the same job's config is set again, until :func:`_changed` drops it.
    """
    if _active and _active[-1] is config:
        yield
        return
    instance = HydraConfig.instance()
    saved = instance.cfg
    kept = _views.get(id(config))
    if kept is not None and kept[0] is config:
        instance.cfg = kept[1]
    else:
        instance.set_config(config)
        _views[id(config)] = (config, instance.cfg)
    _active.append(config)
    try:
        yield
    finally:
        _active.pop()
        instance.cfg = saved


def _changed(config: DictConfig) -> None:
    """``config``'s hydra node was changed: the next :func:`_hydra_config` copies it again."""
    _views.pop(id(config), None)


def _resolve(cfg: DictConfig) -> dict[str, Any]:
    """The task config of an :func:`engine_config`, fully resolved, as a dict without its ``hydra`` node.

    Its ``${hydra.…}`` read the job's values from that node, so this is what ``aca-run``'s task
    resolves (and compares with an existing record) in the job.
    """
    container = OmegaConf.to_container(cfg, resolve=True)
    del container["hydra"]
    return container


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


def group_key(cfg: DictConfig, stackable_keys: Sequence[str]) -> str:
    """The job's resolved config less ``stackable_keys`` (``*``: any key), per-job values stood in for, as JSON.

    ``cfg`` is the job's :func:`engine_config`. Its ``output_dir`` and the per-job Hydra values it
    reads (output directory, ``override_dirname``, job id and number) take stand-ins before it is
    resolved, so two jobs can share a stack exactly when their keys are equal: a
    ``save_dir: ${output_dir}`` or a ``name: ${hydra:job.override_dirname}`` does not tell them apart.
    """
    from lightning_aca.stacked.config import expand_keys

    neutral = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    with open_dict(neutral):
        neutral.output_dir = _PER_JOB["runtime.output_dir"]
        for key, value in _PER_JOB.items():
            if OmegaConf.select(neutral.hydra, key, default=None) is not None:
                OmegaConf.update(neutral.hydra, key, value, merge=False)
    container = OmegaConf.to_container(neutral, resolve=True)
    del container["hydra"]
    for dotted in expand_keys(stackable_keys, container):
        *parents, leaf = dotted.split(".")
        node: Any = container
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    return json.dumps(container, sort_keys=True, default=str)


def _compose(launcher: StackedLauncher, overrides: Sequence[str], num: int) -> _Job:
    """Job ``num``'s config, composed once, with its id, number and output directory set as ``run_job`` sets them."""
    assert launcher.config is not None and launcher.hydra_context is not None
    loader = launcher.hydra_context.config_loader
    if isinstance(loader, KeptCompositions):
        config = loader.take(launcher.config, overrides)
    else:
        config = loader.load_sweep_config(launcher.config, list(overrides))
    with open_dict(config):
        config.hydra.job.id = num
        config.hydra.job.num = num
    with _hydra_config(config):
        output_dir = os.path.join(str(config.hydra.sweep.dir), str(config.hydra.sweep.subdir))
    with read_write(config.hydra.runtime), open_dict(config.hydra.runtime):
        config.hydra.runtime.output_dir = os.path.abspath(output_dir)
    _changed(config)
    return _Job(num, config)


def _lay_out(launcher: StackedLauncher, job: _Job) -> None:
    """Make the job's output directory and ``.hydra/`` files, running no task."""
    assert launcher.config is not None and launcher.hydra_context is not None
    quiet_context = HydraContext(config_loader=launcher.hydra_context.config_loader, callbacks=_NoCallbacks())
    job.ret = run_job(
        task_function=lambda cfg: None,
        config=job.config,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
        hydra_context=quiet_context,
    )
    job.ret.status = JobStatus.UNKNOWN
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)


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

    try:
        with _hydra_config(job.config):
            job.cfg = engine_config(job.config)
            resolved = _resolve(job.cfg)
    except Exception as err:  # the standard path reports it as aca-run does
        job.reason = f"its config does not resolve ({type(err).__name__}: {err})"
        return
    try:
        job.done = finished_record(job.cfg.output_dir, resolved) is not None
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
        job.key = group_key(job.cfg, engine.STACKABLE_KEYS)


def _varying(jobs: Sequence[_Job], keys: Sequence[str]) -> list[str]:
    from lightning_aca.stacked.config import expand_keys

    keys = expand_keys(keys, OmegaConf.to_container(jobs[0].cfg, resolve=False))
    return [key for key in keys if len({repr(OmegaConf.select(j.cfg, key)) for j in jobs}) > 1]


def _stacks(launcher: StackedLauncher, groups: list[list[_Job]], workers: int) -> list[_Stack]:
    """The stacks to train: each group, cut for ``workers`` devices (largest first) or into submitit jobs of at most ``max_models``."""
    if launcher.submitit is not None:
        counts = [1 if launcher.max_models is None else -(-len(g) // launcher.max_models) for g in groups]
    elif workers > 1:
        counts = _dispatch.pieces([len(g) for g in groups], workers)
    else:
        counts = [1] * len(groups)
    stacks = []
    for group, count in zip(groups, counts, strict=True):
        for i, piece in enumerate(_dispatch.split(group, count), 1):
            stacks.append(_Stack(piece, f"part {i}/{count} of a group of {len(group)}" if count > 1 else ""))
    if launcher.submitit is None and workers > 1:
        stacks.sort(key=lambda stack: -len(stack.jobs))  # each free device takes the largest stack left
    return stacks


def _env(job: _Job) -> dict[str, Any]:
    """The job's ``hydra.job.env_set``, resolved."""
    with _hydra_config(job.config):
        return OmegaConf.to_container(job.config.hydra.job.env_set, resolve=True)


def _start(launcher: StackedLauncher, stack: _Stack) -> None:
    assert launcher.hydra_context is not None and launcher.task_function is not None
    for job in stack.jobs:
        with _hydra_config(job.config):
            launcher.hydra_context.callbacks.on_job_start(config=job.config, task_function=launcher.task_function)


def _finish(launcher: StackedLauncher, stack: _Stack, outcome: list[dict] | BaseException, where: str) -> None:
    """Each job's ``JobReturn`` gets its record, or the stack's error; then Hydra's ``on_job_end``."""
    assert launcher.hydra_context is not None
    jobs = stack.jobs
    if not isinstance(outcome, BaseException) and len(outcome) != len(jobs):
        outcome = RuntimeError(f"run_stacked returned {len(outcome)} records for {len(jobs)} configs")
    if isinstance(outcome, BaseException):
        print(f"{_PREFIX} a stack of {len(jobs)} failed{where}: {type(outcome).__name__}: {outcome}", flush=True)
        for job in jobs:
            assert job.ret is not None
            job.ret.status, job.ret.return_value = JobStatus.FAILED, outcome
    else:
        for job, record in zip(jobs, outcome, strict=True):
            assert job.ret is not None
            if record.get("status") == "failed":  # its training went non-finite: no result
                job.ret.status, job.ret.return_value = JobStatus.FAILED, ValueError(record["error"])
            else:
                job.ret.status, job.ret.return_value = JobStatus.COMPLETED, record
    for job in jobs:
        with _hydra_config(job.config):
            launcher.hydra_context.callbacks.on_job_end(config=job.config, job_return=job.ret)


def _train(launcher: StackedLauncher, stacks: list[_Stack], engine: ModuleType, devices: list[str]) -> None:
    """Train every stack where the launcher's options send it, one line per stack saying where."""
    assert launcher.config is not None
    if not stacks:
        return

    def line(i: int, where: str) -> None:
        stack = stacks[i]
        varying = ", ".join(_varying(stack.jobs, engine.STACKABLE_KEYS)) or "nothing"
        detail = f"; {stack.part}" if stack.part else ""
        print(
            f"{_PREFIX} stack {i + 1}/{len(stacks)}: {len(stack.jobs)} runs ({varying} varying{detail}) {where}",
            flush=True,
        )

    if launcher.submitit is None and len(devices) == 1:
        for i, stack in enumerate(stacks):
            line(i, f"on {devices[0]}")
            _start(launcher, stack)
            try:
                with env_override(_env(stack.jobs[0])):
                    outcome = engine.run_stacked(
                        [j.cfg for j in stack.jobs], device=devices[0], max_models=launcher.max_models
                    )
            except Exception as err:
                outcome = err
            _finish(launcher, stack, outcome, "")
        return

    where: dict[int, str] = {}

    def sent(i: int, place: str) -> None:
        where[i] = place
        line(i, place)
        _start(launcher, stacks[i])

    if launcher.submitit is not None:
        folder = os.path.join(str(launcher.config.hydra.sweep.dir), ".submitit", "%j")
        executor = _dispatch.submitit_executor(launcher.submitit, folder, str(launcher.config.hydra.job.name))
        tasks = [([j.cfg for j in s.jobs], launcher.max_models, _env(s.jobs[0]), launcher.device) for s in stacks]
        finished = _dispatch.run_as_submitit_jobs(_dispatch.train, tasks, executor, sent)
    else:
        tasks = [([j.cfg for j in s.jobs], launcher.max_models, _env(s.jobs[0])) for s in stacks]
        finished = _dispatch.run_on_devices(_dispatch.train, tasks, devices, sent)
    for i, outcome in finished:
        _finish(launcher, stacks[i], outcome, f" ({where[i]})")


def launch(launcher: StackedLauncher, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[JobReturn]:
    """Run one batch of jobs; ``JobReturn``s in the order of ``job_overrides``."""
    setup_globals()
    assert launcher.config is not None and launcher.hydra_context is not None
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    Path(str(launcher.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
    engine = _engine()
    devices = launcher.devices or [launcher.device or _dispatch.default_device()]

    jobs = [_compose(launcher, overrides, initial_job_idx + i) for i, overrides in enumerate(job_overrides)]
    loader = launcher.hydra_context.config_loader
    if isinstance(loader, KeptCompositions):
        loader.forget()
    for job in jobs:
        _sort(launcher, job, engine)
    groups: dict[str, list[_Job]] = {}
    for job in jobs:
        if job.key is not None:
            groups.setdefault(job.key, []).append(job)
    stacks = _stacks(launcher, list(groups.values()), len(devices))
    unstacked = [j for j in jobs if j.key is None]
    standard = [j for j in unstacked if j.ret is None]  # the others ran in _sort
    done = sum(j.done for j in unstacked)
    size = (
        "as many models a stack as fit"
        if launcher.max_models is None
        else f"at most {launcher.max_models} models a stack"
    )
    if launcher.submitit is not None:
        where = f"as submitit jobs ({launcher.submitit.get('cluster') or 'the cluster submitit detects'})"
    elif len(devices) > 1:
        where = f"on {len(devices)} devices ({', '.join(devices)})"
    else:
        where = f"on {devices[0]}"
    print(
        f"{_PREFIX} {len(jobs)} jobs: {sum(map(len, groups.values()))} in {len(stacks)} stack(s) {where} "
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

    for stack in stacks:
        for job in stack.jobs:
            _lay_out(launcher, job)
    _train(launcher, stacks, engine, devices)
    _views.clear()
    for job in standard:
        _standard(launcher, job)
    return [job.ret for job in jobs]
