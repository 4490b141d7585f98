"""A LightningModule written the way lightning-hydra-template writes its ``MNISTLitModule``.

Nothing here knows lightning-aca: a plain dense network (with BatchNorm, as ``SimpleDenseNet``)
held as ``self.net``, cross-entropy, and an optimizer and scheduler given as partials by Hydra.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn


class DenseNet(nn.Module):
    """Flatten → (Linear, BatchNorm1d, ReLU) × 2 → Linear."""

    def __init__(self, input_size: int = 64, hidden: int = 32, output_size: int = 10, batch_norm: bool = True) -> None:
        super().__init__()
        norm = nn.BatchNorm1d if batch_norm else (lambda width: nn.Identity())
        self.model = nn.Sequential(
            nn.Linear(input_size, hidden),
            norm(hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            norm(hidden),
            nn.ReLU(),
            nn.Linear(hidden, output_size),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.reshape(x.shape[0], -1))


class DigitsLitModule(L.LightningModule):
    """``net`` trained with cross-entropy by ``optimizer`` (a partial), with an optional ``scheduler`` (a partial)."""

    def __init__(self, net: nn.Module, optimizer: Any, scheduler: Any = None, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False, ignore=["net"])
        self.net = net
        self.criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch[0], batch[1]
        loss = self.criterion(self(x), y)
        self.log("train/loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("val/loss", self.criterion(self(batch[0]), batch[1]))

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self.log("test/loss", self.criterion(self(batch[0]), batch[1]))

    def configure_optimizers(self) -> Any:
        optimizer = self.hparams.optimizer(params=self.parameters())
        if self.hparams.scheduler is None:
            return {"optimizer": optimizer}
        scheduler = self.hparams.scheduler(optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch", "frequency": 1}}


class BackboneLitModule(DigitsLitModule):
    """The same module with its network kept as ``self.backbone``."""

    def __init__(self, net: nn.Module, optimizer: Any, scheduler: Any = None) -> None:
        super().__init__(net, optimizer, scheduler)
        self.backbone = self.net
        del self.net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)
