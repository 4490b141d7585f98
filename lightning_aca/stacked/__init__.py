"""The stacked engine: K runs of one architecture trained at once as one ``torch.func``-stacked LightningModule.

A sweep over α, seeds, DP-SGD's σ / ε / C, Group DRO's η or the learning rate trains K copies of
one network on one data set (Hardt et al. 2023, §2–3; Solanki et al. 2025 for the DP sweeps);
stacking them turns K processes into one vectorized model per device. Any LightningModule that
keeps its network as ``self.net`` stacks (:mod:`lightning_aca.stacked.network`), with its own
optimizer and schedule vectorized over models (:mod:`lightning_aca.stacked.optim`). Each
configuration still gets its own members, batches, noise and ``record.json``, as ``aca-run`` would
write it; with several collectives (``collective=two_collectives``; Karan et al. 2025) each
model's points carry their own collective's h_c(x, y), and each collective's α is a per-model number.
"""

from lightning_aca.stacked.config import STACKABLE_KEYS, stackable_reason
from lightning_aca.stacked.engine import run_stacked
from lightning_aca.stacked.gdro import StackedGroupDRO
from lightning_aca.stacked.module import StackedClassifier, StackedDataModule
from lightning_aca.stacked.network import network_reason
from lightning_aca.stacked.optim import StackedOptimizer, lr_schedule, optimizer_reason

__all__ = [
    "STACKABLE_KEYS",
    "StackedClassifier",
    "StackedDataModule",
    "StackedGroupDRO",
    "StackedOptimizer",
    "lr_schedule",
    "network_reason",
    "optimizer_reason",
    "run_stacked",
    "stackable_reason",
]
