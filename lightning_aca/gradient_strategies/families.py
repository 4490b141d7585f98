"""The model families the gradient strategies support, and how each computes and constructs gradients.

Both families assume the firm's training loss is the batch mean of softmax cross-entropy on the
module's outputs (logits ``(B, K)``) with int64 class labels, as :class:`lightning_aca.Classifier`
trains; that cannot be checked from outside ``training_step``.

- ``"linear"``: the module's only trainable parameters are the weight ``(K, d)`` and bias of one
  ``nn.Linear``, and its output on a batch x is ``W·flatten(x) + b`` (checked on the first batch).
  Gradients are computed in closed form (:func:`~lightning_aca.gradient_strategies.functional.linear_softmax_gradients`),
  never through the module, so nothing the firm attaches to it (DP-SGD's per-sample hooks) sees
  them; members' points come from the convex-hull construction and the critical mass α* is computed.
- ``"autograd"``: any module differentiable in its float inputs, without BatchNorm (a per-sample
  gradient of a batch-statistics layer is not defined). Gradients are taken with ``torch.func``
  on a copy of the module made at fit setup, before DP-SGD attaches hooks, in eval mode (dropout
  off); members' points come from a local search from their own points. The member-gradient bound
  is estimated from random points in the box, and no α* is computed.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from functools import partial

import torch
from torch import Tensor, nn
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from lightning_aca.gradient_strategies.functional import linear_softmax_gradients
from lightning_aca.gradient_strategies.synthesis import label_atoms, synthesize_by_search, synthesize_from_hull
from lightning_aca.gradient_strategies.theory import linear_member_gradient_bound, neutralization_alpha_star
from lightning_aca.gradient_strategies.theta_star import trainable_parameters
from lightning_aca.gradients import per_sample_gradients

FAMILIES = ("auto", "linear", "autograd")
_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def flat_parameters(module: nn.Module) -> Tensor:
    """The module's trainable parameters as one detached vector (registration order)."""
    return parameters_to_vector(trainable_parameters(module).values()).detach()


def _linear_layer(module: nn.Module) -> nn.Linear | None:
    """The one ``nn.Linear`` (with bias) holding every trainable parameter of ``module``, or ``None``."""
    owners = [m for m in module.modules() if any(p.requires_grad for p in m.parameters(recurse=False))]
    if len(owners) == 1 and isinstance(owners[0], nn.Linear) and owners[0].bias is not None:
        return owners[0]
    return None


class GradientFamily(ABC):
    """How the collective computes gradients of the firm's model and builds its members' points."""

    name: str
    num_classes: int

    @abstractmethod
    def prepare(self, module: nn.Module, inputs: Tensor) -> None:
        """Check on a first batch of inputs that the family fits ``module``, and finish setting up."""

    @abstractmethod
    def gradients(self, theta: Tensor, inputs: Tensor, labels: Tensor) -> Tensor:
        """Per-sample gradients ``(n, P)`` of cross-entropy at parameters ``theta`` (flat, as :func:`flat_parameters`)."""

    @abstractmethod
    def construct(
        self,
        theta: Tensor,
        member_sum: Tensor,
        inputs: Tensor,
        labels: Tensor,
        feature_bounds: tuple[float, float],
        clip_norm: float | None,
        direction: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Members' new inputs (shape of ``inputs``) and labels whose clipped gradients at ``theta`` sum to ``member_sum``.

        With ``direction``, the sum aimed at is member_sum + t·direction with t ∈ [0, 1] as large as
        the family's construction can reach (the autograd family aims at t = 1).
        """

    @abstractmethod
    def member_bound(self, theta: Tensor, feature_bounds: tuple[float, float], clip_norm: float | None) -> float:
        """B, the largest (clipped) gradient norm a member's point can have at ``theta``."""

    def alpha_star(
        self, theta: Tensor, base_gradient: Tensor, feature_bounds: tuple[float, float], clip_norm: float | None
    ) -> float | None:
        """α* of :func:`~lightning_aca.gradient_strategies.theory.neutralization_alpha_star` at θ*, where computable."""
        return None

    def controllable(self, change: Tensor) -> Tensor:
        """The part of a parameter change that gradients of the model can produce (default: all of it)."""
        return change

    def reachable(self, theta_star: Tensor, current: Tensor) -> Tensor:
        """The point gradient steps from ``current`` can reach that stands for ``theta_star``."""
        return current + self.controllable(theta_star - current)


class LinearSoftmax(GradientFamily):
    """``family="linear"``: logits W·flatten(x) + b, gradients and members' points in closed form.

    Args:
        layer: the ``nn.Linear`` whose weight and bias are the model's only trainable parameters.
        candidates: candidate inputs ``(J, d)`` for the convex-hull construction (inside the box).
        refine_steps: projected gradient steps that remove the rounding error of the construction.
    """

    name = "linear"

    def __init__(self, layer: nn.Linear, candidates: Tensor, refine_steps: int = 25) -> None:
        self.layer = layer
        self.num_classes, self.num_features = layer.out_features, layer.in_features
        self.candidates = candidates
        self.refine_steps = refine_steps
        self._atoms_cache: tuple[Tensor, float | None, Tensor] | None = None

    def split(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        """``(weight (K, d), bias (K,))`` from the flat vector ``[vec(W), b]``."""
        k, d = self.num_classes, self.num_features
        return theta[: k * d].reshape(k, d), theta[k * d :]

    def prepare(self, module: nn.Module, inputs: Tensor) -> None:
        """Raise ``TypeError`` unless ``module(inputs)`` equals ``W·flatten(inputs) + b``."""
        with torch.no_grad():
            flat = inputs.reshape(len(inputs), -1)
            if flat.shape[1] != self.num_features:
                raise TypeError(
                    f"family='linear': inputs have {flat.shape[1]} entries but the linear layer takes "
                    f"{self.num_features}; use family='autograd'."
                )
            out = module(inputs)
            if out.shape != (len(inputs), self.num_classes) or not torch.allclose(out, self.layer(flat), atol=1e-5):
                raise TypeError(
                    "family='linear' needs a model whose output is W·flatten(x) + b of its one nn.Linear; this "
                    "model's forward does something else (a nonlinearity, scaling or preprocessing). Use "
                    "family='autograd'."
                )

    def gradients(self, theta: Tensor, inputs: Tensor, labels: Tensor) -> Tensor:
        return linear_softmax_gradients(*self.split(theta), inputs, labels)

    def _atoms(self, theta: Tensor, clip_norm: float | None) -> Tensor:
        # neutralization evaluates every step at the same θ*: keep its atoms
        cache = self._atoms_cache
        if cache is not None and cache[1] == clip_norm and torch.equal(cache[0], theta):
            return cache[2]
        atoms = label_atoms(partial(self.gradients, theta), self.candidates, self.num_classes, clip_norm)
        self._atoms_cache = (theta.clone(), clip_norm, atoms)
        return atoms

    def construct(self, theta, member_sum, inputs, labels, feature_bounds, clip_norm, direction=None):
        weight, bias = self.split(theta)
        new_inputs, new_labels = synthesize_from_hull(
            weight,
            bias,
            member_sum,
            len(inputs),
            self.candidates,
            feature_bounds,
            clip_norm,
            self.refine_steps,
            atoms=self._atoms(theta, clip_norm),
            direction=direction,
        )
        return new_inputs.reshape(inputs.shape).to(inputs.dtype), new_labels.to(labels.device)

    def member_bound(self, theta, feature_bounds, clip_norm):
        return linear_member_gradient_bound(feature_bounds, self.num_features, clip_norm)

    def alpha_star(self, theta, base_gradient, feature_bounds, clip_norm):
        return neutralization_alpha_star(base_gradient, self._atoms(theta, clip_norm))

    def controllable(self, change: Tensor) -> Tensor:
        """``change`` without its class-mean: the part of it gradients can produce, the rest changes no prediction.

        Gradients (p − e_y)·[x, 1]ᵀ have rows summing to zero, so gradient steps never change Σ_k W_k
        or Σ_k b_k (only DP-SGD's noise does); adding one vector to every row of [W | b] leaves the
        softmax unchanged. θ* is therefore moved, without changing any prediction, to the
        affine set SGD can reach, and the control aims only at the controllable part of the gap.
        """
        k, d = self.num_classes, self.num_features
        rows = torch.cat([change[: k * d].reshape(k, d), change[k * d :, None]], dim=1)
        rows = rows - rows.mean(dim=0, keepdim=True)
        return torch.cat([rows[:, :d].reshape(-1), rows[:, d]])


class AutogradModel(GradientFamily):
    """``family="autograd"``: any differentiable classifier; gradients through ``torch.func`` on a copy of it.

    Args:
        module: the firm's LightningModule, copied now (call at fit setup, before DP-SGD hooks it).
        feature_bounds: the box members' inputs stay in.
        candidates: how many random inputs in the box estimate the member-gradient bound.
        seed: seed of those random inputs.
        rounds, steps: rounds of relabelling and Adam steps per round of the local search.
    """

    name = "autograd"

    def __init__(
        self,
        module: nn.Module,
        feature_bounds: tuple[float, float],
        candidates: int = 256,
        seed: int = 0,
        rounds: int = 2,
        steps: int = 20,
    ) -> None:
        for name, child in module.named_modules():
            if isinstance(child, _BATCH_NORMS):
                raise TypeError(
                    f"family='autograd' cannot take per-sample gradients through BatchNorm ({name!r}); replace it "
                    "with GroupNorm or LayerNorm (opacus.validators.ModuleValidator.fix does this)."
                )
        self.twin = copy.deepcopy(module).eval()
        self.names = list(trainable_parameters(self.twin))
        self.feature_bounds, self.candidate_count, self.seed = feature_bounds, candidates, seed
        self.rounds, self.steps = rounds, steps
        self.candidates: Tensor | None = None

    def prepare(self, module: nn.Module, inputs: Tensor) -> None:
        if not inputs.is_floating_point():
            raise TypeError(f"family='autograd' needs float inputs to differentiate, got {inputs.dtype}.")
        with torch.no_grad():
            self.num_classes = int(self.twin(inputs[:1]).shape[-1])
        self.candidates = box_candidates(self.candidate_count, tuple(inputs.shape[1:]), self.feature_bounds, self.seed)

    def _parameters_at(self, theta: Tensor) -> dict[str, Tensor]:
        """The twin's trainable parameters set to ``theta`` (flat, as :func:`flat_parameters`), by name."""
        parameters = trainable_parameters(self.twin)
        with torch.no_grad():
            vector_to_parameters(theta.detach(), parameters.values())
        return {name: p.detach() for name, p in parameters.items()}

    def gradients(self, theta: Tensor, inputs: Tensor, labels: Tensor) -> Tensor:
        per_sample, _ = per_sample_gradients(self.twin, self._parameters_at(theta), {}, inputs, labels)
        return torch.cat([per_sample[name].reshape(len(inputs), -1) for name in self.names], dim=1)

    def construct(self, theta, member_sum, inputs, labels, feature_bounds, clip_norm, direction=None):
        new_inputs, new_labels = synthesize_by_search(
            partial(self.gradients, theta),
            member_sum if direction is None else member_sum + direction,
            inputs.to(theta.dtype),
            labels,
            self.num_classes,
            feature_bounds,
            clip_norm,
            self.rounds,
            self.steps,
        )
        return new_inputs.to(inputs.dtype), new_labels

    def member_bound(self, theta, feature_bounds, clip_norm):
        """Estimated: the largest clipped gradient norm over the random candidates × every label (≤ the true B)."""
        with torch.no_grad():
            atoms = label_atoms(partial(self.gradients, theta), self.candidates, self.num_classes, clip_norm)
        return float(atoms.norm(dim=1).max())


def box_candidates(count: int, shape: tuple[int, ...], feature_bounds: tuple[float, float], seed: int) -> Tensor:
    """``count`` points uniform in the box, plus its corners when the inputs have at most 10 entries."""
    low, high = feature_bounds
    generator = torch.Generator().manual_seed(seed)
    points = low + (high - low) * torch.rand(count, *shape, generator=generator)
    size = int(torch.Size(shape).numel())
    if size > 10:
        return points
    corners = torch.cartesian_prod(*[torch.tensor([low, high])] * size).reshape(-1, *shape)
    return torch.cat([corners, points])


def make_family(
    family: str,
    module: nn.Module,
    feature_bounds: tuple[float, float],
    candidates: int,
    seed: int,
    refine_steps: int,
    search_rounds: int,
    search_steps: int,
) -> GradientFamily:
    """The family for ``module``: ``"linear"`` if asked for (or, with ``"auto"``, if its structure is linear).

    Call at fit setup: the ``"autograd"`` family copies the module, which must happen before DP-SGD hooks it.
    """
    layer = _linear_layer(module)
    if family == "linear" and layer is None:
        found = sorted(
            {type(m).__name__ for m in module.modules() if any(p.requires_grad for p in m.parameters(recurse=False))}
        )
        raise TypeError(
            "family='linear' needs a model whose only trainable parameters are one nn.Linear's weight and bias "
            f"(logits W·flatten(x) + b); this model trains parameters in {found}. Use family='autograd'."
        )
    if layer is not None and family != "autograd":
        points = box_candidates(candidates, (layer.in_features,), feature_bounds, seed)
        return LinearSoftmax(layer, points, refine_steps)
    return AutogradModel(module, feature_bounds, min(candidates, 256), seed, search_rounds, search_steps)
