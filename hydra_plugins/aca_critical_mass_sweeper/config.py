"""The critical-mass sweeper's structured config, registered as ``hydra/sweeper=aca_critical_mass``.

``conf/hydra/sweeper/critical_mass.yaml`` of ``lightning_aca`` extends it; select that one with
``hydra/sweeper=critical_mass``.
"""

# no `from __future__ import annotations`: Hydra imports this module before registering it in
# sys.modules, where dataclasses cannot look string annotations up
from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore


@dataclass
class CriticalMassSweeperConf:
    """Arguments of :class:`~hydra_plugins.aca_critical_mass_sweeper.critical_mass_sweeper.CriticalMassSweeper`."""

    _target_: str = "hydra_plugins.aca_critical_mass_sweeper.critical_mass_sweeper.CriticalMassSweeper"
    # [low, high] of collective.alpha; null: the smallest and largest swept collective.alpha
    alpha_range: Any = None
    # seeds of each point that decides alpha*: a list, or a count n (0..n-1); null: the swept seeds, else 3
    seeds: Any = None
    success_level: float = 0.9
    # alpha* is located when its bootstrap interval lies within alpha_hat * (1 +- tolerance)
    tolerance: float = 0.25
    # most runs per setting, runs found in the sweep directory included
    max_runs: int = 40
    # alpha values of the first round, log-spaced inside alpha_range
    initial: int = 3
    # seeds of a point placed to bracket and cut alpha* (the first ones of seeds)
    explore_seeds: int = 1
    # most alpha values a round tries per setting: k-section of the bracket (1: bisection); Any, so that
    # AlphaSearch, not OmegaConf, says what is wrong with a bad value
    points_per_round: Any = 4
    # swept parameters, as hydra.sweeper.params of the basic sweeper
    params: Any = None


ConfigStore.instance().store(
    group="hydra/sweeper", name="aca_critical_mass", node=CriticalMassSweeperConf, provider="lightning-aca"
)
