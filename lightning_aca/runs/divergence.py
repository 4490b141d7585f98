"""Whether a run's training stayed finite: a run whose loss or weights become non-finite is no result.

A NaN in the training data or a learning rate large enough to overflow the weights makes the loss
and then the weights NaN or ±inf; the metrics measured on such a network (its argmax picks a fixed
class) can look like a perfect success rate. :func:`non_finite` says why a run is no result, for
both engines: the standard engine's Trainer watches the loss with :class:`FiniteTraining`, the
stacked engine reads each model's epoch losses and weights.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback
from typing_extensions import override

__all__ = ["FiniteTraining", "NonFiniteTrainingError", "non_finite"]


class NonFiniteTrainingError(ValueError):
    """A run whose training loss or weights became non-finite; the message names the run and the likely cause."""


def non_finite(epoch_losses: Sequence[float], weights: Iterable[tuple[str, torch.Tensor]]) -> str | None:
    """Why a run's training is no result (its first non-finite epoch loss, else its non-finite weights), or None.

    Args:
        epoch_losses: the mean training loss of each epoch, in order.
        weights: the trained network's ``(name, tensor)`` pairs (``named_parameters()``).

    Example:
        >>> non_finite([0.7, 0.5], [("w", torch.ones(2))]) is None
        True
        >>> non_finite([0.7, float("nan")], [("w", torch.ones(2))])
        'the training loss is nan in epoch 1'
        >>> non_finite([0.7], [("w", torch.tensor([1.0, float("inf")])), ("b", torch.zeros(1))])
        'the weights hold non-finite values (w)'
    """
    for epoch, loss in enumerate(epoch_losses):
        if not math.isfinite(loss):
            return f"the training loss is {loss} in epoch {epoch}"
    bad = [name for name, tensor in weights if not bool(torch.isfinite(tensor.detach()).all())]
    if bad:
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        return f"the weights hold non-finite values ({shown})"
    return None


class FiniteTraining(Callback):
    """Record each epoch's mean training loss and stop training once it is non-finite.

    The loss is summed on the device and read once an epoch, so watching it adds no
    synchronisation per step. ``epoch_losses`` feeds :func:`non_finite`.
    """

    def __init__(self) -> None:
        self.epoch_losses: list[float] = []
        self._sum: torch.Tensor | None = None
        self._steps = 0

    @override
    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self._sum, self._steps = None, 0

    @override
    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor):
            loss = loss.detach().float().sum()
            self._sum = loss if self._sum is None else self._sum + loss
            self._steps += 1

    @override
    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if self._sum is None:
            return
        self.epoch_losses.append(float(self._sum) / self._steps)
        if not math.isfinite(self.epoch_losses[-1]):
            trainer.should_stop = True  # every later step trains on non-finite weights
