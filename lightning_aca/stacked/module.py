"""``StackedClassifier``: K networks of one architecture trained at once as one LightningModule.

Each model k learns on its own view of one training set — the firm's data with model k's
collective (Hardt et al. 2023, §2: α·h♯P₀ + (1 − α)·P₀), or with several disjoint collectives,
each member submitting its own collective's h_c(x, y) (Karan et al. 2025) — with its own
optimizer state and learning-rate schedule (:class:`~lightning_aca.stacked.optim.StackedOptimizer`),
under ERM, DP-SGD (Abadi et al. 2016) with its own C_k and σ_k, or online group DRO (Sagawa et
al. 2020) with its own group weights.

One Lightning ``training_step`` is one epoch: the Trainer keeps devices, loggers and callbacks at
epoch granularity, and the epoch's steps run in a loop with no per-step Trainer work and no host
synchronisation. On CUDA each step is captured once per batch shape as a CUDA graph and replayed:
a step of K small models is microseconds of arithmetic, and launching its few hundred kernels
one by one would cost far more. Evaluation (S, baseline S, clean and group accuracy, with the
definitions of :mod:`lightning_aca.metrics.functional`) runs once, vectorized over models, when
training ends.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader
from typing_extensions import override

from lightning_aca.data.sampling import poisson_indices, shuffled_indices
from lightning_aca.metrics.functional import (
    agreement_hits,
    group_correct_counts,
    lowest_group_accuracy,
    predicted_labels,
    success_hits,
)
from lightning_aca.runs.keys import metric_key
from lightning_aca.stacked.functional import Params, batch_gradients, logits, per_sample_gradients
from lightning_aca.stacked.gdro import StackedGroupDRO
from lightning_aca.stacked.optim import StackedOptimizer
from lightning_aca.stacked.privacy import PoissonPlan, clipped_sum, draw_noise, privatize


@dataclass
class SignalSet:
    """One collective's held-out signal evaluation set (Hardt et al. 2023, §3).

    ``signal_inputs`` are g(x) of the test points whose true label is not y*, ``clean_inputs``
    the same x without the signal, ``success_labels`` what counts as success on them. ``name`` is
    the collective's name with several collectives (Karan et al. 2025), whose metrics are keyed
    ``aca/<metric>/<name>``; ``None`` for the one collective (``aca/<metric>``).
    """

    signal_inputs: Tensor
    clean_inputs: Tensor
    success_labels: Tensor
    erasure_agreement: bool = False
    name: str | None = None

    def key(self, metric: str) -> str:
        """The metric's key (:func:`~lightning_aca.metrics.functional.metric_key`)."""
        return metric_key(metric, self.name)


@dataclass
class Evaluation:
    """The held-out tensors every model is judged on: each collective's :class:`SignalSet`, and the clean test set.

    ``x``/``y`` (and ``groups``) are the whole clean test set, shared by the collectives; ``None``
    when clean accuracy is not measured. ``x_val``/``y_val``: a validation split held out of the
    training data, where the datamodule has one (``aca/val_acc``).
    """

    signal_sets: tuple[SignalSet, ...]
    x: Tensor | None = None
    y: Tensor | None = None
    groups: Tensor | None = None
    num_groups: int | None = None
    top_k: int = 1
    batch_size: int = 512
    x_val: Tensor | None = None
    y_val: Tensor | None = None


class StackedDataModule(L.LightningDataModule):
    """One item per epoch: the stacked model runs the epoch's steps itself (:meth:`StackedClassifier.training_step`)."""

    @override
    def train_dataloader(self) -> DataLoader:
        return DataLoader(range(1), batch_size=None)


class _StepGraphs:
    """The training step captured as one CUDA graph per batch shape, replayed with the step's inputs copied in.

    A shape's first step runs eagerly on a side stream (it initialises what capture cannot:
    cuBLAS workspaces, autograd's streams); its second is captured — capture records the
    kernels without running them — and every step of that shape is then one replay.
    """

    def __init__(self, step: Any) -> None:
        self.step = step
        self.graphs: dict[tuple[int, ...], tuple[torch.cuda.CUDAGraph, tuple[Any, ...]] | None] = {}
        self.failed = False

    def __call__(self, *inputs: Any) -> None:
        key = tuple(inputs[0].shape)
        if self.failed or key not in self.graphs:
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                self.step(*inputs)
            torch.cuda.current_stream().wait_stream(stream)
            self.graphs[key] = None
            return
        if self.graphs[key] is None:
            static = _clone(inputs)
            graph = torch.cuda.CUDAGraph()
            try:
                with torch.cuda.graph(graph):
                    self.step(*static)
            except RuntimeError as err:  # an operation that cannot be captured: run eagerly from now on
                warnings.warn(f"the stacked step runs without CUDA graphs ({err})", stacklevel=2)
                self.failed = True
                self.step(*inputs)
                return
            self.graphs[key] = (graph, static)
        graph, static = self.graphs[key]
        _copy(static, inputs)
        graph.replay()


def _clone(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.clone()
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_clone(v) for v in value)
    return value


def _copy(static: Any, value: Any) -> None:
    if isinstance(static, Tensor):
        static.copy_(value)
    elif isinstance(static, dict):
        for k in static:
            _copy(static[k], value[k])
    elif isinstance(static, tuple):
        for s, v in zip(static, value, strict=True):
            _copy(s, v)


class StackedClassifier(L.LightningModule):
    """K copies of one network, each trained on its own collective's data (ERM, DP-SGD or group DRO).

    Args:
        params, buffers, base: the stacked state and meta-device module of
            :func:`lightning_aca.stacked.functional.stack`.
        x_views, y_views: ``(V, n, ...)``, ``(V, n)``: view 0 the clean training set, view c + 1 the
            same points as a member of collective c submits them, h_c(x, y) (Hardt et al. 2023, §3).
        owner: ``(K, n)`` small integers (``int8``): 0 where model k's point is clean, c + 1 where it belongs to
            collective c (memberships are disjoint).
        seeds: each model's seed (its shuffle or Poisson stream).
        optimizer: the K models' optimizer (its state moves with the module).
        lr_schedule: ``(epochs · steps per epoch, K)`` learning rate of every step
            (:func:`~lightning_aca.stacked.optim.lr_schedule`).
        batch_size: the training loader's batch size (ERM); ``batches`` its number of batches.
        evaluation: the held-out tensors.
        poisson: Opacus's sampling plan under DP-SGD, ``None`` otherwise.
        max_grad_norm, noise_multiplier: ``(K,)`` C_k and σ_k under DP-SGD.
        noise_seed: seed of the DP noise generator.
        group_dro: the models' group weights under group DRO, ``None`` otherwise.
        cuda_graphs: replay each step as a CUDA graph on CUDA devices.
    """

    def __init__(
        self,
        params: Params,
        buffers: Params,
        base: nn.Module,
        x_views: Tensor,
        y_views: Tensor,
        owner: Tensor,
        seeds: list[int],
        optimizer: StackedOptimizer,
        lr_schedule: Tensor,
        batch_size: int,
        batches: int,
        evaluation: Evaluation,
        poisson: PoissonPlan | None = None,
        max_grad_norm: Tensor | None = None,
        noise_multiplier: Tensor | None = None,
        noise_seed: int = 0,
        group_dro: StackedGroupDRO | None = None,
        cuda_graphs: bool = True,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        object.__setattr__(self, "base", base)  # stays on the meta device: Lightning must not move it
        self._names = list(params)
        self._buffer_names = list(buffers)
        for i, name in enumerate(self._names):
            self.register_buffer(f"param_{i}", params[name], persistent=True)
        for i, name in enumerate(self._buffer_names):
            self.register_buffer(f"state_{i}", buffers[name], persistent=True)
        self.optimizer = optimizer
        self.group_dro = group_dro
        self.k = len(seeds)
        self.seeds = [int(s) for s in seeds]
        self.batch_size, self.batches = int(batch_size), int(batches)
        self.poisson = poisson
        self.noise_seed = int(noise_seed)
        self.cuda_graphs = bool(cuda_graphs)
        # no h changes an input (label flipping): gather from the clean inputs alone
        self._same_inputs = all(torch.equal(view, x_views[0]) for view in x_views[1:])
        tensors = dict(
            x_views=x_views[:1] if self._same_inputs else x_views,
            y_views=y_views,
            owner=owner,
            lr_schedule=lr_schedule.float(),
            loss_sum=torch.zeros(self.k),
        )
        if poisson is not None:
            tensors["max_grad_norm"] = max_grad_norm.float()
            tensors["noise_std"] = (noise_multiplier * max_grad_norm).float()
        for name, value in tensors.items():
            self.register_buffer(name, value, persistent=False)
        self.evaluation = evaluation
        self.history: list[Tensor] = []
        self.results: list[dict[str, float]] = []
        self._noise: torch.Generator | None = None
        self._run_step: Any = self.step

    # -- state as dicts ------------------------------------------------------------------------
    @property
    def params(self) -> Params:
        """The stacked parameters ``{name: (K, ...)}``."""
        return {name: getattr(self, f"param_{i}") for i, name in enumerate(self._names)}

    @property
    def stacked_buffers(self) -> Params:
        return {name: getattr(self, f"state_{i}") for i, name in enumerate(self._buffer_names)}

    @property
    def x_train(self) -> Tensor:
        """The clean training inputs ``(n, ...)``."""
        return self.x_views[0]

    @property
    def y_train(self) -> Tensor:
        """The true training labels ``(n,)``."""
        return self.y_views[0]

    @property
    def is_member(self) -> Tensor:
        """``(K, n)``: whether model k's point belongs to a collective."""
        return self.owner > 0

    @property
    def steps_per_epoch(self) -> int:
        return self.poisson.steps_per_epoch if self.poisson is not None else self.batches

    # -- batches ---------------------------------------------------------------------------------
    def epoch_indices(self, epoch: int) -> tuple[Tensor, Tensor | None]:
        """The epoch's batches: ERM ``(K, n)`` permutations; DP ``(K, steps, B)`` indices and their mask."""
        n = len(self.y_train)
        if self.poisson is None:
            return shuffled_indices(self.seeds, epoch, n, self.device), None
        return poisson_indices(
            self.seeds, epoch, n, self.poisson.sample_rate, self.poisson.steps_per_epoch, self.device
        )

    def step_indices(self, order: Tensor, valid: Tensor | None, step: int) -> tuple[Tensor, Tensor | None]:
        """Indices ``(K, B)`` of step ``step`` of an epoch's :meth:`epoch_indices` (and the Poisson mask under DP)."""
        if valid is None:
            return order[:, step * self.batch_size : (step + 1) * self.batch_size], None
        return order[:, step], valid[:, step]

    def gather(self, index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Inputs ``(K, B, ...)``, labels ``(K, B)`` and views ``(K, B)``: members' points as their collective's h_c(x, y)."""
        view = torch.gather(self.owner, 1, index).long()
        y = self.y_views[view, index]
        x = self.x_views[0][index] if self._same_inputs else self.x_views[view, index]
        return x, y, view

    # -- training --------------------------------------------------------------------------------
    @override
    def configure_optimizers(self) -> None:
        return None  # the optimizer step is vectorized over models in step()

    def gradients(
        self, x: Tensor, y: Tensor, valid: Tensor | None, noise: Params | None = None, groups: Tensor | None = None
    ) -> tuple[Params, Tensor]:
        """Each model's update direction on its batch and its mean loss ``(K,)``.

        ERM: the mean gradient, or group DRO's q-weighted one (``groups``: the batch's observed
        groups); DP-SGD: the noisy clipped mean, with ``noise`` standard normal draws
        (:func:`~lightning_aca.stacked.privacy.draw_noise`).
        """
        if self.poisson is None:
            weigh = None if self.group_dro is None else (lambda losses: self.group_dro.weights(losses, groups))
            grads, losses = batch_gradients(self.base, self.params, self.stacked_buffers, x, y, weigh)
            return grads, losses.mean(1)
        per_sample, losses = per_sample_gradients(self.base, self.params, self.stacked_buffers, x, y)
        weights = valid.to(losses.dtype)
        summed = clipped_sum(per_sample, weights, self.max_grad_norm)
        grads = privatize(summed, self.noise_std, self.poisson.expected_batch_size, noise)
        return grads, (losses * weights).sum(1) / weights.sum(1).clamp(min=1)

    def step(self, index: Tensor, valid: Tensor | None, lr: Tensor, noise: Params | None) -> None:
        """One optimizer step of every model on its batch ``index`` ``(K, B)``; no host synchronisation."""
        x, y, view = self.gather(index)
        groups = None if self.group_dro is None else self.group_dro.groups(view, index)
        grads, loss = self.gradients(x, y, valid, noise, groups)
        self.optimizer.step(self.params, grads, lr)
        self.loss_sum += loss

    @override
    def on_fit_start(self) -> None:
        self._noise = torch.Generator(device=self.device).manual_seed(self.noise_seed)
        self._run_step = _StepGraphs(self.step) if self.cuda_graphs and self.device.type == "cuda" else self.step

    @override
    def on_train_start(self) -> None:
        epochs = self.trainer.max_epochs
        if epochs is None or epochs < 0 or epochs * self.steps_per_epoch > len(self.lr_schedule):
            planned = len(self.lr_schedule) // self.steps_per_epoch
            raise ValueError(
                f"the stacked model's learning-rate schedule covers {planned} epochs; fit it with max_epochs <= {planned} "
                f"(got {epochs}), or rebuild it for trainer.max_epochs={epochs}."
            )

    @override
    def training_step(self, batch: Any, batch_idx: int) -> None:
        epoch, steps = self.current_epoch, self.steps_per_epoch
        order, valid = self.epoch_indices(epoch)
        self.loss_sum.zero_()
        params = self.params
        for step in range(steps):
            index, mask = self.step_indices(order, valid, step)
            noise = None if self.poisson is None else draw_noise(params, self._noise)
            self._run_step(index, mask, self.lr_schedule[epoch * steps + step], noise)

    @override
    def on_train_epoch_end(self) -> None:
        losses = self.loss_sum / self.steps_per_epoch
        self.history.append(losses.clone())  # per model; read once, after training
        if self.group_dro is not None:
            self.group_dro.end_epoch()
        self.log("train/loss", losses.mean(), prog_bar=True)  # the progress bar shows the mean over models

    @override
    def on_train_end(self) -> None:
        self.results = self.evaluate()

    # -- evaluation ------------------------------------------------------------------------------
    def _scores(self, x: Tensor) -> Tensor:
        return logits(self.base, self.params, self.stacked_buffers, x)

    @torch.no_grad()
    def evaluate(self) -> list[dict[str, float]]:
        """``aca/`` metrics of every model, as ``CollectiveMetrics`` defines them, in one vectorized pass."""
        ev, k, dev = self.evaluation, self.k, self.device
        counts: dict[str, Tensor] = {}

        def add(key: str, value: Tensor) -> None:
            counts[key] = counts[key] + value if key in counts else value

        for i, signal_set in enumerate(ev.signal_sets):
            for start in range(0, len(signal_set.success_labels), ev.batch_size):
                stop = start + ev.batch_size
                labels = signal_set.success_labels[start:stop].to(dev).repeat(k)
                signal = self._scores(signal_set.signal_inputs[start:stop].to(dev)).flatten(0, 1)
                clean = self._scores(signal_set.clean_inputs[start:stop].to(dev)).flatten(0, 1)
                add(f"success{i}", success_hits(signal, labels, ev.top_k).view(k, -1).sum(1))
                add(f"baseline{i}", success_hits(clean, labels, ev.top_k).view(k, -1).sum(1))
                if signal_set.erasure_agreement:
                    add(f"agreement{i}", agreement_hits(signal, clean).view(k, -1).sum(1))
        # the clean test set (with its groups), and the validation split held out of training
        for key, x, labels, groups in (("correct", ev.x, ev.y, ev.groups), ("val_correct", ev.x_val, ev.y_val, None)):
            if x is None:
                continue
            for start in range(0, len(labels), ev.batch_size):
                stop = start + ev.batch_size
                y = labels[start:stop].to(dev)
                scores = self._scores(x[start:stop].to(dev))
                add(key, (predicted_labels(scores.flatten(0, 1)).view(k, -1) == y).sum(1))
                if groups is not None and ev.num_groups is not None:
                    offset = torch.arange(k, device=dev)[:, None] * ev.num_groups
                    g = (groups[start:stop].to(dev)[None] + offset).flatten()
                    right, total = group_correct_counts(scores.flatten(0, 1), y.repeat(k), g, k * ev.num_groups)
                    add("group_correct", right.view(k, ev.num_groups))
                    add("group_total", total.view(k, ev.num_groups))
        host = {key: value.cpu().numpy() for key, value in counts.items()}
        return [self._metrics(host, i) for i in range(k)]

    def _metrics(self, counts: dict[str, np.ndarray], i: int) -> dict[str, float]:
        ev = self.evaluation
        values = {}
        for c, signal_set in enumerate(ev.signal_sets):
            n_signal = len(signal_set.success_labels)
            values[signal_set.key("success")] = float(counts[f"success{c}"][i] / n_signal)
            values[signal_set.key("baseline_success")] = float(counts[f"baseline{c}"][i] / n_signal)
            if f"agreement{c}" in counts:
                values[signal_set.key("erasure_agreement")] = float(counts[f"agreement{c}"][i] / n_signal)
        if "correct" in counts:
            values["aca/clean_acc"] = float(counts["correct"][i] / len(ev.y))
        if "val_correct" in counts:
            values["aca/val_acc"] = float(counts["val_correct"][i] / len(ev.y_val))
        if "group_total" in counts:
            right = torch.as_tensor(counts["group_correct"][i])
            total = torch.as_tensor(counts["group_total"][i])
            values["aca/worst_group_acc"] = float(lowest_group_accuracy(right, total))
            for g in range(len(total)):
                values[metric_key("group_acc", str(g))] = float(right[g] / total[g]) if total[g] else float("nan")
        return values
