"""``CollectiveMetrics``: evaluate the collective's success during any Lightning run.

At the end of every validation epoch (or training epoch, when there is no validation) and at
the end of testing, runs the model over the collective's signal evaluation set (Hardt et al.
2023, §3: S(α) = Pr[f(g(x)) = y*] on held-out inputs with true label ≠ y*) and, if asked, the
clean test set, and logs under the stable ``aca/`` namespace through the Trainer's loggers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import move_data_to_device
from torch import Tensor
from torch.utils.data import DataLoader, Subset
from torchmetrics import Metric
from torchmetrics.classification import MulticlassAccuracy

from lightning_aca.collective.strategies import SignalErasing
from lightning_aca.metrics.groups import GroupAccuracy, WorstGroupAccuracy
from lightning_aca.metrics.success import CollectiveSuccess, SignalErasureSuccess


def _shard(loader: DataLoader, rank: int, world_size: int) -> DataLoader:
    """Every ``world_size``-th item from ``rank``: disjoint shards, no padding, exact sums."""
    if world_size == 1:
        return loader
    shard = Subset(loader.dataset, range(rank, len(loader.dataset), world_size))
    return DataLoader(shard, batch_size=loader.batch_size, collate_fn=loader.collate_fn, num_workers=loader.num_workers)


class CollectiveMetrics(L.Callback):
    """Log the collective's success (and clean / worst-group accuracy) during training and test.

    Drop it into ``Trainer(callbacks=[...])``. Loaders come from a ``CollectiveDataModule``
    passed to ``fit``/``test``, or are given explicitly. The module needs no change: the
    callback calls ``pl_module(x)`` (or ``predict_fn(pl_module, x)``) and reads logits,
    probabilities or labels. The model's train/eval modes and the RNG state are restored.

    Logged keys (a stable interface): ``aca/success`` (S), ``aca/erasure_agreement``
    (f(g(x)) = f(x), when the signal batches carry clean inputs), ``aca/clean_acc``,
    ``aca/worst_group_acc`` and ``aca/group_acc/<g>`` (with ``num_groups``), and from a
    ``CollectiveDataModule`` ``aca/alpha``, ``aca/population_alpha``, ``aca/members``.

    Args:
        signal_dataloader: batches ``(g(x), success_label[, x, true_label])``; default: the
            datamodule's ``signal_test_dataloader(return_clean=...)``.
        clean_dataloader: batches ``(x, y[, group])``; default: the datamodule's clean test
            loader when ``clean=True``.
        clean: also measure clean accuracy (and worst-group accuracy).
        erasure_agreement: ask the datamodule for clean inputs beside signal inputs and log
            ``aca/erasure_agreement`` (default: on for ``SignalErasing``).
        num_groups: number of groups; group indices are read at ``group_index`` of clean batches.
        group_index: position (tuple batches) or key (dict batches) of the group index.
        top_k: success counts when the success label is among the top-k scores.
        every_n_epochs: evaluate every n-th epoch during fit (test always evaluates).
        input_key, target_key: positions or keys of input and label in batches.
        predict_fn: ``(pl_module, x) -> scores``; default ``pl_module(x)``.
    """

    def __init__(
        self,
        signal_dataloader: DataLoader | None = None,
        clean_dataloader: DataLoader | None = None,
        clean: bool = True,
        erasure_agreement: bool | None = None,
        num_groups: int | None = None,
        group_index: int | str = 2,
        top_k: int = 1,
        every_n_epochs: int = 1,
        input_key: int | str = 0,
        target_key: int | str = 1,
        predict_fn: Callable[[L.LightningModule, Any], Tensor] | None = None,
    ) -> None:
        if not isinstance(every_n_epochs, int) or every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be a positive int, got {every_n_epochs!r}.")
        if num_groups is not None and (not isinstance(num_groups, int) or num_groups < 1):
            raise ValueError(f"num_groups must be a positive int or None, got {num_groups!r}.")
        CollectiveSuccess(top_k=top_k)  # validates top_k now rather than at the first epoch's end
        self.signal_dataloader = signal_dataloader
        self.clean_dataloader = clean_dataloader
        self.clean = clean
        self.erasure_agreement = erasure_agreement
        self.num_groups = num_groups
        self.group_index = group_index
        self.top_k = top_k
        self.every_n_epochs = every_n_epochs
        self._metrics: dict[tuple, Metric] = {}
        self.input_key, self.target_key = input_key, target_key
        self.predict_fn = predict_fn
        self.results: dict[str, dict[str, float]] = {}
        self._evaluated_epoch = -1

    # -- where the loaders come from -------------------------------------------------------
    def _loaders(self, trainer: L.Trainer) -> tuple[DataLoader, DataLoader | None]:
        dm = trainer.datamodule
        signal = self.signal_dataloader
        if signal is None:
            if not hasattr(dm, "signal_test_dataloader"):
                raise ValueError(
                    "CollectiveMetrics needs signal_dataloader=... or a CollectiveDataModule passed to "
                    "trainer.fit/test (datamodule=...)."
                )
            erasing = self.erasure_agreement
            if erasing is None:
                erasing = isinstance(dm.strategy, SignalErasing)
            signal = dm.signal_test_dataloader(return_clean=erasing)
        clean = self.clean_dataloader
        if clean is None and self.clean and hasattr(dm, "clean_test_dataloader"):
            clean = dm.clean_test_dataloader()
        return signal, clean

    # -- hooks ---------------------------------------------------------------------------------
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._loaders(trainer)  # fail at fit/test start if there is nothing to evaluate on

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.current_epoch % self.every_n_epochs:
            return
        self._evaluated_epoch = trainer.current_epoch
        self._log(pl_module, self.evaluate(trainer, pl_module), "validate")

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._evaluated_epoch == trainer.current_epoch or trainer.current_epoch % self.every_n_epochs:
            return  # validation already evaluated this epoch
        self._evaluated_epoch = trainer.current_epoch
        self._log(pl_module, self.evaluate(trainer, pl_module), "fit")

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log(pl_module, self.evaluate(trainer, pl_module), "test")

    def _log(self, pl_module: L.LightningModule, values: dict[str, float], stage: str) -> None:
        self.results[stage] = values
        for name, value in values.items():
            pl_module.log(name, value, prog_bar=name == "aca/success", on_epoch=True, on_step=False)

    # -- evaluation ----------------------------------------------------------------------------
    def evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float]:
        """Compute every metric now and return ``{"aca/<name>": value}`` (synced across ranks)."""
        signal, clean = self._loaders(trainer)
        rank, world = trainer.global_rank, trainer.world_size
        device = pl_module.device
        modes = {m: m.training for m in pl_module.modules()}
        fork_devices = [device] if device.type == "cuda" else []
        pl_module.eval()
        try:
            with torch.random.fork_rng(devices=fork_devices), torch.no_grad():
                values = self._signal_metrics(pl_module, _shard(signal, rank, world), device)
                if clean is not None:
                    values.update(self._clean_metrics(pl_module, _shard(clean, rank, world), device))
        finally:
            for module, mode in modes.items():
                module.train(mode)
        dm = trainer.datamodule
        train_set = getattr(dm, "train_dataset", None)
        if hasattr(train_set, "members"):
            values["aca/alpha"] = float(dm.alpha)
            values["aca/population_alpha"] = float(train_set.population_alpha)
            values["aca/members"] = float(len(train_set.members))
        return values

    def _parts(self, batch: Any, keys: Sequence[int | str]) -> list[Any]:
        if isinstance(batch, Mapping):
            return [batch.get(k) for k in keys]
        return [batch[k] if isinstance(k, int) and k < len(batch) else None for k in keys]

    def _predict(self, pl_module: L.LightningModule, x: Any) -> Tensor:
        return self.predict_fn(pl_module, x) if self.predict_fn is not None else pl_module(x)

    def _signal_metrics(
        self, pl_module: L.LightningModule, loader: DataLoader, device: torch.device
    ) -> dict[str, float]:
        success = self._fresh(("success",), lambda: CollectiveSuccess(top_k=self.top_k), device)
        agreement = self._fresh(("agreement",), SignalErasureSuccess, device)
        for batch in loader:
            batch = move_data_to_device(batch, device)
            if isinstance(batch, Mapping):
                x, y, x_clean = batch[self.input_key], batch[self.target_key], batch.get("clean_input")
            else:
                x, y = batch[self.input_key], batch[self.target_key]
                x_clean = batch[2] if len(batch) >= 4 else None
            scores = self._predict(pl_module, x)
            success.update(scores, y)
            if x_clean is not None:
                agreement.update(scores, self._predict(pl_module, x_clean))
        values = {"aca/success": float(success.compute())}
        if agreement.update_called:
            values["aca/erasure_agreement"] = float(agreement.compute())
        return values

    def _clean_metrics(
        self, pl_module: L.LightningModule, loader: DataLoader, device: torch.device
    ) -> dict[str, float]:
        accuracy: Metric | None = None
        groups = ()
        if self.num_groups is not None:
            groups = (
                self._fresh(("group",), lambda: GroupAccuracy(self.num_groups), device),
                self._fresh(("worst_group",), lambda: WorstGroupAccuracy(self.num_groups), device),
            )
        for batch in loader:
            batch = move_data_to_device(batch, device)
            x, y, g = self._parts(batch, (self.input_key, self.target_key, self.group_index))
            scores = self._predict(pl_module, x)
            if accuracy is None:
                num_classes = scores.shape[-1] if scores.dim() == 2 else int(y.max()) + 1
                accuracy = self._fresh(
                    ("accuracy", num_classes), partial(MulticlassAccuracy, num_classes, average="micro"), device
                )
            accuracy.update(scores, y)
            if groups:
                if g is None:
                    raise ValueError(
                        f"CollectiveMetrics(num_groups={self.num_groups}) found no group index at "
                        f"group_index={self.group_index!r} of the clean batches; set group_index."
                    )
                for metric in groups:
                    metric.update(scores, y, g)
        if accuracy is None:
            return {}
        values = {"aca/clean_acc": float(accuracy.compute())}
        if self.num_groups is not None:
            values["aca/worst_group_acc"] = float(groups[1].compute())
            for g, acc in enumerate(groups[0].compute().tolist()):
                values[f"aca/group_acc/{g}"] = acc
        return values

    def _fresh(self, key: tuple, make: Callable[[], Metric], device: torch.device) -> Metric:
        """The metric for ``key``, reset, on ``device``: built once, reused every evaluation."""
        metric = self._metrics.get(key)
        if metric is None:
            metric = self._metrics[key] = make()
        metric.reset()
        return metric.to(device)

    def state_dict(self) -> dict[str, Any]:
        return {"results": self.results}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.results = dict(state_dict.get("results", {}))
