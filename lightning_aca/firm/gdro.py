"""``GroupDRO``: train any LightningModule with online group DRO, as a drop-in callback.

Sagawa, Koh, Hashimoto, Liang, "Distributionally Robust Neural Networks for Group Shifts: On the
Importance of Regularization for Worst-Case Generalization", ICLR 2020. §2, Eq. (4): minimize the
worst group's average training loss; §5, Algorithm 1 ("Online optimization algorithm for group
DRO"): keep a distribution q over groups, update it by exponentiated gradient ascent
q_g ← q_g · exp(η_q · L_g) followed by renormalization, and step θ on the q-weighted loss.
Algorithm 1 draws one example per step; §5 says the experiments use minibatches, so here each
minibatch updates q with the average loss L_g of every group it contains. §3.3, Eq. (5): the
group adjustment adds C/√n_g to L_g, n_g being the group's training size, so that small groups,
whose generalization gap is larger, weigh more.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader
from typing_extensions import override

from lightning_aca.patching import PatchingCallback
from lightning_aca.validation import integer, non_negative_real, one_of, positive_real

_GROUP_SOURCES = ("index", "membership")


def group_sums(values: Tensor, groups: Tensor, num_groups: int) -> Tensor:
    """Σ of ``values`` ``(..., B)`` per group ``(..., G)``, ``groups`` ``(..., B)`` integers in [0, G).

    A product with the one-hot groups rather than ``index_add``/``scatter_add``: on CUDA those add
    atomically, in a varying order, and the group weights q·exp(ηL) carry that noise into every
    later step; a product sums in a fixed order, so runs repeat bit for bit.
    """
    one_hot = torch.nn.functional.one_hot(groups, num_groups).to(values.dtype)
    return (values.unsqueeze(-2) @ one_hot).squeeze(-2)


class GroupDRO(PatchingCallback):
    """Replace the training loss of a LightningModule by the online group-DRO objective.

    The one change the module needs: ``training_step`` returns **per-sample losses**, a 1-D
    tensor of shape ``(batch,)`` such as ``F.cross_entropy(logits, y, reduction="none")`` (or a
    dict whose ``"loss"`` is such a tensor). At fit start the callback wraps the module's
    ``training_step`` (restored when fit ends or fails) so that, for each batch, with L_g the
    mean loss of group g's samples in the batch, q_g ← q_g · exp(η · (L_g + C/√n_g)) for every
    group present, q is renormalized, and the loss Lightning back-propagates is Σ_g q_g · L_g. To train the
    same module by plain ERM without this callback, return ``losses.mean()`` instead (Lightning
    needs a scalar).

    Logs at every training epoch end (stable keys): ``aca/gdro/q/<g>`` for every group and
    ``aca/gdro/worst_group_loss``, the largest per-group average training loss of the epoch
    (kept as :attr:`worst_group_loss`). The constructor's arguments are the settings and never
    change; the computed state (q, the group counts, the epoch's running group losses and the
    last worst-group loss) is saved in checkpoints and restored on resume, and
    :meth:`record_fields` gives the final q and worst-group loss for a run's record. Under several
    processes, group losses are summed across ranks before updating q, so q stays identical.

    Args:
        num_groups: number of groups m, at least 2.
        step_size: η, the step size of the exponentiated-gradient update of q (> 0).
        groups: where a batch's group indices come from: ``"index"`` reads ``batch[group_index]``
            (tuple batches) or ``batch["group"]`` (dict batches; ``batch[group_index]`` when it is
            a string); ``"membership"`` reads the flag ``CollectiveDataset(...,
            return_membership=True)`` appends (the last tuple item, or ``"is_member"``), giving
            group 1 to members and 0 to everyone else (needs ``num_groups=2``), and removes the
            flag before ``training_step`` sees the batch, so the module keeps unpacking the
            dataset's own items (``x, y = batch``); or a callable ``batch -> LongTensor (batch,)``.
        group_index: position (tuple batches) or key (dict batches) of the group index.
        generalization_adjustment: C of the group adjustment C/√n_g (≥ 0; 0 switches it off).
        group_counts: training points per group n_g (``num_groups`` numbers ≥ 0); by default
            counted once from the training loader's dataset at fit start when C > 0.

    Example:
        >>> dro = GroupDRO(num_groups=2, step_size=0.1)
        >>> dro.step(torch.tensor([1.0, 1.0, 3.0, 3.0]), torch.tensor([0, 0, 1, 1]))
        tensor(2.0997)
        >>> dro.weights
        tensor([0.4502, 0.5498])
    """

    def __init__(
        self,
        num_groups: int,
        step_size: float = 0.01,
        groups: str | Callable[[Any], Tensor] = "index",
        group_index: int | str = 2,
        generalization_adjustment: float = 0.0,
        group_counts: Sequence[float] | Tensor | None = None,
    ) -> None:
        super().__init__()
        num_groups = integer("num_groups", num_groups, low=2, kind="an int >= 2")
        if not callable(groups):
            one_of("groups", groups, _GROUP_SOURCES)
        if groups == "membership" and num_groups != 2:
            raise ValueError(
                f"num_groups must be 2 with groups='membership' (non-members 0, members 1), got {num_groups!r}."
            )
        if not isinstance(group_index, str):
            group_index = integer("group_index", group_index, kind="a position (int) or a key (str)")
        self.num_groups = num_groups
        self.step_size = positive_real("step_size", step_size)
        self.groups = groups
        self.group_index = group_index
        self.generalization_adjustment = non_negative_real("generalization_adjustment", generalization_adjustment)
        self._counts = None if group_counts is None else self._checked_counts(group_counts, "group_counts")
        self._q = torch.full((num_groups,), 1.0 / num_groups)
        self._epoch_sums = torch.zeros(num_groups)
        self._epoch_counts = torch.zeros(num_groups)
        #: the largest per-group average training loss of the last training epoch (None before one ends)
        self.worst_group_loss: float | None = None
        #: q at the end of each training epoch, one list of floats per epoch
        self.weights_by_epoch: list[list[float]] = []
        self._loaded = False
        self._sum_across_ranks: Callable[[Tensor], Tensor] | None = None

    @property
    @override
    def state_key(self) -> str:
        groups = self.groups if isinstance(self.groups, str) else getattr(self.groups, "__qualname__", "callable")
        return self._generate_state_key(
            num_groups=self.num_groups,
            step_size=self.step_size,
            groups=groups,
            group_index=self.group_index,
            generalization_adjustment=self.generalization_adjustment,
        )

    def _checked_counts(self, counts: Any, name: str) -> Tensor:
        message = (
            f"{name} must be {self.num_groups} finite numbers >= 0 (num_groups={self.num_groups}), got {counts!r}."
        )
        try:
            counts = torch.as_tensor(counts if isinstance(counts, Tensor) else list(counts), dtype=torch.float32)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(message) from err
        if counts.shape != (self.num_groups,) or not bool(torch.isfinite(counts).all() and (counts >= 0).all()):
            raise ValueError(message)
        return counts

    @property
    def weights(self) -> Tensor:
        """A copy of the group weights q (a probability vector of length ``num_groups``)."""
        return self._q.detach().clone()

    @property
    def group_counts(self) -> Tensor | None:
        """Training points per group used by the adjustment (``None`` until given or counted)."""
        return None if self._counts is None else self._counts.clone()

    # -- the algorithm ---------------------------------------------------------------------------
    def step(self, losses: Tensor, groups: Tensor) -> Tensor:
        """One step of Algorithm 1 on a batch: update q, return the loss Σ_g q_g · L_g.

        Args:
            losses: per-sample losses ``(batch,)`` (differentiable).
            groups: group index of each sample ``(batch,)``, integers in [0, num_groups).
        """
        if not isinstance(losses, Tensor) or losses.dim() != 1:
            got = f"a tensor of shape {tuple(losses.shape)}" if isinstance(losses, Tensor) else type(losses).__name__
            raise ValueError(
                "GroupDRO needs training_step to return per-sample losses: a 1-D tensor of shape (batch,), or a "
                f"dict whose 'loss' is one; got {got}. Compute the loss without reducing it, e.g. "
                "F.cross_entropy(logits, y, reduction='none'), and return that (GroupDRO reduces it to the "
                "group-DRO objective; for plain ERM without GroupDRO, return its .mean())."
            )
        groups = self._checked_groups(groups, len(losses)).to(losses.device)
        dtype = torch.promote_types(losses.dtype, torch.float32)
        sums = group_sums(losses.to(dtype), groups, self.num_groups)
        counts = torch.bincount(groups, minlength=self.num_groups).to(dtype)
        group_losses = sums / counts.clamp(min=1)
        # q must follow the global batch: sum group losses over ranks (identity on one process).
        total_sums, total_counts = sums.detach(), counts
        if self._sum_across_ranks is not None:
            total_sums, total_counts = self._sum_across_ranks(total_sums), self._sum_across_ranks(total_counts)
        present = total_counts > 0
        ascent = total_sums / total_counts.clamp(min=1)
        if self.generalization_adjustment > 0:
            if self._counts is None:
                raise ValueError(
                    "GroupDRO(generalization_adjustment > 0) needs the training group counts: pass "
                    "group_counts=[...], or train with a Trainer, which counts them at fit start."
                )
            ascent = ascent + self.generalization_adjustment / self._counts.to(ascent).clamp(min=1).sqrt()
        # q_g · exp(η L_g) renormalized is softmax(log q + η L): the same update, without overflow.
        log_q = self._q.to(ascent).log() + self.step_size * torch.where(present, ascent, 0.0)
        self._q = torch.softmax(log_q, dim=0).to(torch.float32)
        self._epoch_sums = self._epoch_sums.to(total_sums) + total_sums
        self._epoch_counts = self._epoch_counts.to(total_counts) + total_counts
        return (self._q.to(group_losses) * group_losses).sum()

    def _checked_groups(self, groups: Any, n: int | None) -> Tensor:
        groups = torch.as_tensor(groups)
        if groups.dtype == torch.bool:
            groups = groups.long()
        if groups.is_floating_point() or groups.is_complex():
            raise ValueError(f"group indices must be integers, got dtype {groups.dtype}.")
        if groups.dim() != 1 or (n is not None and len(groups) != n):
            raise ValueError(
                f"group indices must have shape ({n if n is not None else 'batch'},), one per sample, "
                f"got shape {tuple(groups.shape)}."
            )
        if groups.numel() and (groups.min() < 0 or groups.max() >= self.num_groups):
            raise ValueError(
                f"group indices must lie in [0, {self.num_groups - 1}] (num_groups={self.num_groups}), "
                f"got {groups.unique().tolist()}; set num_groups to the number of groups."
            )
        return groups.long()

    def _batch_groups(self, batch: Any) -> Any:
        if callable(self.groups):
            return self.groups(batch)
        is_dict = isinstance(batch, Mapping)
        if self.groups == "membership":
            key = "is_member" if is_dict else -1
        else:
            key = self.group_index if not is_dict or isinstance(self.group_index, str) else "group"
        try:
            return batch[key]
        except (KeyError, IndexError, TypeError) as err:
            raise ValueError(
                f"GroupDRO(groups={self.groups!r}) found no group indices at {key!r} of the training batch "
                f"({type(batch).__name__}); set group_index=..., or pass groups=<callable batch -> groups>."
            ) from err

    def _users_batch(self, batch: Any) -> Any:
        """The batch as the user's dataset yields it: without the membership flag GroupDRO asked for."""
        if self.groups != "membership":
            return batch
        if isinstance(batch, Mapping):
            return {key: value for key, value in batch.items() if key != "is_member"}
        return batch[:-1]

    # -- hooks -----------------------------------------------------------------------------------
    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        if not pl_module.automatic_optimization:
            raise ValueError(
                "GroupDRO needs automatic optimization (it replaces the loss training_step returns); "
                "set automatic_optimization = True or apply GroupDRO.step yourself."
            )
        multiprocess = trainer.world_size > 1
        self._sum_across_ranks = partial(trainer.strategy.reduce, reduce_op="sum") if multiprocess else None
        original = pl_module.training_step

        def training_step(batch: Any, *args: Any, **kwargs: Any) -> Any:
            groups = self._batch_groups(batch)
            output = original(self._users_batch(batch), *args, **kwargs)
            if output is None:  # Lightning's way of skipping a batch
                return None
            if isinstance(output, Mapping):
                return {**output, "loss": self.step(output.get("loss"), groups)}
            return self.step(output, groups)

        self.patcher.patch(pl_module, "training_step", training_step)

    @override
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.generalization_adjustment > 0 and self._counts is None:
            self._counts = self._count_groups(trainer.train_dataloader)

    def _count_groups(self, loader: Any) -> Tensor:
        if not isinstance(loader, DataLoader):
            raise ValueError(
                "GroupDRO(generalization_adjustment > 0) counts groups from a single training DataLoader, got "
                f"{type(loader).__name__}; pass group_counts=[n_0, ..., n_{self.num_groups - 1}]."
            )
        counts = torch.zeros(self.num_groups)
        for batch in DataLoader(loader.dataset, batch_size=256, collate_fn=loader.collate_fn):
            counts += torch.bincount(self._checked_groups(self._batch_groups(batch), None), minlength=self.num_groups)
        return counts

    @override
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._loaded:  # the checkpoint's epoch goes on: keep its running group losses
            self._loaded = False
            return
        self._clear_epoch()

    def _clear_epoch(self) -> None:
        self._epoch_sums = torch.zeros_like(self._epoch_sums)
        self._epoch_counts = torch.zeros_like(self._epoch_counts)

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.weights_by_epoch.append([float(w) for w in self._q.tolist()])
        for g, weight in enumerate(self.weights_by_epoch[-1]):
            pl_module.log(f"aca/gdro/q/{g}", weight, on_step=False, on_epoch=True)
        present = self._epoch_counts > 0
        if present.any():
            self.worst_group_loss = float((self._epoch_sums[present] / self._epoch_counts[present]).max())
            pl_module.log("aca/gdro/worst_group_loss", self.worst_group_loss, on_step=False, on_epoch=True)
        self._clear_epoch()  # so that a checkpoint written at epoch end starts the next epoch afresh

    def record_fields(self) -> dict[str, Any]:
        """What Group DRO adds to a run's record, JSON-ready; ``{}`` before a training epoch has ended.

        ``group_weights``: the final q, one float per group; ``worst_group_loss``: the largest
        per-group average training loss of the last epoch; ``group_weights_by_epoch``: q at the end
        of every training epoch.
        """
        if self.worst_group_loss is None:
            return {}
        return {
            "group_weights": [float(w) for w in self._q.tolist()],
            "worst_group_loss": self.worst_group_loss,
            "group_weights_by_epoch": [list(q) for q in self.weights_by_epoch],
        }

    # -- checkpointing ---------------------------------------------------------------------------
    @override
    def state_dict(self) -> dict[str, Any]:
        counts = None if self._counts is None else self._counts.cpu().clone()
        return {
            "q": self._q.detach().cpu().clone(),
            "group_counts": counts,
            "epoch_sums": self._epoch_sums.detach().cpu().clone(),
            "epoch_counts": self._epoch_counts.detach().cpu().clone(),
            "worst_group_loss": self.worst_group_loss,
            "weights_by_epoch": [list(q) for q in self.weights_by_epoch],
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        q = torch.as_tensor(state_dict["q"], dtype=torch.float32)
        if q.shape != (self.num_groups,):
            raise ValueError(
                f"the checkpoint's GroupDRO state has q for {q.numel()} groups, but num_groups={self.num_groups}."
            )
        self._q = q.clone()
        counts = state_dict["group_counts"]
        self._counts = None if counts is None else self._checked_counts(counts, "the checkpoint's group_counts")
        # a checkpoint written mid-epoch resumes the epoch's running group losses
        zeros = torch.zeros(self.num_groups)
        self._epoch_sums = torch.as_tensor(state_dict.get("epoch_sums", zeros), dtype=torch.float32).clone()
        self._epoch_counts = torch.as_tensor(state_dict.get("epoch_counts", zeros), dtype=torch.float32).clone()
        self.worst_group_loss = state_dict.get("worst_group_loss")
        self.weights_by_epoch = [list(q) for q in state_dict.get("weights_by_epoch", [])]
        self._loaded = True
