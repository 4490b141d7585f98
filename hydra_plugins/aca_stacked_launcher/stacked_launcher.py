"""The Hydra ``Launcher`` plugin class; the work is in :mod:`._core` (imported when a sweep launches)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class StackedLauncher(Launcher):
    """Train a batch of ``aca-run`` jobs as stacked models where they allow it, one by one where not.

    Args:
        max_models: most models in one stack (:func:`lightning_aca.stacked.run_stacked` chunks
            larger groups, smaller where its memory estimate says so); ``None``: as many as the
            memory estimate allows. With ``submitit``, a larger group becomes several jobs.
        device: torch device of the stacks; ``None`` picks ``cuda`` when available, else ``cpu``
            (with ``submitit``: where the job runs).
        devices: several local torch devices (``["cuda:0", "cuda:1"]``; ``"all"``: every visible
            GPU), each trained on by its own worker process, the sweep's stacks cut so that every
            device gets a share; ``None``: one device, ``device``, in this process.
        submitit: each stack as one submitit job (``cluster``: ``slurm``, ``local`` or ``debug``,
            with hydra-submitit-launcher's parameter names: ``timeout_min``, ``partition``,
            ``gpus_per_node``, ``mem_gb``, ``additional_parameters`` …); ``None``: no submitit.
    """

    def __init__(
        self,
        max_models: int | None = 256,
        device: str | None = None,
        devices: Any = None,
        submitit: Any = None,
    ) -> None:
        from ._dispatch import devices_option, submitit_option

        if max_models is not None and (
            not isinstance(max_models, int) or isinstance(max_models, bool) or max_models < 1
        ):
            raise ValueError(f"hydra.launcher.max_models must be a positive int or null, got {max_models!r}.")
        self.devices = devices_option(devices)
        self.submitit = submitit_option(submitit)
        if self.devices is not None and device is not None:
            raise ValueError(
                f"hydra.launcher.device={device!r} and hydra.launcher.devices={devices!r} are both set; "
                "give one: device for one device, devices for several."
            )
        if self.devices is not None and self.submitit is not None:
            raise ValueError(
                "hydra.launcher.devices and hydra.launcher.submitit are both set; give one: devices trains on this "
                "machine's devices, submitit sends each stack to a job (on hydra.launcher.device, or the GPU it gets)."
            )
        self.max_models = max_models
        self.device = device
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from ._core import KeptCompositions

        # the sweeper composes each job to validate its batch; the launcher keeps that composition
        if not isinstance(hydra_context.config_loader, KeptCompositions):
            hydra_context.config_loader = KeptCompositions(hydra_context.config_loader)
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from ._core import launch

        return launch(self, job_overrides, initial_job_idx)
