"""Optimizers and learning-rate schedules for K stacked models, as each model's ``configure_optimizers`` sets them.

SGD with momentum and dampening (Polyak 1964; Nesterov's variant as Sutskever et al. 2013, §2.1,
write it), Adam (Kingma & Ba 2015, Algorithm 1, with L2 weight decay added to the gradient) and
AdamW (Loshchilov & Hutter 2019, Algorithm 2: decoupled decay), each exactly as ``torch.optim``'s
single-tensor implementation runs it, vectorized over models with per-model hyperparameters. The
learning rate of every step is read off a model's own scheduler, stepped as a Lightning Trainer
steps it, into one ``(steps, K)`` table.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from lightning.pytorch.core.optimizer import (
    _configure_optimizers,
    _configure_schedulers_automatic_opt,
    _validate_optimizers_attached,
)
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from lightning.pytorch.utilities.types import LRSchedulerConfig
from torch import Tensor, nn
from torch.optim import SGD, Adam, AdamW, Optimizer
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

Params = dict[str, Tensor]

#: the per-model ``(K,)`` hyperparameters of each kind, as buffers of :class:`StackedOptimizer`.
HYPERPARAMETERS: dict[str, tuple[str, ...]] = {
    "SGD": ("lr", "weight_decay", "momentum", "dampening"),
    "Adam": ("lr", "weight_decay", "beta1", "beta2", "eps"),
    "AdamW": ("lr", "weight_decay", "beta1", "beta2", "eps"),
}
_FIX = "run it with hydra/launcher=basic"


class _UnsupportedError(ValueError):
    """One line naming what ``configure_optimizers`` returns that the stacked engine does not reproduce, and the fix."""

    def __init__(self, what: str) -> None:
        super().__init__(f"model.configure_optimizers returns {what}")


def _read(configured: Any) -> tuple[Optimizer, list[LRSchedulerConfig]]:
    """The optimizer and its scheduler configs, read by Lightning's own parser of ``configure_optimizers`` output.

    Raises:
        _UnsupportedError: the stacked engine cannot reproduce them.
    """
    if configured is None:  # Lightning then trains with no optimizer
        raise _UnsupportedError(f"None: the stacked engine trains one optimizer (SGD, Adam or AdamW); {_FIX}")
    try:
        optimizers, schedulers, monitor = _configure_optimizers(configured)
        if any(isinstance(s.get("scheduler") if isinstance(s, dict) else s, ReduceLROnPlateau) for s in schedulers):
            raise _UnsupportedError(
                f"a ReduceLROnPlateau scheduler: it needs a monitored metric and the stacked engine runs no "
                f"validation loop; use a scheduler that needs none (e.g. StepLR) or {_FIX}"
            )
        copies = [dict(s) if isinstance(s, dict) else s for s in schedulers]  # Lightning's parser writes into a dict
        configs = _configure_schedulers_automatic_opt(copies, monitor)
        _validate_optimizers_attached(optimizers, configs)
    except MisconfigurationException as err:
        raise _UnsupportedError(f"what Lightning cannot train: {str(err).splitlines()[0]}") from err
    if len(optimizers) != 1:
        raise _UnsupportedError(f"{len(optimizers)} optimizers: the stacked engine trains one optimizer; {_FIX}")
    optimizer, name = optimizers[0], type(optimizers[0]).__name__
    if type(optimizer) not in (SGD, Adam, AdamW):
        raise _UnsupportedError(f"{name}: the stacked engine runs SGD, Adam and AdamW; use one of them or {_FIX}")
    groups = [{key: value for key, value in g.items() if key != "params"} for g in optimizer.param_groups]
    if any(repr(g) != repr(groups[0]) for g in groups[1:]):
        raise _UnsupportedError(
            f"{name} with {len(groups)} differing param groups: the stacked engine runs one; {_FIX}"
        )
    for key in ("amsgrad", "maximize"):
        if groups[0].get(key):
            raise _UnsupportedError(f"{name}({key}=True): the stacked engine does not run it; drop it or {_FIX}")
    if groups[0].get("nesterov") and (groups[0]["momentum"] <= 0 or groups[0]["dampening"] != 0):
        raise _UnsupportedError("SGD(nesterov=True) without momentum > 0 and dampening=0, which torch refuses")
    for scheduler in (s for config in configs for s in _nested(config.scheduler)):
        if not isinstance(scheduler, LRScheduler):
            raise _UnsupportedError(f"the scheduler {type(scheduler).__name__}, not a torch LRScheduler; {_FIX}")
        if getattr(scheduler, "cycle_momentum", False):
            raise _UnsupportedError(
                f"{type(scheduler).__name__}(cycle_momentum=True): the stacked engine schedules the "
                f"learning rate only; pass cycle_momentum=False or {_FIX}"
            )
    return optimizer, configs


def _nested(scheduler: Any) -> Iterator[Any]:
    """A scheduler and those it runs (``SequentialLR``, ``ChainedScheduler``)."""
    yield scheduler
    for child in getattr(scheduler, "_schedulers", ()):
        yield from _nested(child)


def _parsed(configured: Any, k: int) -> tuple[Optimizer, list[LRSchedulerConfig]]:
    try:
        return _read(configured)
    except _UnsupportedError as err:
        raise ValueError(f"model {k}: {err}") from None


def optimizer_reason(configured: Any) -> str | None:
    """``None`` if the stacked engine reproduces what ``configure_optimizers`` returned, else one line saying why not.

    Reproduced: one ``SGD``, ``Adam`` or ``AdamW`` (one set of hyperparameters, no ``amsgrad``,
    no ``maximize``) with any number of torch ``LRScheduler`` s that need no metric, in any form
    Lightning accepts.

    Example:
        >>> net = torch.nn.Linear(2, 1)
        >>> sgd = torch.optim.SGD(net.parameters(), lr=0.1)
        >>> optimizer_reason({"optimizer": sgd, "lr_scheduler": torch.optim.lr_scheduler.StepLR(sgd, 10)}) is None
        True
        >>> optimizer_reason(torch.optim.RMSprop(net.parameters()))
        'model.configure_optimizers returns RMSprop: the stacked engine runs SGD, Adam and AdamW; use one of them or run it with hydra/launcher=basic'
    """
    try:
        _read(configured)
    except _UnsupportedError as err:
        return str(err)
    return None


class StackedOptimizer(nn.Module):
    """``torch.optim.SGD``, ``Adam`` or ``AdamW`` over K stacked models, each with its own hyperparameters.

    Hyperparameters are ``(K,)`` float64 buffers (:data:`HYPERPARAMETERS`), the state (momentum buffers,
    Adam's moments, the step count) buffers too, so ``.to(device)`` moves them and ``state_dict``
    resumes them. :meth:`step` reads no tensor on the host and branches on none (CUDA-graph safe).

    Example:
        >>> params = {"w": torch.zeros(2, 3)}
        >>> sgd = StackedOptimizer("SGD", params, lr=[0.1, 1.0], weight_decay=[0.0, 0.0], momentum=[0.0, 0.0], dampening=[0.0, 0.0])
        >>> sgd.step(params, {"w": torch.ones(2, 3)}, sgd.lr)
        >>> params["w"]
        tensor([[-0.1000, -0.1000, -0.1000],
                [-1.0000, -1.0000, -1.0000]])
    """

    def __init__(self, kind: str, params: Params, nesterov: bool = False, **hyperparameters: Any) -> None:
        super().__init__()
        if kind not in HYPERPARAMETERS:
            raise ValueError(f"kind={kind!r}: one of {sorted(HYPERPARAMETERS)}")
        if set(hyperparameters) != set(HYPERPARAMETERS[kind]):
            raise ValueError(f"{kind} takes the hyperparameters {HYPERPARAMETERS[kind]}, got {tuple(hyperparameters)}")
        self.kind, self.nesterov, self._names = kind, bool(nesterov), list(params)
        device = next(iter(params.values())).device
        for key, value in hyperparameters.items():
            self.register_buffer(key, torch.as_tensor(value, dtype=torch.float64, device=device).reshape(-1))
        self.register_buffer("steps", torch.zeros((), dtype=torch.float64, device=device))
        if kind != "SGD":
            slots = ("exp_avg", "exp_avg_sq")
        else:  # torch keeps no momentum buffer without momentum
            slots = ("momentum_buffer",) if bool((self.momentum != 0).any()) else ()
        for i, name in enumerate(self._names):
            for slot in slots:
                self.register_buffer(f"{slot}_{i}", torch.zeros_like(params[name]))

    @classmethod
    def from_configured(cls, configured: Sequence[Any], params: Params) -> StackedOptimizer:
        """The optimizer of K models, model k's read from ``configured[k]``, its ``configure_optimizers()`` output.

        Raises:
            ValueError: a model's optimizer is not reproduced (:func:`optimizer_reason`), does not
                hold as many parameter tensors as ``params``, or the kind or ``nesterov`` differ over models.
        """
        settings = []
        for k, one in enumerate(configured):
            optimizer, _ = _parsed(one, k)
            held = sum(len(g["params"]) for g in optimizer.param_groups)
            if held != len(params):
                raise ValueError(
                    f"model {k}'s optimizer holds {held} parameter tensors, the stacked model {len(params)}"
                )
            group = optimizer.param_groups[0]
            values = {key: group[key] for key in ("lr", "weight_decay", "momentum", "dampening", "eps") if key in group}
            if "betas" in group:
                values["beta1"], values["beta2"] = group["betas"]
            kind = "AdamW" if group.get("decoupled_weight_decay") else type(optimizer).__name__
            settings.append({"kind": kind, "nesterov": bool(group.get("nesterov")), **values})
        for key in ("kind", "nesterov"):
            if len({s[key] for s in settings}) > 1:
                raise ValueError(f"models differ in {key} ({[s[key] for s in settings]}): stack only models that agree")
        kind = settings[0]["kind"]
        hyperparameters = {key: [float(s[key]) for s in settings] for key in HYPERPARAMETERS[kind]}
        return cls(kind, params, nesterov=settings[0]["nesterov"], **hyperparameters)

    def _coefficients(self, lr: Tensor) -> dict[str, Tensor]:
        """This step's ``(K,)`` numbers, in float64 as ``torch.optim`` computes them from Python floats."""
        lr = lr.to(torch.float64)
        if self.kind == "SGD":
            return {
                "lr": lr,
                "weight_decay": self.weight_decay,
                "momentum": self.momentum,
                "undamped": 1 - self.dampening,
            }
        return {
            "decay": 1 - lr * self.weight_decay,
            "weight_decay": self.weight_decay,
            "new_mean": 1 - self.beta1,
            "beta2": self.beta2,
            "new_square": 1 - self.beta2,
            "step_size": lr / (1 - self.beta1**self.steps),
            "bias2_sqrt": (1 - self.beta2**self.steps).sqrt(),
            "eps": self.eps,
        }

    @torch.no_grad()
    def step(self, params: Params, grads: Params, lr: Tensor) -> None:
        """Update ``params`` ``{name: (K, ...)}`` in place by ``grads`` at the learning rates ``lr`` ``(K,)``."""
        self.steps.add_(1)
        dtype = next(iter(params.values())).dtype
        c = {key: value.to(dtype) for key, value in self._coefficients(lr).items()}
        for i, name in enumerate(self._names):
            p, g = params[name], grads[name]
            shape = (-1,) + (1,) * (p.dim() - 1)  # a (K,) value per model, broadcast over its tensor
            at = {key: value.view(shape) for key, value in c.items()}
            if self.kind == "AdamW":
                p.mul_(at["decay"])
            else:
                g = g + at["weight_decay"] * p
            if self.kind == "SGD":
                if hasattr(self, f"momentum_buffer_{i}"):
                    buf, m = getattr(self, f"momentum_buffer_{i}"), at["momentum"]
                    # the first step starts the buffer at the gradient itself, without dampening
                    buf.copy_(torch.where(self.steps == 1, g, buf * m + at["undamped"] * g))
                    g = torch.where(m != 0, g + m * buf if self.nesterov else buf, g)
                p.sub_(at["lr"] * g)
            else:
                exp_avg, exp_avg_sq = getattr(self, f"exp_avg_{i}"), getattr(self, f"exp_avg_sq_{i}")
                exp_avg.lerp_(g, at["new_mean"])
                exp_avg_sq.mul_(at["beta2"]).addcmul_(at["new_square"] * g, g)
                denom = (exp_avg_sq.sqrt() / at["bias2_sqrt"]).add_(at["eps"])
                p.sub_(at["step_size"] * (exp_avg / denom))


def lr_schedule(configured: Sequence[Any], steps_per_epoch: int, epochs: int) -> Tensor:
    """``(epochs · steps_per_epoch, K)``: the learning rate model k's optimizer uses at each step under a Trainer.

    As ``lightning``'s training loop steps schedulers (``_update_learning_rates``): after optimizer
    step ``batch_idx`` of an epoch, those of interval ``"step"`` with ``(batch_idx + 1) % frequency == 0``,
    then, after the epoch's last step, those of interval ``"epoch"`` with ``(epoch + 1) % frequency == 0``.
    Each model's optimizer and schedulers are deep-copied together (sharing the parameters) and the
    copies stepped: the models' own optimizers and schedulers are left unchanged.

    Example:
        >>> sgd = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1)
        >>> halving = torch.optim.lr_scheduler.StepLR(sgd, step_size=1, gamma=0.5)
        >>> lr_schedule([{"optimizer": sgd, "lr_scheduler": halving}], steps_per_epoch=2, epochs=3)[:, 0]
        tensor([0.1000, 0.1000, 0.0500, 0.0500, 0.0250, 0.0250])
        >>> sgd.param_groups[0]["lr"]
        0.1
    """
    if steps_per_epoch < 1 or epochs < 0:
        raise ValueError(f"steps_per_epoch={steps_per_epoch}, epochs={epochs}: need steps_per_epoch >= 1, epochs >= 0")
    table = torch.empty(epochs * steps_per_epoch, len(configured))
    for k, one in enumerate(configured):
        optimizer, configs = _parsed(one, k)
        shared = {id(p): p for g in optimizer.param_groups for p in g["params"]}
        optimizer, configs = copy.deepcopy((optimizer, configs), memo=shared)
        with warnings.catch_warnings():  # torch's warnings that no optimizer step came before a scheduler step
            warnings.filterwarnings("ignore", ".*`optimizer.step\\(\\)`", UserWarning)
            for epoch in range(epochs):
                for batch in range(steps_per_epoch):
                    table[epoch * steps_per_epoch + batch, k] = float(optimizer.param_groups[0]["lr"])
                    due = [c for c in configs if c.interval == "step" and (batch + 1) % c.frequency == 0]
                    if batch + 1 == steps_per_epoch:
                        due += [c for c in configs if c.interval == "epoch" and (epoch + 1) % c.frequency == 0]
                    for config in due:
                        config.scheduler.step()
    return table
