"""The Hydra ``Launcher`` plugin class; the work is in :mod:`._core` (imported when a sweep launches)."""

from __future__ import annotations

from collections.abc import Sequence

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class StackedLauncher(Launcher):
    """Train a batch of ``aca-run`` jobs as stacked models where they allow it, one by one where not.

    Args:
        max_models: most models in one stack (:func:`lightning_aca.stacked.run_stacked` chunks
            larger groups, smaller where its memory estimate says so); ``None``: as many as the
            memory estimate allows.
        device: torch device of the stacks; ``None`` picks ``cuda`` when available, else ``cpu``.
    """

    def __init__(self, max_models: int | None = 256, device: str | None = None) -> None:
        if max_models is not None and (
            not isinstance(max_models, int) or isinstance(max_models, bool) or max_models < 1
        ):
            raise ValueError(f"hydra.launcher.max_models must be a positive int or null, got {max_models!r}.")
        self.max_models = max_models
        self.device = device
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from ._core import launch

        return launch(self, job_overrides, initial_job_idx)
