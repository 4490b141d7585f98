"""The Hydra ``Sweeper`` plugin class; the work is in :mod:`._core` (imported when a sweep starts)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class CriticalMassSweeper(Sweeper):
    """Search each setting's critical mass α* in rounds of runs instead of sweeping an α grid.

    Args:
        alpha_range: ``[low, high]`` of ``collective.alpha``; ``None``: the smallest and largest
            value of a swept ``collective.alpha`` (a list, or ``interval(low,high)``).
        seeds: the seeds of each point that decides α*, a list or a count ``n`` (seeds
            ``0..n-1``); ``None``: the swept ``seed`` values, else ``[0, 1, 2]``.
        success_level: the success level S* that defines α*.
        tolerance: α* is located when its bootstrap interval lies within α̂·(1 ± tolerance).
        max_runs: the most runs per setting (runs found in the sweep directory included).
        initial: α values of the first round, log-spaced inside the range.
        explore_seeds: seeds of a point placed to bracket and cut α*.
        points_per_round: the most α values a round tries per setting: k points k-section the
            bracket (it shrinks by a factor k + 1 in log α a round), 1 bisects it.
        params: swept parameters, as the basic sweeper's ``hydra.sweeper.params``.
    """

    def __init__(
        self,
        alpha_range: Sequence[float] | None = None,
        seeds: Sequence[int] | int | None = None,
        success_level: float = 0.9,
        tolerance: float = 0.25,
        max_runs: int = 40,
        initial: int = 3,
        explore_seeds: int = 1,
        points_per_round: int = 4,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        self.alpha_range = None if alpha_range is None else list(alpha_range)
        self.seeds = seeds if seeds is None or isinstance(seeds, int) else list(seeds)
        self.success_level = success_level
        self.tolerance = tolerance
        self.max_runs = max_runs
        self.initial = initial
        self.explore_seeds = explore_seeds
        self.points_per_round = points_per_round
        self.params = dict(params or {})
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher: Launcher | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        from ._core import sweep

        return sweep(self, arguments)
