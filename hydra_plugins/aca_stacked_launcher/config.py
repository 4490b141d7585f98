"""The stacked launcher's structured config, registered as ``hydra/launcher=stacked``.

A sweep's runs that differ only in α, seeds, DP noise / target ε, clipping norm or learning rate
are trained together as one torch.func-stacked model per group (:mod:`lightning_aca.stacked`);
other runs (e.g. Group DRO) one by one as ``aca-run`` trains them, with the same run directories,
records and resume. Registered in Hydra's ``ConfigStore``, as Hydra's own launcher plugins are,
so ``hydra/launcher=stacked`` selects it in ``aca-run`` and in any other Hydra app.
"""

# no `from __future__ import annotations`: Hydra imports this module before registering it in
# sys.modules, where dataclasses cannot look string annotations up
from dataclasses import dataclass

from hydra.core.config_store import ConfigStore


@dataclass
class StackedLauncherConf:
    """Arguments of :class:`~hydra_plugins.aca_stacked_launcher.stacked_launcher.StackedLauncher`."""

    _target_: str = "hydra_plugins.aca_stacked_launcher.stacked_launcher.StackedLauncher"
    # most models trained as one stack (larger groups are split; the engine's memory estimate may
    # lower it); null: as many as fit in memory
    max_models: int | None = 256
    # torch device of the stacked models ("cuda", "cuda:1", "cpu"); null: cuda if available, else cpu
    device: str | None = None


ConfigStore.instance().store(group="hydra/launcher", name="stacked", node=StackedLauncherConf, provider="lightning-aca")
