"""``GradientNeutralization`` and ``GradientControl``: the collective's gradient strategies as Lightning callbacks.

Hardt, Mazumdar, Mendler-Dünner, Zrnic, "Algorithmic Collective Action in Machine Learning",
ICML 2023 (arXiv 2302.04262), §4–5. At every training step the callback sees the current
parameters θ_t and the batch (``on_train_batch_start``, before ``training_step``), and rewrites
in place only the rows of the members (the batch's membership flag, from
``CollectiveDataModule(..., return_membership=True)``): their inputs (kept in a stated box) and
labels (class indices). The other rows are not touched. The members' gradient sums are in
:mod:`lightning_aca.gradient_strategies.functional`, when they are feasible in
:mod:`lightning_aca.gradient_strategies.theory` (derived here; derivations in ``docs/theory.md``).

What the collective is assumed to know: the current model θ_t (both strategies), the firm's
learning rate (gradient control), DP-SGD's clipping norm and expected batch size when the
optimizer is Opacus's (read from the optimizer), and the rest of the gradient: with
``rest_gradient="batch"`` the other points of the current batch (an upper bound on the
collective's power), with ``"estimate"`` only its members' own stored points, a uniform sample of
the clean data whose mean gradient estimates ∇L_{P₀}(θ).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from torch.nn.utils import parameters_to_vector
from torch.utils.data import DataLoader, Subset
from typing_extensions import override

from lightning_aca.gradient_strategies.families import FAMILIES, GradientFamily, flat_parameters, make_family
from lightning_aca.gradient_strategies.functional import (
    check_feature_bounds,
    clip_per_sample,
    control_member_sum,
    neutralization_member_sum,
)
from lightning_aca.gradient_strategies.theta_star import StateSpec, ThetaStar, as_theta_star, trainable_parameters
from lightning_aca.theory import gradient_neutralization_alpha_bound
from lightning_aca.validation import non_negative_int, one_of, positive_int, positive_real, real

_REST_GRADIENTS = ("batch", "estimate")
_ON_INFEASIBLE = ("warn", "raise")
_CHUNK = 1024


def _stack_points(dataset: Any, indices: Tensor, input_key: int | str, label_key: int | str) -> tuple[Tensor, Tensor]:
    """Inputs and labels of ``dataset[indices]``, stacked (items are tuples or dicts, as the data layer allows)."""
    inputs, labels = [], []
    for batch in DataLoader(Subset(dataset, indices.tolist()), batch_size=_CHUNK):
        inputs.append(batch[input_key])
        labels.append(batch[label_key])
    return torch.cat(inputs), torch.cat(labels).long()


def _optimizer_settings(optimizer: Any) -> tuple[float | None, float | None, Any]:
    """(DP-SGD's clipping norm C, its expected batch size, the underlying optimizer); C and size are None without DP."""
    from opacus.optimizers import DPOptimizer

    if isinstance(optimizer, DPOptimizer):
        return float(optimizer.max_grad_norm), float(optimizer.expected_batch_size), optimizer.original_optimizer
    return None, None, optimizer


class _GradientCallback(L.Callback, ABC):
    """Shared machinery: θ*, the model family, the rest of the gradient, the theory, the logs."""

    #: the strategy's name in messages
    _name = "gradient strategy"

    def __init__(
        self,
        theta_star: ThetaStar | StateSpec,
        feature_bounds: tuple[float, float] | None = None,
        family: str = "auto",
        rest_gradient: str = "batch",
        start_step: int = 0,
        candidates: int = 512,
        refine_steps: int = 25,
        search_rounds: int = 2,
        search_steps: int = 20,
        reference_points: int = 10_000,
        on_infeasible: str = "warn",
        seed: int = 0,
        input_key: int | str = 0,
        label_key: int | str = 1,
    ) -> None:
        self.theta_star = as_theta_star(theta_star)
        self.feature_bounds = check_feature_bounds(feature_bounds)
        self.family = one_of("family", family, FAMILIES)
        self.rest_gradient = one_of("rest_gradient", rest_gradient, _REST_GRADIENTS)
        self.start_step = non_negative_int("start_step", start_step)
        self.candidates = positive_int("candidates", candidates)
        self.refine_steps = non_negative_int("refine_steps", refine_steps)
        self.search_rounds = positive_int("search_rounds", search_rounds)
        self.search_steps = non_negative_int("search_steps", search_steps)
        self.reference_points = positive_int("reference_points", reference_points)
        self.on_infeasible = one_of("on_infeasible", on_infeasible, _ON_INFEASIBLE)
        self.seed = non_negative_int("seed", seed)
        self.input_key = input_key
        self.label_key = label_key
        #: θ* resolved against the firm's model (flat, as its trainable parameters) when the collective starts acting
        self.theta_star_vector: Tensor | None = None
        #: the theory values at θ*: G, B, the norm bound G/(G + B) and α* (linear family)
        self.theory: dict[str, float] = {}
        #: (global step, ‖θ − θ*‖) after every optimizer step since the collective started
        self.distances: list[tuple[int, float]] = []
        #: the latest value of every logged key
        self.results: dict[str, float] = {}
        self._family: GradientFamily | None = None
        self._prepared = False
        self._clip_norm: float | None = None
        self._expected_batch: float | None = None
        self._reference: tuple[Tensor, Tensor] | None = None
        self._reference_mean: tuple[Tensor, Tensor] | None = None
        self._residuals: list[float] = []

    @property
    @override
    def state_key(self) -> str:
        return self._generate_state_key(**self._settings())

    def _settings(self) -> dict[str, Any]:
        """The settings that tell two instances apart in a checkpoint (printed the same in every process)."""
        shown = type(self.theta_star).__repr__ is not object.__repr__
        return {
            "theta_star": repr(self.theta_star) if shown else type(self.theta_star).__qualname__,
            "feature_bounds": self.feature_bounds,
            "family": self.family,
            "rest_gradient": self.rest_gradient,
            "start_step": self.start_step,
            "seed": self.seed,
        }

    # -- set-up --------------------------------------------------------------------------------
    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit" or self._family is None:
            self._family = make_family(
                self.family,
                pl_module,
                self.feature_bounds,
                self.candidates,
                self.seed,
                self.refine_steps,
                self.search_rounds,
                self.search_steps,
            )
            self._prepared = False

    def _prepare(self, trainer: L.Trainer, pl_module: L.LightningModule, inputs: Tensor) -> None:
        """First batch the collective acts on: check the family, read the optimizer, fix θ* and the theory."""
        self._family.prepare(pl_module, inputs)
        self._clip_norm, self._expected_batch, optimizer = _optimizer_settings(trainer.optimizers[0])
        self._check_firm(trainer, optimizer)
        train_set = getattr(trainer.datamodule, "train_dataset", None)
        members = getattr(train_set, "members", None)
        if self.rest_gradient == "estimate":
            if members is None or len(members) == 0:
                raise ValueError(
                    "rest_gradient='estimate' reads the collective's own stored points; train with a "
                    "CollectiveDataModule whose collective has members, or use rest_gradient='batch'."
                )
            chosen = self._subsample(torch.as_tensor(members))
            self._reference = _stack_points(train_set.dataset, chosen, self.input_key, self.label_key)
        current = flat_parameters(pl_module)
        if self.theta_star_vector is None:
            resolved = self.theta_star.resolve(pl_module)
            theta = parameters_to_vector(resolved[name] for name in trainable_parameters(pl_module))
            self.theta_star_vector = self._family.reachable(theta.to(current), current)
            self.theory = self._theory(train_set)
        else:  # restored from a checkpoint: keep the θ* the collective chose then
            self.theta_star_vector = self.theta_star_vector.to(current)
        self._prepared = True

    def _check_firm(self, trainer: L.Trainer, optimizer: Any) -> None:
        """Hook for strategies that depend on how the firm steps (gradient control)."""

    def _subsample(self, indices: Tensor) -> Tensor:
        if len(indices) <= self.reference_points:
            return indices
        generator = torch.Generator().manual_seed(self.seed)
        return indices[torch.randperm(len(indices), generator=generator)[: self.reference_points]].sort().values

    def _mean_gradient(self, theta: Tensor, inputs: Tensor, labels: Tensor) -> Tensor:
        total = torch.zeros_like(theta)
        for start in range(0, len(inputs), _CHUNK):
            x = inputs[start : start + _CHUNK].to(theta.device, theta.dtype)
            y = labels[start : start + _CHUNK].to(theta.device)
            with torch.no_grad():
                total += clip_per_sample(self._family.gradients(theta, x, y), self._clip_norm).sum(0)
        return total / len(inputs)

    def _theory(self, train_set: Any) -> dict[str, float]:
        """G, B, the norm bound G/(G + B) and α* at θ*, with G estimated on the clean training set."""
        base = getattr(train_set, "dataset", None)
        if base is None or not hasattr(train_set, "population_alpha"):
            return {}
        inputs, labels = _stack_points(base, self._subsample(torch.arange(len(base))), self.input_key, self.label_key)
        theta_star = self.theta_star_vector
        gradient = self._mean_gradient(theta_star, inputs, labels)
        norm = float(gradient.norm())
        bound = self._family.member_bound(theta_star, self.feature_bounds, self._clip_norm)
        theory = {
            "aca/base_gradient_norm": norm,
            "aca/member_gradient_bound": bound,
            "aca/alpha_norm_bound": gradient_neutralization_alpha_bound(norm, bound),
        }
        alpha_star = self._family.alpha_star(theta_star, gradient, self.feature_bounds, self._clip_norm)
        if alpha_star is not None:
            theory["aca/alpha_star"] = alpha_star
        self._report_feasibility(float(train_set.population_alpha), theory)
        return theory

    def _report_feasibility(self, alpha: float, theory: dict[str, float]) -> None:
        norm_bound, alpha_star = theory["aca/alpha_norm_bound"], theory.get("aca/alpha_star")
        if alpha >= (alpha_star if alpha_star is not None else norm_bound):
            return
        dp = f" under DP-SGD clipping C = {self._clip_norm:g}" if self._clip_norm is not None else ""
        if alpha < norm_bound:
            why = (
                f"α = {alpha:.4g} is below the norm bound G/(G + B) = {norm_bound:.4g} (G = ‖∇L(θ*)‖ = "
                f"{theory['aca/base_gradient_norm']:.4g} on the clean training set, B = "
                f"{theory['aca/member_gradient_bound']:.4g}{dp}): no collective this small can make θ* stationary"
            )
        else:
            why = (
                f"α = {alpha:.4g} is below the critical mass α* = {alpha_star:.4g} of the members' gradient hull at "
                f"θ*{dp} (above the necessary norm bound {norm_bound:.4g}): the members cannot cancel the clean "
                "gradient at θ*"
            )
        message = f"{self._name} is infeasible: {why}. The distance to θ* will not shrink to zero."
        if self.on_infeasible == "raise":
            raise ValueError(message + " Use a larger collective.alpha or a θ* closer to the model.")
        rank_zero_warn(message)

    # -- every step ------------------------------------------------------------------------------
    def _unpack(self, batch: Any) -> tuple[Tensor, Tensor, Tensor]:
        flag = batch.get("is_member") if isinstance(batch, Mapping) else (batch[-1] if len(batch) >= 3 else None)
        if not isinstance(flag, Tensor) or flag.dtype != torch.bool:
            raise ValueError(
                f"{self._name} needs to know which rows of a batch are members, but batches carry no membership "
                "flag; build the data with CollectiveDataModule(..., return_membership=True)."
            )
        return batch[self.input_key], batch[self.label_key], flag

    @abstractmethod
    def _evaluation_point(self, theta: Tensor) -> Tensor:
        """The parameters at which members' and the rest's gradients are taken."""

    @abstractmethod
    def _member_sum(
        self, trainer: L.Trainer, theta: Tensor, rest_sum: Tensor, batch_size: int
    ) -> tuple[Tensor, Tensor | None]:
        """The sum of gradients the members aim at, as (sum, direction): sum + t·direction for the largest feasible t ≤ 1."""

    def _rest_sum(self, at: Tensor, inputs: Tensor, labels: Tensor, rest: Tensor) -> Tensor:
        n_rest = int(rest.sum())
        if self.rest_gradient == "batch":
            if n_rest == 0:
                return torch.zeros_like(at)
            with torch.no_grad():
                return clip_per_sample(self._family.gradients(at, inputs[rest], labels[rest]), self._clip_norm).sum(0)
        cached = self._reference_mean
        if cached is None or not torch.equal(cached[0], at):
            cached = (at.clone(), self._mean_gradient(at, *self._reference))
            self._reference_mean = cached
        return n_rest * cached[1]

    @override
    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step < self.start_step:
            return
        inputs, labels, member = self._unpack(batch)
        if not self._prepared:
            self._prepare(trainer, pl_module, inputs)
        member = member.to(inputs.device)
        count = int(member.sum())
        if count == 0:
            return
        theta = flat_parameters(pl_module)
        at = self._evaluation_point(theta)
        rest_sum = self._rest_sum(at, inputs, labels, ~member)
        member_sum, direction = self._member_sum(trainer, theta, rest_sum, len(inputs))
        new_inputs, new_labels = self._family.construct(
            at, member_sum, inputs[member], labels[member], self.feature_bounds, self._clip_norm, direction
        )
        if direction is not None:
            member_sum = member_sum + direction
        inputs[member] = new_inputs.to(inputs.device, inputs.dtype)
        labels[member] = new_labels.to(labels.device, labels.dtype)
        with torch.no_grad():
            achieved = clip_per_sample(self._family.gradients(at, new_inputs, new_labels), self._clip_norm).sum(0)
        self._residuals.append(float((achieved - member_sum).norm() / member_sum.norm().clamp_min(1e-12)))

    @override
    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.theta_star_vector is None:
            return
        values = self._distances(pl_module)
        self.distances.append((trainer.global_step, values["aca/param_distance"]))
        self._log(pl_module, values, on_step=True)

    def _log(self, pl_module: L.LightningModule, values: dict[str, float], on_step: bool) -> None:
        """Log ``values`` per step or per epoch, and keep them in :attr:`results`."""
        self.results.update(values)
        for name, value in values.items():
            pl_module.log(name, value, on_step=on_step, on_epoch=not on_step, batch_size=1)

    def _distances(self, pl_module: L.LightningModule) -> dict[str, float]:
        gap = flat_parameters(pl_module) - self.theta_star_vector.to(pl_module.device)
        return {
            "aca/param_distance": float(gap.norm()),
            "aca/controllable_distance": float(self._family.controllable(gap).norm()),
        }

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.theta_star_vector is None:
            return
        values = dict(self.theory)
        if self._residuals:
            values["aca/gradient_residual"] = sum(self._residuals) / len(self._residuals)
        self._residuals = []
        self._log(pl_module, values, on_step=False)

    @override
    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.theta_star_vector is None:
            return
        self._log(pl_module, {**self._distances(pl_module), **self.theory}, on_step=False)

    # -- checkpoints -------------------------------------------------------------------------------
    @override
    def state_dict(self) -> dict[str, Any]:
        return {
            "theta_star": self.theta_star_vector,
            "theory": dict(self.theory),
            "distances": list(self.distances),
            "results": dict(self.results),
            "residuals": list(self._residuals),
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.theta_star_vector = state_dict.get("theta_star")
        self.theory = dict(state_dict.get("theory", {}))
        self.distances = [tuple(item) for item in state_dict.get("distances", [])]
        self.results = dict(state_dict.get("results", {}))
        self._residuals = list(state_dict.get("residuals", []))  # the running epoch's, for a mid-epoch resume


class GradientNeutralization(_GradientCallback):
    """Members submit points whose gradients at θ* cancel the rest of the batch's, so θ* is stationary.

    Hardt et al. 2023, §4 (gradient neutralization). At every step the members' gradient sum at θ*
    is set to −S_rest(θ*) (:func:`~lightning_aca.gradient_strategies.functional.neutralization_member_sum`), so
    θ* is a fixed point of the firm's SGD, which converges to it when the loss is convex near θ*.
    Feasible only above the critical mass α* (:mod:`lightning_aca.gradient_strategies.theory`),
    which the callback checks at the first step, warning (or raising, ``on_infeasible="raise"``)
    when the collective is smaller.

    Supported models (``family``): ``"linear"`` — a single ``nn.Linear`` on flattened inputs
    (multinomial logistic regression, e.g. ``Classifier(arch="linear")``), closed-form gradients and
    the convex-hull construction; ``"autograd"`` — any differentiable classifier without BatchNorm,
    gradients through ``torch.func`` and a local search over members' labels and inputs; ``"auto"``
    picks ``"linear"`` when the model's structure is linear. Other models fail at fit start with a
    ``TypeError`` that says which family to use. The firm's loss must be mean softmax cross-entropy.

    Logged (stable keys): ``aca/param_distance`` (‖θ − θ*‖ after every step) and
    ``aca/controllable_distance`` (the same without the part no gradient can change: for the linear
    family the class-mean of the parameters, which changes no prediction and which only DP-SGD's
    noise moves), and each epoch
    ``aca/base_gradient_norm`` (G), ``aca/member_gradient_bound`` (B), ``aca/alpha_norm_bound``
    (G/(G + B)), ``aca/alpha_star`` (linear family) and ``aca/gradient_residual`` (mean over the
    epoch's steps of ‖achieved − aimed‖/‖aimed‖ for the members' gradient sum; for gradient control the
    sum aimed at is the full-rate step, so saturation far from θ* shows here); the distances and the
    theory again at test end.

    Args:
        theta_star: θ*: a :class:`~lightning_aca.gradient_strategies.ThetaStar` (e.g.
            ``LogitShift(target_class=0, shift=1.0)``), a state dict of the model, or a checkpoint path.
        feature_bounds: ``(low, high)``, the box every input entry of a member's point stays in
            (valid inputs, e.g. ``(0, 1)`` for images, the data's clipping box for tabular data).
        family: ``"auto"``, ``"linear"`` or ``"autograd"`` (above).
        rest_gradient: ``"batch"`` (the collective sees the other points of the batch) or
            ``"estimate"`` (it knows only its members' stored points and uses their mean gradient).
        start_step: the global step at which the collective starts acting; a rule for θ* (e.g.
            ``LogitShift``) copies the model of that step. Before it, members' points are left as stored.
        candidates: candidate inputs of the linear family's convex-hull construction (uniform in the
            box, plus its corners for inputs of at most 10 entries); the autograd family uses up to 256
            of them to estimate B.
        refine_steps: projected gradient steps removing the linear construction's rounding error.
        search_rounds, search_steps: the autograd family's local search (relabelling rounds, Adam
            steps per round).
        reference_points: at most this many clean training points estimate G (and, for
            ``rest_gradient="estimate"``, at most this many members' points the rest's gradient).
        on_infeasible: ``"warn"`` or ``"raise"`` when the collective is below α* (or, where α* is not
            computed, the norm bound).
        seed: seed of the candidates and of the reference subsamples.
        input_key, label_key: positions (tuple batches) or keys (dict batches) of input and label
            (``label_key`` defaults to 1).
    """

    _name = "GradientNeutralization"

    def _evaluation_point(self, theta: Tensor) -> Tensor:
        return self.theta_star_vector

    def _member_sum(self, trainer, theta, rest_sum, batch_size):
        return neutralization_member_sum(rest_sum), None


class GradientControl(_GradientCallback):
    """Members steer the firm's SGD towards θ*: at each step their gradients make the step close a fraction of the gap.

    Hardt et al. 2023, §5 (gradient control). Seeing θ_t, the members' gradient sum at θ_t is set to
    n·(κ/η)·(θ_t − θ*) − S_rest(θ_t) (:func:`~lightning_aca.gradient_strategies.functional.control_member_sum`,
    κ = ``rate``, η the firm's learning rate, n its batch size — DP-SGD's expected batch size under
    Opacus), so that a plain SGD step gives θ_{t+1} − θ* = (1 − κ)(θ_t − θ*). Where that sum is not
    reachable (far from θ*, or a small collective) the members produce the closest sum they can.
    Holding θ* needs the neutralization condition at θ*, so the same α* and norm bound apply and are
    computed, logged and reported as for :class:`GradientNeutralization`. With momentum, weight decay
    or another optimizer than SGD the one-step contraction does not hold (a warning says so).

    Supported models, logged keys and arguments: as :class:`GradientNeutralization`, plus

    Args:
        rate: κ in (0, 1], the fraction of the distance to θ* one step should close.

    Example:
        >>> from lightning_aca.gradient_strategies import LogitShift
        >>> GradientControl(LogitShift(target_class=0, shift=1.0), feature_bounds=(-4, 4), rate=0.5).rate
        0.5
    """

    _name = "GradientControl"

    def __init__(
        self,
        theta_star: ThetaStar | StateSpec,
        feature_bounds: tuple[float, float] | None = None,
        rate: float = 0.5,
        **kwargs: Any,
    ) -> None:
        super().__init__(theta_star, feature_bounds, **kwargs)
        self.rate = real("rate (the fraction of the gap closed per step)", rate, low=0.0, high=1.0, low_open=True)

    @override
    def _settings(self) -> dict[str, Any]:
        return {**super()._settings(), "rate": self.rate}

    def _check_firm(self, trainer: L.Trainer, optimizer: Any) -> None:
        if trainer.accumulate_grad_batches != 1:
            raise ValueError(
                f"GradientControl models one optimizer step per batch; accumulate_grad_batches="
                f"{trainer.accumulate_grad_batches} spreads a step over several. Use a larger batch size instead."
            )
        groups = optimizer.param_groups
        rates = {group["lr"] for group in groups}
        if len(rates) > 1:
            raise ValueError(
                f"GradientControl needs one learning rate for the whole model; the optimizer's groups use {sorted(rates)}."
            )
        extras = {
            key: groups[0].get(key, 0) for key in ("momentum", "weight_decay") if groups[0].get(key, 0) not in (0, 0.0)
        }
        if not isinstance(optimizer, torch.optim.SGD) or extras:
            rank_zero_warn(
                f"GradientControl's step model assumes plain SGD (θ ← θ − η·g); the firm uses {type(optimizer).__name__}"
                f"{' with ' + str(extras) if extras else ''}: the collective still steers towards θ*, but the "
                "contraction (1 − rate) per step does not hold."
            )

    def _evaluation_point(self, theta: Tensor) -> Tensor:
        return theta

    def _member_sum(self, trainer, theta, rest_sum, batch_size):
        lr = positive_real(
            "GradientControl: the optimizer's learning rate", trainer.optimizers[0].param_groups[0]["lr"]
        )
        normalizer = self._expected_batch if self._expected_batch is not None else batch_size
        # from holding still (neutralizing at θ_t) to the full-rate step: the members go as far along as they can
        hold = neutralization_member_sum(rest_sum)
        gap = self._family.controllable(theta - self.theta_star_vector)
        return hold, control_member_sum(gap, rest_sum, normalizer, lr, self.rate) - hold
