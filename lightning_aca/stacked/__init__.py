"""The stacked engine: K runs of one architecture trained at once as one ``torch.func``-stacked LightningModule.

A sweep over α, seeds, DP-SGD's σ / ε / C or the learning rate trains K copies of one small
network on one data set (Hardt et al. 2023, §2–3; Solanki et al. 2025 for the DP sweeps);
stacking them turns K processes into one vectorized model per device. Each configuration still
gets its own members, batches, noise and ``record.json``, as ``aca-run`` would write it; with
several collectives (``collective=two_collectives``; Karan et al. 2025) each model's points carry
their own collective's h_c(x, y), and each collective's α is a per-model number.
"""

from lightning_aca.stacked.config import STACKABLE_KEYS, stackable_reason
from lightning_aca.stacked.engine import run_stacked
from lightning_aca.stacked.module import StackedClassifier, StackedDataModule

__all__ = ["STACKABLE_KEYS", "StackedClassifier", "StackedDataModule", "run_stacked", "stackable_reason"]
