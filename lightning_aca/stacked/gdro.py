"""Online group DRO for K stacked models: per-model group weights q, the ``GroupDRO`` callback's update.

Sagawa, Koh, Hashimoto, Liang, ICLR 2020, §5, Algorithm 1 with minibatches, as
:class:`lightning_aca.firm.gdro.GroupDRO` runs it: each step, with L_g the mean loss of group g's
samples in model k's batch, q_kg ← q_kg · exp(η_k · (L_g + C/√n_kg)) for every group present, q_k
renormalized, and model k steps on Σ_g q_kg · L_g. The groups are those the firm observes, so
they are computed on every view of the training set (clean, and each collective's h(x, y)) and
each model reads, per point, the view it trains on; n_kg counts them in model k's training set.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from lightning_aca.firm.gdro import group_sums


class StackedGroupDRO(nn.Module):
    """Group weights ``q`` ``(K, G)`` of K models and the group-DRO reweighting of their batches.

    Args:
        group_views: ``(V, n)`` integer groups of every training point in every view (view 0 the
            clean set, view c + 1 collective c's h(x, y)).
        num_groups: G.
        step_size: ``(K,)`` η of each model.
        adjustment: ``(K, G)`` the group adjustment C/√n_kg of each model (zeros without it).
    """

    def __init__(self, group_views: Tensor, num_groups: int, step_size: Tensor, adjustment: Tensor) -> None:
        super().__init__()
        k = len(step_size)
        self.num_groups = int(num_groups)
        self.register_buffer("group_views", group_views.long(), persistent=False)
        self.register_buffer("step_size", step_size.float(), persistent=False)
        self.register_buffer("adjustment", adjustment.float(), persistent=False)
        self.register_buffer("q", torch.full((k, self.num_groups), 1.0 / self.num_groups))
        self.register_buffer("epoch_sums", torch.zeros(k, self.num_groups))
        self.register_buffer("epoch_counts", torch.zeros(k, self.num_groups))
        self.register_buffer("worst_group_loss", torch.full((k,), float("nan")))
        #: per epoch: ``(K, G)`` q and ``(K,)`` worst-group training loss at its end
        self.history: list[tuple[Tensor, Tensor]] = []

    def groups(self, view: Tensor, index: Tensor) -> Tensor:
        """``(K, B)`` groups of the points ``index`` as each model observes them (``view``: their view)."""
        return self.group_views[view, index]

    def weights(self, losses: Tensor, groups: Tensor, mask: Tensor | None = None) -> Tensor:
        """Update q on the batch and return per-sample weights ``(K, B)`` with Σ_b w_b·l_b = Σ_g q_g·L_g.

        ``losses`` ``(K, B)`` detached per-sample losses, ``groups`` ``(K, B)``, ``mask`` the real rows.
        """
        mask = torch.ones_like(losses) if mask is None else mask.to(losses.dtype)
        sums = group_sums(losses * mask, groups, self.num_groups)
        counts = group_sums(mask, groups, self.num_groups)
        present = counts > 0
        ascent = sums / counts.clamp(min=1) + self.adjustment
        # q·exp(ηL) renormalized is softmax(log q + ηL): the callback's update, without overflow
        log_q = self.q.log() + self.step_size[:, None] * torch.where(present, ascent, 0.0)
        self.q.copy_(torch.softmax(log_q, dim=1))
        self.epoch_sums += sums
        self.epoch_counts += counts
        per_group = self.q / counts.clamp(min=1)
        return per_group.gather(1, groups) * mask

    def end_epoch(self) -> None:
        """Keep the epoch's largest per-group mean training loss of each model; start the next epoch's sums."""
        means = torch.where(self.epoch_counts > 0, self.epoch_sums / self.epoch_counts.clamp(min=1), -torch.inf)
        self.worst_group_loss.copy_(means.amax(1))
        self.history.append((self.q.clone(), self.worst_group_loss.clone()))
        self.epoch_sums.zero_()
        self.epoch_counts.zero_()

    def epoch_metrics(self) -> list[list[dict[str, float]]]:
        """Per epoch, per model: the ``aca/gdro/*`` values the ``GroupDRO`` callback logs at the epoch's end."""
        rows = []
        for q, worst in self.history:
            q_rows, worst_rows = q.cpu().tolist(), worst.cpu().tolist()
            rows.append(
                [
                    {**{f"aca/gdro/q/{g}": w for g, w in enumerate(qk)}, "aca/gdro/worst_group_loss": wk}
                    for qk, wk in zip(q_rows, worst_rows, strict=True)
                ]
            )
        return rows

    def record_fields(self, k: int) -> dict[str, Any]:
        """Model k's ``GroupDRO.record_fields``: its final q, worst-group training loss of the last epoch and q per epoch."""
        worst = float(self.worst_group_loss[k])
        if worst != worst:  # no epoch has ended
            return {}
        by_epoch = [[float(w) for w in q[k].tolist()] for q, _ in self.history]
        return {
            "group_weights": [float(w) for w in self.q[k].tolist()],
            "worst_group_loss": worst,
            "group_weights_by_epoch": by_epoch,
        }
