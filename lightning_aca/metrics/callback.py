"""``CollectiveMetrics``: evaluate the collective's success during any Lightning run.

At the end of every validation epoch (or training epoch, when there is no validation) and at
the end of testing, runs the model over the collective's signal evaluation set (Hardt et al.
2023, §3: S(α) = Pr[f(g(x)) = y*] on held-out inputs with true label ≠ y*), over the clean
versions of the same inputs (the baseline rate of predicting y* without the signal) and, if
asked, the clean test set, and logs under the stable ``aca/`` namespace through the Trainer's
loggers.
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
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy
from typing_extensions import override

from lightning_aca.collective.strategies import SignalErasing
from lightning_aca.metrics.functional import collective_sizes
from lightning_aca.metrics.groups import GroupAccuracy, WorstGroupAccuracy
from lightning_aca.metrics.success import CollectiveSuccess, SignalErasureSuccess
from lightning_aca.runs.keys import key_names, metric_key
from lightning_aca.validation import positive_int


def _shard(loader: DataLoader, rank: int, world_size: int) -> DataLoader:
    """Every ``world_size``-th item from ``rank``: disjoint shards, no padding, exact sums."""
    if world_size == 1:
        return loader
    shard = Subset(loader.dataset, range(rank, len(loader.dataset), world_size))
    return DataLoader(shard, batch_size=loader.batch_size, collate_fn=loader.collate_fn, num_workers=loader.num_workers)


class CollectiveMetrics(L.Callback):
    """Log the collective's success, its baseline, and clean / worst-group accuracy during training and test.

    Drop it into ``Trainer(callbacks=[...])``. Loaders come from a ``CollectiveDataModule``
    passed to ``fit``/``test``, or are given explicitly. The module needs no change: the
    callback calls ``pl_module(x)`` (or ``predict_fn(pl_module, x)``) and reads logits,
    probabilities or labels. The model's train/eval modes and the RNG state are restored.

    Logged keys (a stable interface): ``aca/success`` (S, Hardt et al. 2023, §3),
    ``aca/baseline_success`` (the same measure on the clean versions of the same inputs: for
    planting, the rate of predicting y* without the signal; S means little unless it is above
    this), ``aca/erasure_agreement`` (f(g(x)) = f(x), for erasing), ``aca/clean_acc``,
    ``aca/worst_group_acc`` and ``aca/group_acc/<g>`` (with ``num_groups``), and from a
    ``CollectiveDataModule`` ``aca/alpha``, ``aca/population_alpha``, ``aca/members``.

    With several collectives (Karan et al. 2025) each is judged on its own signal evaluation set:
    ``aca/success/<name>``, ``aca/baseline_success/<name>``, ``aca/erasure_agreement/<name>``,
    ``aca/alpha/<name>``, ``aca/members/<name>`` and ``aca/population_alpha/<name>``; clean and
    group accuracies stay shared (no bare ``aca/success``).

    Args:
        signal_dataloader: batches ``(g(x), success_label[, ..., x, true_label])``, the clean
            input second to last, or a ``{name: loader}`` mapping (keys ``aca/<metric>/<name>``);
            default: the datamodule's ``signal_test_dataloader(return_clean=True)`` for each
            of its collectives.
        clean_dataloader: batches ``(x, y[, group])``; default: the datamodule's clean test
            loader when ``clean=True``.
        clean: also measure clean accuracy (and worst-group accuracy).
        erasure_agreement: log ``aca/erasure_agreement`` (default: for ``SignalErasing``, or
            whenever explicit signal batches carry clean inputs).
        baseline: log ``aca/baseline_success`` (needs clean inputs in the signal batches).
        num_groups: number of groups; group indices are read at ``group_index`` of clean batches.
        group_index: position (tuple batches) or key (dict batches) of the group index.
        top_k: success counts when the success label is among the top-k scores.
        every_n_epochs: evaluate every n-th epoch during fit (test always evaluates).
        input_key, label_key: positions or keys of input and label in batches.
        predict_fn: ``(pl_module, x) -> scores``; default ``pl_module(x)``.
    """

    def __init__(
        self,
        signal_dataloader: DataLoader | Mapping[str, DataLoader] | None = None,
        clean_dataloader: DataLoader | None = None,
        clean: bool = True,
        erasure_agreement: bool | None = None,
        num_groups: int | None = None,
        group_index: int | str = 2,
        top_k: int = 1,
        every_n_epochs: int = 1,
        input_key: int | str = 0,
        label_key: int | str = 1,
        predict_fn: Callable[[L.LightningModule, Any], Tensor] | None = None,
        baseline: bool = True,
    ) -> None:
        self.every_n_epochs = positive_int("every_n_epochs", every_n_epochs)
        self.num_groups = None if num_groups is None else positive_int("num_groups", num_groups)
        self.top_k = positive_int("top_k", top_k)
        self.signal_dataloader = signal_dataloader
        self.clean_dataloader = clean_dataloader
        self.clean = clean
        self.erasure_agreement = erasure_agreement
        self.baseline = baseline
        self.group_index = group_index
        self.input_key = input_key
        self.label_key = label_key
        self.predict_fn = predict_fn
        self.results: dict[str, dict[str, float]] = {}
        self._evaluated_epoch = -1
        self._collections: dict[tuple, MetricCollection] = {}
        self._signal_loaders: tuple[Any, tuple, dict[str | None, tuple[DataLoader, bool]]] | None = None

    # -- where the loaders come from -------------------------------------------------------
    def _loaders(self, trainer: L.Trainer) -> tuple[dict[str | None, tuple[DataLoader, bool]], DataLoader | None]:
        """``{collective name (None: one, unnamed keys): (signal loader, erasure agreement)}`` and the clean loader."""
        dm = trainer.datamodule
        if self.signal_dataloader is not None:
            agreement = True if self.erasure_agreement is None else self.erasure_agreement
            given = self.signal_dataloader
            signals = (
                {name: (loader, agreement) for name, loader in given.items()}
                if isinstance(given, Mapping)
                else {None: (given, agreement)}
            )
        else:
            if not hasattr(dm, "signal_test_dataloader"):
                raise ValueError(
                    "CollectiveMetrics needs signal_dataloader=... or a CollectiveDataModule passed to "
                    "trainer.fit/test (datamodule=...)."
                )
            signals = self._datamodule_loaders(dm)
        clean = self.clean_dataloader
        if clean is None and self.clean and hasattr(dm, "clean_test_dataloader"):
            clean = dm.clean_test_dataloader()
        return signals, clean

    def _datamodule_loaders(self, dm: Any) -> dict[str | None, tuple[DataLoader, bool]]:
        settings = (self.baseline, self.erasure_agreement)
        # one set of loaders per datamodule: building the clean-carrying evaluation sets scans the test labels
        if self._signal_loaders is None or self._signal_loaders[0] is not dm or self._signal_loaders[1] != settings:
            collectives = dm.collectives
            loaders = {}
            for collective, name in zip(collectives, key_names([c.name for c in collectives]), strict=True):
                agreement = self.erasure_agreement
                if agreement is None:
                    agreement = isinstance(collective.strategy, SignalErasing)
                loader = dm.signal_test_dataloader(return_clean=self.baseline or agreement, collective=collective.name)
                loaders[name] = (loader, agreement)
            self._signal_loaders = (dm, settings, loaders)
        return self._signal_loaders[2]

    # -- hooks ---------------------------------------------------------------------------------
    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._loaders(trainer)  # fail at fit/test start if there is nothing to evaluate on

    @override
    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.current_epoch % self.every_n_epochs:
            return
        self._evaluated_epoch = trainer.current_epoch
        self._log(pl_module, self.evaluate(trainer, pl_module), "validate")

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._evaluated_epoch == trainer.current_epoch or trainer.current_epoch % self.every_n_epochs:
            return  # validation already evaluated this epoch
        self._evaluated_epoch = trainer.current_epoch
        self._log(pl_module, self.evaluate(trainer, pl_module), "fit")

    @override
    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log(pl_module, self.evaluate(trainer, pl_module), "test")

    def _log(self, pl_module: L.LightningModule, values: dict[str, float], stage: str) -> None:
        self.results[stage] = values
        for name, value in values.items():
            pl_module.log(name, value, prog_bar=name.startswith("aca/success"), on_epoch=True, on_step=False)

    # -- evaluation ----------------------------------------------------------------------------
    def evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float]:
        """Compute every metric now and return ``{"aca/<name>": value}`` (synced across ranks)."""
        signals, clean = self._loaders(trainer)
        rank, world = trainer.global_rank, trainer.world_size
        device = pl_module.device
        modes = {m: m.training for m in pl_module.modules()}
        fork_devices = [device] if device.type == "cuda" else []
        pl_module.eval()
        values: dict[str, Any] = {}
        try:
            with torch.random.fork_rng(devices=fork_devices), torch.no_grad():
                for name, (signal, agreement) in signals.items():
                    values.update(self._signal_metrics(pl_module, _shard(signal, rank, world), device, agreement, name))
                if clean is not None:
                    values.update(self._clean_metrics(pl_module, _shard(clean, rank, world), device))
        finally:
            for module, mode in modes.items():
                module.train(mode)
        dm = trainer.datamodule
        train_set = getattr(dm, "train_dataset", None)
        if hasattr(train_set, "members_of"):
            sizes = [(c.name, c.alpha, len(train_set.members_of(c.name))) for c in train_set.collectives]
            values.update(collective_sizes(sizes, len(train_set)))
        return values

    def _parts(self, batch: Any, keys: Sequence[int | str]) -> list[Any]:
        if isinstance(batch, Mapping):
            return [batch.get(k) for k in keys]
        return [batch[k] if isinstance(k, int) and k < len(batch) else None for k in keys]

    def _predict(self, pl_module: L.LightningModule, x: Any) -> Tensor:
        return self.predict_fn(pl_module, x) if self.predict_fn is not None else pl_module(x)

    def _signal_metrics(
        self, pl_module: L.LightningModule, loader: DataLoader, device: torch.device, agreement: bool, name: str | None
    ) -> dict[str, float]:
        metrics = self._collection(
            ("signal", name),
            lambda: {
                "success": CollectiveSuccess(top_k=self.top_k),
                "baseline_success": CollectiveSuccess(top_k=self.top_k),
                "erasure_agreement": SignalErasureSuccess(),
            },
            device,
        )
        for batch in loader:
            batch = move_data_to_device(batch, device)
            if isinstance(batch, Mapping):
                x, y, x_clean = batch[self.input_key], batch[self.label_key], batch.get("clean_input")
            else:
                x, y = batch[self.input_key], batch[self.label_key]
                x_clean = batch[-2] if len(batch) >= 4 else None  # (g(x), label, ..., x, true label)
            scores = self._predict(pl_module, x)
            metrics["success"].update(scores, y)
            if x_clean is not None and (self.baseline or agreement):
                clean_scores = self._predict(pl_module, x_clean)
                if self.baseline:
                    metrics["baseline_success"].update(clean_scores, y)
                if agreement:
                    metrics["erasure_agreement"].update(scores, clean_scores)
        return _computed(metrics, name)

    def _clean_metrics(
        self, pl_module: L.LightningModule, loader: DataLoader, device: torch.device
    ) -> dict[str, float]:
        metrics: MetricCollection | None = None
        for batch in loader:
            batch = move_data_to_device(batch, device)
            x, y, g = self._parts(batch, (self.input_key, self.label_key, self.group_index))
            scores = self._predict(pl_module, x)
            if metrics is None:
                num_classes = scores.shape[-1] if scores.dim() == 2 else int(y.max()) + 1
                metrics = self._collection(("clean", num_classes), partial(self._clean_set, num_classes), device)
            metrics["clean_acc"].update(scores, y)
            if self.num_groups is not None:
                if g is None:
                    raise ValueError(
                        f"CollectiveMetrics(num_groups={self.num_groups}) found no group index at "
                        f"group_index={self.group_index!r} of the clean batches; set group_index."
                    )
                metrics["group_acc"].update(scores, y, g)
                metrics["worst_group_acc"].update(scores, y, g)
        if metrics is None:
            return {}
        values = _computed(metrics)
        group_acc = values.pop(metric_key("group_acc"), None)
        if group_acc is not None:
            for g, acc in enumerate(group_acc):
                values[metric_key("group_acc", str(g))] = acc
        return values

    def _clean_set(self, num_classes: int) -> dict[str, Metric]:
        metrics: dict[str, Metric] = {"clean_acc": MulticlassAccuracy(num_classes, average="micro")}
        if self.num_groups is not None:
            metrics["group_acc"] = GroupAccuracy(self.num_groups)
            metrics["worst_group_acc"] = WorstGroupAccuracy(self.num_groups)
        return metrics

    def _collection(self, key: tuple, make: Callable[[], dict[str, Metric]], device: torch.device) -> MetricCollection:
        """The metrics for ``key``, reset, on ``device``: built once, reused every evaluation."""
        metrics = self._collections.get(key)
        if metrics is None:
            metrics = self._collections[key] = MetricCollection(make(), compute_groups=False)
        metrics.reset()
        return metrics.to(device)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"results": self.results}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.results = dict(state_dict.get("results", {}))


def _computed(metrics: MetricCollection, collective: str | None = None) -> dict[str, Any]:
    """``{metric_key(name, collective): value}`` for each metric of ``metrics`` that saw a batch (vectors as lists)."""
    values: dict[str, Any] = {}
    for name, metric in metrics.items(keep_base=True, copy_state=False):
        if metric.update_called:
            value = metric.compute()
            values[metric_key(name, collective)] = float(value) if value.dim() == 0 else value.tolist()
    return values
