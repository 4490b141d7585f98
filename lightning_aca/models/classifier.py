"""Small reference classifiers for experiments: plain LightningModules, nothing ACA-specific.

Any LightningModule works with this package; these exist so that the embedded default
experiment (and the Hydra ``model/`` group) has an MLP and a small CNN without BatchNorm (so
they are valid under DP-SGD). :class:`CrossEntropyModule` holds the steps and metrics every
reference model shares (:class:`Classifier` here, ``TextClassifier`` over text).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy
from typing_extensions import override


def mlp(input_shape: Sequence[int], num_classes: int, hidden: int = 128, depth: int = 1) -> nn.Sequential:
    """Flatten → ``depth`` × (Linear, ReLU) → Linear."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(input_shape)
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def small_cnn(input_shape: Sequence[int], num_classes: int, channels: int = 16) -> nn.Sequential:
    """Two 3×3 conv blocks (GroupNorm, not BatchNorm, so DP-SGD applies) → global pool → Linear."""
    if len(input_shape) != 3:
        raise ValueError(f"small_cnn needs input_shape=(C, H, W), got {tuple(input_shape)}.")
    c = input_shape[0]
    return nn.Sequential(
        nn.Conv2d(c, channels, 3, padding=1),
        nn.GroupNorm(min(4, channels), channels),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(channels, 2 * channels, 3, padding=1),
        nn.GroupNorm(min(4, 2 * channels), 2 * channels),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(2 * channels, num_classes),
    )


def linear(input_shape: Sequence[int], num_classes: int) -> nn.Sequential:
    """Flatten → Linear: multinomial logistic regression."""
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes))


_ARCHS = {"linear": linear, "mlp": mlp, "cnn": small_cnn}


class CrossEntropyModule(L.LightningModule):
    """Training, validation and test steps with cross-entropy over ``(x, y, ...)`` batches.

    Logs ``train/loss`` (the epoch's mean), ``val/loss``, ``val/acc`` and ``test/acc``; with
    ``hparams.per_sample_loss`` the training step returns the per-sample losses (for
    ``GroupDRO``). Subclasses give ``forward`` and ``configure_optimizers`` and call
    :meth:`_add_metrics` in their constructor.
    """

    def _add_metrics(self, num_classes: int) -> None:
        # the epoch's mean training loss, logged once per epoch: a per-step self.log costs more
        # than a small model's whole step (Lightning moves its result collection on every call)
        self.train_loss = MeanMetric()
        self.val_loss = MeanMetric()
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")

    @override
    def training_step(self, batch: Sequence[Any], batch_idx: int) -> Tensor:
        x, y = batch[0], batch[1]
        losses = F.cross_entropy(self(x), y, reduction="none")
        self.train_loss.update(losses.detach())
        return losses if self.hparams.per_sample_loss else losses.mean()

    @override
    def on_train_epoch_end(self) -> None:
        if self.train_loss.update_called:
            self.log("train/loss", self.train_loss.compute())
        self.train_loss.reset()

    @override
    def validation_step(self, batch: Sequence[Any], batch_idx: int) -> None:
        x, y = batch[0], batch[1]
        logits = self(x)
        self.val_loss.update(F.cross_entropy(logits, y, reduction="none"))
        self.val_acc.update(logits, y)

    @override
    def on_validation_epoch_end(self) -> None:
        if self.val_acc.update_called:
            self.log_dict({"val/loss": self.val_loss.compute(), "val/acc": self.val_acc.compute()})
        self.val_loss.reset()
        self.val_acc.reset()

    @override
    def test_step(self, batch: Sequence[Any], batch_idx: int) -> None:
        x, y = batch[0], batch[1]
        self.test_acc(self(x), y)
        self.log("test/acc", self.test_acc)


class Classifier(CrossEntropyModule):
    """A classifier trained with cross-entropy; logs ``train/loss``, ``val/acc``, ``test/acc``.

    Args:
        arch: ``"linear"`` (logistic regression), ``"mlp"`` or ``"cnn"``.
        input_shape: shape of one input, e.g. ``(1, 8, 8)``.
        num_classes: number of classes.
        lr, momentum, weight_decay: SGD settings (``optimizer="adam"`` ignores momentum).
        optimizer: ``"sgd"`` or ``"adam"``.
        per_sample_loss: ``training_step`` returns the per-sample losses (shape ``(batch,)``)
            instead of their mean, for firm callbacks that reduce them (``GroupDRO``).
        **arch_kwargs: passed to the architecture (``hidden``, ``depth`` / ``channels``).
    """

    def __init__(
        self,
        arch: str = "mlp",
        input_shape: Sequence[int] = (1, 8, 8),
        num_classes: int = 10,
        lr: float = 0.1,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        optimizer: str = "sgd",
        per_sample_loss: bool = False,
        **arch_kwargs: int,
    ) -> None:
        super().__init__()
        if arch not in _ARCHS:
            raise ValueError(f"arch must be one of {sorted(_ARCHS)}, got {arch!r}.")
        if optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}.")
        if lr <= 0:
            raise ValueError(f"lr must be positive, got {lr!r}.")
        self.save_hyperparameters()
        self.net = _ARCHS[arch](tuple(input_shape), num_classes, **arch_kwargs)
        self._add_metrics(num_classes)

    @override
    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    @override
    def configure_optimizers(self) -> torch.optim.Optimizer:
        hp = self.hparams
        if hp.optimizer == "adam":
            return torch.optim.Adam(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        return torch.optim.SGD(self.parameters(), lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay)
