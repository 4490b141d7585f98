"""The stacked launcher's structured config, registered as ``hydra/launcher=aca_stacked`` and ``=stacked``.

``hydra/launcher=stacked`` selects it in any Hydra app. In ``aca-run``, whose search path finds
``lightning_aca``'s ``conf/hydra/launcher/stacked.yaml`` first, that file (which extends
``aca_stacked``) is the one selected.
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


for _name in ("aca_stacked", "stacked"):
    ConfigStore.instance().store(group="hydra/launcher", name=_name, node=StackedLauncherConf, provider="lightning-aca")
