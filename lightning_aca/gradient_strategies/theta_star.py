"""θ*, the parameters the collective wants the firm to end at: given directly, from a checkpoint, or by a rule.

Hardt et al. 2023, §4–5: gradient neutralization and gradient control steer the firm's
parameters to θ*. A :class:`ThetaStar` resolves, once, against the firm's model at the step the
collective starts acting, into one tensor per trainable parameter (by name).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lightning_aca.validation import non_negative_int, real

StateSpec = Mapping[str, Tensor] | str | os.PathLike


def trainable_parameters(module: nn.Module) -> dict[str, Tensor]:
    """The module's trainable parameters by name, in registration order."""
    return {name: p for name, p in module.named_parameters() if p.requires_grad}


def _check_state(spec: Any, what: str) -> None:
    """Fail at construction on a state that is neither a mapping nor an existing file."""
    if isinstance(spec, Mapping):
        return
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(f"{what} must be a state dict or a checkpoint path, got {type(spec).__name__}.")
    if not Path(spec).is_file():
        raise ValueError(
            f"{what}={str(spec)!r} is not an existing checkpoint file; give θ* as a state dict, a checkpoint path, "
            "or a rule such as LogitShift(target_class=0, shift=1.0)."
        )


def _load_state(spec: StateSpec, what: str) -> Mapping[str, Any]:
    _check_state(spec, what)
    if isinstance(spec, Mapping):
        return spec
    path = Path(spec)
    # Lightning checkpoints hold pickled hyper-parameters, so weights_only loading would refuse them;
    # load only checkpoints you trust.
    loaded = torch.load(path, map_location="cpu", weights_only=False)
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        return loaded["state_dict"]
    if not isinstance(loaded, Mapping):
        raise ValueError(f"{path} holds a {type(loaded).__name__}, not a state dict or a Lightning checkpoint.")
    return loaded


def _match(state: Mapping[str, Any], module: nn.Module, what: str) -> dict[str, Tensor]:
    """``state``'s tensors for each of the module's trainable parameters, checked by name and shape."""
    params = trainable_parameters(module)
    missing = [name for name in params if name not in state]
    if missing:
        raise ValueError(
            f"{what} lacks the model's parameters {missing} (it has {sorted(state)[:10]}…); "
            "give a state dict of this model (pl_module.state_dict() or a checkpoint of it)."
        )
    out = {}
    for name, p in params.items():
        value = torch.as_tensor(state[name])
        if value.shape != p.shape:
            raise ValueError(f"{what}[{name!r}] has shape {tuple(value.shape)}, the model's has {tuple(p.shape)}.")
        out[name] = value.detach().to(device=p.device, dtype=p.dtype).clone()
    return out


def output_layer(module: nn.Module) -> tuple[str, nn.Linear]:
    """The last registered ``nn.Linear`` with a bias: the layer whose outputs are the logits."""
    found = [(name, m) for name, m in module.named_modules() if isinstance(m, nn.Linear) and m.bias is not None]
    if not found:
        raise ValueError(
            "LogitShift needs the model's output layer to be an nn.Linear with a bias; give θ* as a state dict instead."
        )
    return found[-1]


class ThetaStar(ABC):
    """θ* for :class:`~lightning_aca.gradient_strategies.GradientNeutralization` / :class:`~lightning_aca.gradient_strategies.GradientControl`."""

    @abstractmethod
    def resolve(self, module: nn.Module) -> dict[str, Tensor]:
        """θ* as one tensor per trainable parameter of ``module`` (by name), given its current state."""


class ParameterTarget(ThetaStar):
    """θ* given directly: a state dict of the firm's model, or the path of a checkpoint of it.

    Lightning checkpoints (``trainer.save_checkpoint``) and files of ``torch.save(model.state_dict())``
    both work; only the trainable parameters are read.

    Example:
        >>> model = nn.Linear(2, 2)
        >>> theta = ParameterTarget({"weight": torch.zeros(2, 2), "bias": torch.ones(2)}).resolve(model)
        >>> theta["bias"].tolist()
        [1.0, 1.0]
    """

    def __init__(self, state: StateSpec) -> None:
        _check_state(state, "theta_star")
        self.state = state

    def resolve(self, module: nn.Module) -> dict[str, Tensor]:
        return _match(_load_state(self.state, "theta_star"), module, "theta_star")

    def __repr__(self) -> str:
        shown = f"'{self.state}'" if isinstance(self.state, (str, os.PathLike)) else "<state dict>"
        return f"ParameterTarget({shown})"


class LogitShift(ThetaStar):
    """θ* = a copy of the model whose logit for class y* is raised by ``shift``: a classification goal.

    The output layer (the last ``nn.Linear`` with a bias) gets its bias changed by
    shift·(e_{y*} − 1/K): the logit of y* rises by shift relative to every other class, and the
    biases keep their sum. Adding a constant to every logit leaves the softmax unchanged, and gradient
    descent on cross-entropy never changes the sum of the output biases (their gradient p − e_y sums
    to zero over classes), so this centred shift is the copy SGD can actually reach.

    Args:
        target_class: y*, the class the collective wants predicted more often.
        shift: how much the logit of y* rises (any real; negative lowers it).
        base: the model to copy: ``None`` for the firm's model at the step the collective starts,
            or a state dict / checkpoint path.

    Example:
        >>> model = nn.Linear(2, 4)
        >>> theta = LogitShift(target_class=1, shift=2.0).resolve(model)
        >>> (theta["bias"] - model.bias).detach()
        tensor([-0.5000,  1.5000, -0.5000, -0.5000])
    """

    def __init__(self, target_class: int, shift: float = 1.0, base: StateSpec | None = None) -> None:
        self.target_class = non_negative_int("LogitShift target_class", target_class)
        self.shift = real("LogitShift shift", shift)
        if base is not None:
            _check_state(base, "LogitShift base")
        self.base = base

    def resolve(self, module: nn.Module) -> dict[str, Tensor]:
        if self.base is None:
            theta = {name: p.detach().clone() for name, p in trainable_parameters(module).items()}
        else:
            theta = _match(_load_state(self.base, "LogitShift base"), module, "LogitShift base")
        name, layer = output_layer(module)
        num_classes = layer.out_features
        if self.target_class >= num_classes:
            raise ValueError(
                f"LogitShift target_class={self.target_class} is not a class of the model's {num_classes} outputs."
            )
        key = f"{name}.bias" if name else "bias"
        if key not in theta:
            raise ValueError(f"LogitShift: the output layer's bias {key!r} is not a trainable parameter.")
        change = torch.full_like(theta[key], -self.shift / num_classes)
        change[self.target_class] += self.shift
        theta[key] = theta[key] + change
        return theta

    def __repr__(self) -> str:
        return f"LogitShift(target_class={self.target_class}, shift={self.shift}, base={'current' if self.base is None else 'given'})"


def as_theta_star(spec: ThetaStar | StateSpec) -> ThetaStar:
    """A :class:`ThetaStar` from a ``ThetaStar``, a state dict, or a checkpoint path (anything else is an error)."""
    if isinstance(spec, ThetaStar):
        return spec
    if isinstance(spec, (Mapping, str, os.PathLike)):
        return ParameterTarget(spec)
    raise TypeError(
        "theta_star must be a ThetaStar (e.g. LogitShift(target_class=0, shift=1.0)), a state dict or a checkpoint "
        f"path, got {type(spec).__name__}."
    )
