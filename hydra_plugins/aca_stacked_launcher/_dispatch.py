"""Where :class:`~hydra_plugins.aca_stacked_launcher.stacked_launcher.StackedLauncher` trains its stacks.

Three places, chosen by the launcher's options:

- this process, one stack after the other, on ``hydra.launcher.device`` (the default);
- several local devices (``hydra.launcher.devices``): one worker process per device, started with
  ``spawn`` by :class:`concurrent.futures.ProcessPoolExecutor`; each device trains one stack at a
  time, taking the next one (largest first) when it is free, so a killed worker fails only the
  stack it held and its device goes on with a fresh worker;
- a cluster (``hydra.launcher.submitit``): each stack one submitit job, all submitted as one job
  array, collected as they finish; a job that times out or is preempted is requeued and resumes at
  its first run without a record.

Wherever it goes, a stack runs :func:`train`: :func:`lightning_aca.stacked.run_stacked` on one
device, which writes each run's ``record.json`` as it finishes and skips runs whose record exists.
This module also checks the two options and splits a sweep's groups into stacks.
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import multiprocessing
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from omegaconf import OmegaConf

#: submitit's parameters shared by all its executors (``submitit.AutoExecutor.update_parameters``)
SUBMITIT_SHARED = (
    "timeout_min",
    "cpus_per_task",
    "gpus_per_node",
    "tasks_per_node",
    "mem_gb",
    "nodes",
    "name",
    "stderr_to_stdout",
)
#: SLURM's parameters, named as hydra-submitit-launcher's ``hydra/launcher=submitit_slurm`` names them;
#: passed as ``slurm_<name>``, so submitit ignores them on the ``local`` and ``debug`` clusters
SUBMITIT_SLURM = (
    "partition",
    "qos",
    "comment",
    "constraint",
    "exclude",
    "gres",
    "cpus_per_gpu",
    "gpus_per_task",
    "mem_per_gpu",
    "mem_per_cpu",
    "account",
    "signal_delay_s",
    "additional_parameters",
    "array_parallelism",
    "setup",
)
#: the launcher's own keys: which cluster, where submitit keeps its files, how often a job is requeued
SUBMITIT_OWN = ("cluster", "submitit_folder", "max_num_timeout")
SUBMITIT_KEYS = SUBMITIT_OWN + SUBMITIT_SHARED + SUBMITIT_SLURM
#: what a job gets unless ``hydra.launcher.submitit`` says otherwise (submitit's own default is 5 minutes)
SUBMITIT_DEFAULTS = {"timeout_min": 60}
_POLL_S = 1.0  # how often finished submitit jobs are looked for


def default_device() -> str:
    """``cuda`` if this process sees a GPU, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def devices_option(value: Any) -> list[str] | None:
    """``hydra.launcher.devices`` checked: None, or the torch devices to train on, one worker each.

    ``"all"`` is every CUDA device this process sees. ``ValueError`` naming the option and the fix
    for anything else than a non-empty list of torch device strings.
    """
    if value is None:
        return None
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value, resolve=True)
    usage = "null (one device: hydra.launcher.device), 'all' (every visible GPU) or a list such as [cuda:0,cuda:1]"
    if value == "all":
        import torch

        count = torch.cuda.device_count()
        if count == 0:
            raise ValueError(
                "hydra.launcher.devices='all' found no CUDA device (torch.cuda.device_count() is 0); on this "
                "machine give a list such as hydra.launcher.devices=[cpu,cpu], or leave hydra.launcher.devices null."
            )
        return [f"cuda:{i}" for i in range(count)]
    if not isinstance(value, list) or not value or not all(isinstance(d, str) and d for d in value):
        raise ValueError(f"hydra.launcher.devices must be {usage}; got {value!r}.")
    import torch

    for name in value:
        try:
            device = torch.device(name)
        except RuntimeError as err:
            raise ValueError(
                f"hydra.launcher.devices: {name!r} is not a torch device ({err}); use e.g. cuda:0 or cpu."
            ) from None
        if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
            raise ValueError(
                f"hydra.launcher.devices: {name!r} is not among this machine's {torch.cuda.device_count()} CUDA "
                "device(s); list visible ones, or give hydra.launcher.devices=all."
            )
    return list(value)


def submitit_option(value: Any) -> dict[str, Any] | None:
    """``hydra.launcher.submitit`` checked: None, or the parameters of the submitit jobs (plain values).

    ``ValueError`` naming an unknown key (with the known ones), an unknown cluster, or more than
    one task or node a job (a stack trains in one process).
    """
    if value is None:
        return None
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value, resolve=True)
    if not isinstance(value, dict):
        raise ValueError(
            f"hydra.launcher.submitit must be null or a mapping of submitit parameters, e.g. "
            f"hydra.launcher.submitit={{cluster:slurm,partition:gpu,gpus_per_node:1}}; got {value!r}."
        )
    unknown = sorted(set(value) - set(SUBMITIT_KEYS))
    if unknown:
        raise ValueError(
            f"hydra.launcher.submitit has no key {', '.join(map(repr, unknown))}; known keys: {', '.join(SUBMITIT_KEYS)} "
            "(hydra-submitit-launcher's names; a SLURM option without a key goes in additional_parameters)."
        )
    try:
        from submitit.core.plugins import get_executors
    except ImportError as err:
        raise ImportError(
            f"hydra.launcher.submitit needs the submitit package ({err}): pip install submitit, "
            "or lightning-aca[launchers]."
        ) from err
    clusters = sorted(get_executors())
    if value.get("cluster") not in (None, *clusters):
        raise ValueError(
            f"hydra.launcher.submitit.cluster must be one of {', '.join(clusters)} (or null: the cluster submitit "
            f"detects); got {value['cluster']!r}."
        )
    for key in ("tasks_per_node", "nodes"):
        if value.get(key) not in (None, 1):
            raise ValueError(
                f"hydra.launcher.submitit.{key} must be 1 (a stack trains in one process on one device); got "
                f"{value[key]!r}. For more GPUs, split the sweep into more stacks (hydra.launcher.max_models)."
            )
    return dict(value)


def pieces(sizes: Sequence[int], workers: int) -> list[int]:
    """How many stacks to cut each group into so that ``workers`` devices share the work evenly.

    Groups are cut, the one with the largest stacks first, until there are at least as many stacks
    as workers and none holds more than its share (the total over ``workers``, rounded up); a
    group is never cut below one run a stack.

    Example:
        >>> pieces([10], 2), pieces([10, 2], 4), pieces([100, 1, 1], 2), pieces([3, 3, 3], 2), pieces([1], 4)
        ([2], [4, 1], [2, 1, 1], [1, 1, 1], [1])
    """
    counts = [1] * len(sizes)
    share = math.ceil(sum(sizes) / workers) if sizes else 0
    while True:
        splittable = [i for i, n in enumerate(sizes) if counts[i] < n]
        if not splittable:
            return counts
        largest = max(splittable, key=lambda i: (math.ceil(sizes[i] / counts[i]), -i))
        if sum(counts) >= workers and math.ceil(sizes[largest] / counts[largest]) <= share:
            return counts
        counts[largest] += 1


def split(items: Sequence[Any], count: int) -> list[list[Any]]:
    """``items`` cut in order into ``count`` runs of sizes differing by at most one.

    Example:
        >>> split(list("abcdefg"), 3)
        [['a', 'b', 'c'], ['d', 'e'], ['f', 'g']]
    """
    size, extra = divmod(len(items), count)
    out, start = [], 0
    for i in range(count):
        end = start + size + (i < extra)
        out.append(list(items[start:end]))
        start = end
    return out


def train(cfgs: Sequence[Any], max_models: int | None, env: Mapping[str, str], device: str | None = None) -> list[dict]:
    """Train one stack where it was sent: :func:`lightning_aca.stacked.run_stacked` on ``device``.

    ``env`` holds the jobs' ``hydra.job.env_set``; ``device`` None picks :func:`default_device`. Returns
    the records in the order of ``cfgs``.
    """
    from hydra.core.utils import env_override, setup_globals

    from lightning_aca.stacked import run_stacked

    setup_globals()  # Hydra's resolvers (now, …), which a config as written may still use
    with env_override(dict(env)):
        return run_stacked(list(cfgs), device=device or default_device(), max_models=max_models)


def _pin(device: str, threads: int | None) -> None:
    """Worker initializer: make ``device`` the worker's CUDA device, or share the CPU cores among CPU workers."""
    import torch

    where = torch.device(device)
    if where.type == "cuda" and where.index is not None:
        torch.cuda.set_device(where)
    if where.type == "cpu" and threads is not None:
        torch.set_num_threads(threads)


def run_on_devices(
    fn: Callable[..., Any],
    tasks: Sequence[tuple],
    devices: Sequence[str],
    sent: Callable[[int, str], None],
) -> Iterator[tuple[int, Any]]:
    """Run ``fn(*task, device=...)`` for every task, each device running one task at a time in its own worker.

    Tasks are handed out in order, each to the next free device; ``sent(index, "on <device>")`` is
    called as a task is handed out. Yields ``(index, result)`` as tasks finish, the result being the
    exception for a task that raised or whose worker died (that device then gets a new worker).
    """
    context = multiprocessing.get_context("spawn")
    on_cpu = sum(d == "cpu" or d.startswith("cpu:") for d in devices)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = max(1, cores // on_cpu) if on_cpu > 1 else None

    def worker(device: str) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(1, mp_context=context, initializer=_pin, initargs=(device, threads))

    pools: list[cf.ProcessPoolExecutor | None] = [None] * len(devices)
    running: dict[cf.Future, tuple[int, int]] = {}  # future -> (task index, device index)
    waiting = list(range(len(tasks)))

    def hand_out(slot: int) -> None:
        if not waiting:
            return
        index = waiting.pop(0)
        if pools[slot] is None:
            pools[slot] = worker(devices[slot])
        sent(index, f"on {devices[slot]}")
        running[pools[slot].submit(fn, *tasks[index], device=devices[slot])] = (index, slot)

    try:
        for slot in range(len(devices)):
            hand_out(slot)
        while running:
            done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for future in done:
                index, slot = running.pop(future)
                error = future.exception()
                if isinstance(error, BrokenProcessPool):
                    pools[slot].shutdown(wait=False)
                    pools[slot] = None  # the next task on this device starts a new worker
                yield index, future.result() if error is None else error
                hand_out(slot)
    finally:
        for pool in pools:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)


class _Requeueable:
    """``fn`` as a submitit job that a timeout or preemption requeues with the same arguments.

    Submitit calls :meth:`checkpoint` when the job is about to end early; the requeued stack skips
    the runs whose records were written and trains the rest.
    """

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, *args, **kwargs)


def submitit_arguments(params: Mapping[str, Any], folder: str, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The arguments of ``submitit.AutoExecutor(**first)`` and of its ``update_parameters(**second)``.

    ``params`` is ``hydra.launcher.submitit``, mapped as hydra-submitit-launcher maps its config:
    the shared parameters as they are, the SLURM ones as ``slurm_<name>``, ``max_num_timeout`` to
    the executor. ``folder`` (``submitit_folder`` overrides it) holds submitit's pickles and logs;
    ``name`` names the jobs unless ``params`` does; ``timeout_min`` is 60 unless given.

    Example:
        >>> submitit_arguments({"cluster": "slurm", "partition": "gpu", "gpus_per_node": 1}, "sweep/.submitit/%j", "aca")
        ({'folder': 'sweep/.submitit/%j', 'cluster': 'slurm'}, {'timeout_min': 60, 'name': 'aca', 'slurm_partition': 'gpu', 'gpus_per_node': 1})
    """
    params = {**SUBMITIT_DEFAULTS, "name": name, **params}
    init = {"folder": params.pop("submitit_folder", folder), "cluster": params.pop("cluster", None)}
    timeouts = params.pop("max_num_timeout", None)
    if timeouts is not None:
        init.update({f"{cluster}_max_num_timeout": timeouts for cluster in ("slurm", "local")})
    return init, {key if key in SUBMITIT_SHARED else f"slurm_{key}": value for key, value in params.items()}


def submitit_executor(params: Mapping[str, Any], folder: str, name: str) -> Any:
    """A ``submitit.AutoExecutor`` set up from ``hydra.launcher.submitit`` (see :func:`submitit_arguments`)."""
    import submitit

    init, update = submitit_arguments(params, folder, name)
    executor = submitit.AutoExecutor(**init)
    executor.update_parameters(**update)
    return executor


def run_as_submitit_jobs(
    fn: Callable[..., Any],
    tasks: Sequence[tuple],
    executor: Any,
    sent: Callable[[int, str], None],
) -> Iterator[tuple[int, Any]]:
    """Submit ``fn(*task)`` for every task as one submitit job array; yield ``(index, result)`` as jobs finish.

    ``sent(index, "as submitit job <id> (<cluster>)")`` names each job once submitted. A failed job's result is its exception,
    which names the job's log file.
    """
    jobs = executor.map_array(_Requeueable(fn), *zip(*tasks, strict=True)) if tasks else []
    where = {id(job): i for i, job in enumerate(jobs)}
    for i, job in enumerate(jobs):
        sent(i, f"as submitit job {job.job_id} ({executor.cluster})")
    from submitit.helpers import as_completed

    for job in as_completed(jobs, poll_frequency=_POLL_S):
        try:
            result: Any = job.result()
        except Exception as err:
            result = RuntimeError(f"submitit job {job.job_id} failed (log: {job.paths.stderr}): {err}")
            result.__cause__ = err
        yield where[id(job)], result
