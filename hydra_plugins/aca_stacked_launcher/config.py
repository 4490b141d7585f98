"""The stacked launcher's structured config, registered as ``hydra/launcher=stacked``.

A sweep's runs that differ only in α, seeds, DP noise / target ε, clipping norm or learning rate
are trained together as one torch.func-stacked model per group (:mod:`lightning_aca.stacked`);
other runs (e.g. Group DRO) one by one as ``aca-run`` trains them, with the same run directories,
records and resume. Stacks train in this process, on several local devices (``devices``) or as
submitit jobs (``submitit``). Registered in Hydra's ``ConfigStore``, as Hydra's own launcher
plugins are, so ``hydra/launcher=stacked`` selects it in ``aca-run`` and in any other Hydra app.
"""

# no `from __future__ import annotations`: Hydra imports this module before registering it in
# sys.modules, where dataclasses cannot look string annotations up
from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore


@dataclass
class StackedLauncherConf:
    """Arguments of :class:`~hydra_plugins.aca_stacked_launcher.stacked_launcher.StackedLauncher`."""

    _target_: str = "hydra_plugins.aca_stacked_launcher.stacked_launcher.StackedLauncher"
    # most models trained as one stack (larger groups are split; the engine's memory estimate may
    # lower it); null: as many as fit in memory. With submitit, a larger group becomes several jobs
    max_models: int | None = 256
    # torch device of the stacked models ("cuda", "cuda:1", "cpu"); null: cuda if available, else cpu
    device: str | None = None
    # several local devices, one worker process each, the stacks cut so each gets a share:
    # [cuda:0,cuda:1], all (every visible GPU), [cpu,cpu]; null: one device (device above)
    devices: Any = None
    # each stack as one submitit job: {cluster: slurm|local|debug, timeout_min: 60, partition: ...,
    # gpus_per_node: 1, mem_gb: ..., additional_parameters: {...}} (hydra-submitit-launcher's names);
    # null: no submitit
    submitit: Any = None


ConfigStore.instance().store(group="hydra/launcher", name="stacked", node=StackedLauncherConf, provider="lightning-aca")
