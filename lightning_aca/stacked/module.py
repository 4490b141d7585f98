"""``StackedClassifier``: K ``Classifier`` networks trained at once as one LightningModule.

Each model k learns on its own view of one training set — the firm's data with model k's
collective (Hardt et al. 2023, §2: α·h♯P₀ + (1 − α)·P₀), or with several disjoint collectives,
each member submitting its own collective's h_c(x, y) (Karan et al. 2025) — by SGD with momentum and weight decay
as ``Classifier`` trains, or by DP-SGD (Abadi et al. 2016) with its own C_k and σ_k. Manual
optimization: one ``training_step`` gathers the K batches on the device, computes all K
gradients with ``torch.func`` and updates all K models, with no per-model Python loop and no
host synchronisation. Evaluation (S, baseline S, clean and group accuracy, with the definitions
of :mod:`lightning_aca.metrics.functional`) runs once, vectorized over models, when training ends.
"""

from __future__ import annotations

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
from lightning_aca.stacked.privacy import PoissonPlan, clipped_sum, privatize


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
    when clean accuracy is not measured.
    """

    signal_sets: tuple[SignalSet, ...]
    x: Tensor | None = None
    y: Tensor | None = None
    groups: Tensor | None = None
    num_groups: int | None = None
    top_k: int = 1
    batch_size: int = 512


class StackedDataModule(L.LightningDataModule):
    """Serves the step numbers of an epoch; the batches themselves are gathered on the device by the model."""

    def __init__(self, steps_per_epoch: int) -> None:
        super().__init__()
        self.steps_per_epoch = steps_per_epoch

    @override
    def train_dataloader(self) -> DataLoader:
        return DataLoader(range(self.steps_per_epoch), batch_size=None)


class StackedClassifier(L.LightningModule):
    """K copies of one network, each trained on its own collective's data (ERM or DP-SGD).

    Args:
        params, buffers, base: the stacked state and meta-device module of
            :func:`lightning_aca.stacked.functional.stack`.
        x_views, y_views: ``(V, n, ...)``, ``(V, n)``: view 0 the clean training set, view c + 1 the
            same points as a member of collective c submits them, h_c(x, y) (Hardt et al. 2023, §3).
        owner: ``(K, n)`` small integers (``int8``): 0 where model k's point is clean, c + 1 where it belongs to
            collective c (memberships are disjoint).
        seeds: each model's seed (its shuffle or Poisson stream).
        lr: ``(K,)`` learning rates; ``momentum``, ``weight_decay`` as ``torch.optim.SGD``.
        batch_size: the training loader's batch size (ERM); ``batches`` its number of batches.
        evaluation: the held-out tensors.
        poisson: Opacus's sampling plan under DP-SGD, ``None`` for ERM.
        max_grad_norm, noise_multiplier: ``(K,)`` C_k and σ_k under DP-SGD.
        noise_seed: seed of the DP noise generator.
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
        lr: Tensor,
        momentum: float,
        weight_decay: float,
        batch_size: int,
        batches: int,
        evaluation: Evaluation,
        poisson: PoissonPlan | None = None,
        max_grad_norm: Tensor | None = None,
        noise_multiplier: Tensor | None = None,
        noise_seed: int = 0,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        object.__setattr__(self, "base", base)  # stays on the meta device: Lightning must not move it
        self._names = list(params)
        self._buffer_names = list(buffers)
        for i, name in enumerate(self._names):
            self.register_buffer(f"param_{i}", params[name], persistent=True)
            self.register_buffer(f"momentum_{i}", torch.zeros_like(params[name]), persistent=True)
        for i, name in enumerate(self._buffer_names):
            self.register_buffer(f"state_{i}", buffers[name], persistent=True)
        self.k = len(seeds)
        self.seeds = [int(s) for s in seeds]
        self.momentum, self.weight_decay = float(momentum), float(weight_decay)
        self.batch_size, self.batches = int(batch_size), int(batches)
        self.poisson = poisson
        self.noise_seed = int(noise_seed)
        # no h changes an input (label flipping): gather from the clean inputs alone
        self._same_inputs = all(torch.equal(view, x_views[0]) for view in x_views[1:])
        tensors = dict(
            x_views=x_views[:1] if self._same_inputs else x_views,
            y_views=y_views,
            owner=owner,
            lr=lr.float(),
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
        self._index: Tensor | None = None
        self._valid: Tensor | None = None
        self._widths: list[int] = []
        self._noise: torch.Generator | None = None

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

    def step_indices(self, step: int) -> tuple[Tensor, Tensor | None]:
        """Indices ``(K, B)`` of step ``step`` of the current epoch (and the Poisson mask under DP)."""
        if self.poisson is None:
            return self._index[:, step * self.batch_size : (step + 1) * self.batch_size], None
        width = self._widths[step]  # the step's largest batch over models: less padding than the epoch's
        return self._index[:, step, :width], self._valid[:, step, :width]

    def gather(self, index: Tensor) -> tuple[Tensor, Tensor]:
        """Inputs ``(K, B, ...)`` and labels ``(K, B)``: each model's points, members' as their collective's h_c(x, y)."""
        view = torch.gather(self.owner, 1, index).long()
        y = self.y_views[view, index]
        x = self.x_views[0][index] if self._same_inputs else self.x_views[view, index]
        return x, y

    # -- training --------------------------------------------------------------------------------
    @override
    def configure_optimizers(self) -> None:
        return None  # the SGD step is vectorized over models in training_step

    @override
    def on_fit_start(self) -> None:
        self._noise = torch.Generator(device=self.device).manual_seed(self.noise_seed)

    @override
    def on_train_epoch_start(self) -> None:
        self._index, self._valid = self.epoch_indices(self.current_epoch)
        if self._valid is not None:  # per-step widths, rounded up to 8, read once per epoch
            counts = self._valid.sum(2).amax(0).clamp(min=1)
            self._widths = ((counts + 7) // 8 * 8).clamp(max=self._index.shape[2]).tolist()
        self.loss_sum.zero_()

    def gradients(self, x: Tensor, y: Tensor, valid: Tensor | None) -> tuple[Params, Tensor]:
        """Each model's update direction on its batch (mean gradient, or DP-SGD's noisy clipped mean) and loss."""
        if self.poisson is None:
            return batch_gradients(self.base, self.params, self.stacked_buffers, x, y)
        per_sample, losses = per_sample_gradients(self.base, self.params, self.stacked_buffers, x, y)
        weights = valid.to(losses.dtype)
        summed = clipped_sum(per_sample, weights, self.max_grad_norm)
        grads = privatize(summed, self.noise_std, self.poisson.expected_batch_size, self._noise)
        return grads, (losses * weights).sum(1) / weights.sum(1).clamp(min=1)

    def sgd_step(self, grads: Params) -> None:
        """``torch.optim.SGD``'s update (weight decay, momentum without dampening), with a learning rate per model."""
        for i, name in enumerate(self._names):
            p, buf, g = getattr(self, f"param_{i}"), getattr(self, f"momentum_{i}"), grads[name]
            if self.weight_decay:
                g = g.add(p, alpha=self.weight_decay)
            if self.momentum:
                g = buf.mul_(self.momentum).add_(g)
            p.sub_(self.lr.view(-1, *[1] * (p.dim() - 1)) * g)

    @override
    def training_step(self, batch: Any, batch_idx: int) -> None:
        index, valid = self.step_indices(batch_idx)
        x, y = self.gather(index)
        grads, loss = self.gradients(x, y, valid)
        self.sgd_step(grads)
        self.loss_sum += loss.detach()

    @override
    def on_train_epoch_end(self) -> None:
        losses = self.loss_sum / self.steps_per_epoch
        self.history.append(losses)  # per model; read once, after training
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
        if ev.x is not None:
            groups = ev.num_groups if ev.groups is not None else None
            for start in range(0, len(ev.y), ev.batch_size):
                stop = start + ev.batch_size
                y = ev.y[start:stop].to(dev)
                scores = self._scores(ev.x[start:stop].to(dev))
                add("correct", (predicted_labels(scores.flatten(0, 1)).view(k, -1) == y).sum(1))
                if groups is not None:
                    offset = torch.arange(k, device=dev)[:, None] * groups
                    g = (ev.groups[start:stop].to(dev)[None] + offset).flatten()
                    right, total = group_correct_counts(scores.flatten(0, 1), y.repeat(k), g, k * groups)
                    add("group_correct", right.view(k, groups))
                    add("group_total", total.view(k, groups))
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
        if "group_total" in counts:
            right = torch.as_tensor(counts["group_correct"][i])
            total = torch.as_tensor(counts["group_total"][i])
            values["aca/worst_group_acc"] = float(lowest_group_accuracy(right, total))
            for g in range(len(total)):
                values[metric_key("group_acc", str(g))] = float(right[g] / total[g]) if total[g] else float("nan")
        return values
