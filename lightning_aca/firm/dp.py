"""``DPSGD``: train any LightningModule with DP-SGD through Opacus, as a drop-in callback.

Abadi et al. 2016 (DP-SGD: per-example clipping to norm C, Gaussian noise σ·C, privacy
accounting), as used against collectives by Solanki, Bhange, Aïvodji, Creager, "Crowding Out The
Noise: Algorithmic Collective Action Under Differential Privacy", arXiv 2505.05707 (2025).
Opacus does all the work: ``PrivacyEngine.make_private`` with ``wrap_model=False`` attaches
per-sample-gradient hooks to the user's module in place, wraps its optimizer in a ``DPOptimizer``
and its training loader in a Poisson-sampling ``DPDataLoader``; ``get_noise_multiplier``
calibrates σ to a budget; the engine's accountant gives ε. This callback only plugs those parts
into Lightning.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import lightning as L
import torch
from torch import nn
from torch.optim import Optimizer
from typing_extensions import override

from lightning_aca.patching import PatchingCallback
from lightning_aca.validation import flag, non_negative_real, one_of, positive_int, positive_real, real

_ACCOUNTANTS = ("rdp", "prv", "gdp")
_GRAD_SAMPLE_MODES = ("hooks", "functorch")
# What Opacus leaves on layers and parameters beyond what GradSampleHooks.cleanup removes: a step
# interrupted between forward and backward keeps the layers' activations, and DPOptimizer gives
# every parameter a summed_grad.
_OPACUS_ATTRIBUTES = ("activations", "max_batch_len", "summed_grad")


class DPSGD(PatchingCallback):
    """Make an unmodified LightningModule, its optimizer and its training loader private.

    Give ``noise_multiplier`` (σ) or ``target_epsilon``. With ``target_epsilon``, σ is calibrated
    (by Opacus) for the optimizer steps the Trainer takes: ``max_epochs`` epochs of the training
    loader's batches (as ``limit_train_batches`` limits them), at most ``max_steps``; so ε at the
    Trainer's end is at most ``target_epsilon``, and within 0.01 of it (Opacus's calibration
    tolerance). Logs ``aca/epsilon`` (ε spent so far, at δ) at the end of every training epoch.

    The constructor's arguments are the callback's settings and never change. What a fit computes
    is kept apart: :attr:`epsilon` (ε spent, the latest value, also after a run that ``max_steps``
    ends mid-epoch), :attr:`noise_multiplier_used` (σ as given or calibrated), :attr:`delta_used`
    (δ as given or 1/n), :attr:`sample_rate` (q), :attr:`steps` and :attr:`history` (the
    accountant's ``(σ, q, steps)`` entries). All of it is saved in checkpoints and read back on
    resume, so a resumed run's ε counts the steps taken before it; :meth:`record_fields` gives it
    for a run's record.

    The LR schedulers ``configure_optimizers`` returns (list or dict form) are moved onto the
    private optimizer, which shares the user's optimizer's ``param_groups``, so they schedule as
    without DP-SGD.

    Args:
        noise_multiplier: σ, the noise standard deviation in units of ``max_grad_norm``.
        target_epsilon: the privacy budget ε to calibrate σ for (instead of ``noise_multiplier``).
        delta: δ; default 1/n for n training points.
        max_grad_norm: C, the per-example clipping norm.
        epochs: with ``target_epsilon`` only, calibrate for this many epochs instead of the
            Trainer's length, e.g. to spend the budget over a run resumed later. Fewer epochs than
            the Trainer runs would overspend the budget and are refused at fit start.
        poisson_sampling: sample batches by Poisson sampling, as DP-SGD's guarantee assumes.
        accountant: ``"rdp"``, ``"prv"`` or ``"gdp"``.
        grad_sample_mode: ``"hooks"`` or ``"functorch"`` (Opacus's per-sample gradient engines).
            Ghost clipping is not offered: it needs the loss computed through Opacus's wrapped
            criterion, which an unmodified module does not do.
        fix_model: replace layers Opacus cannot train privately (BatchNorm → GroupNorm …) with
            ``opacus.validators.ModuleValidator.fix`` before training.
        secure_mode: Opacus's cryptographically secure noise.

    The module, datamodule and schedulers are patched only during fit and restored when it ends
    or fails, Opacus's hooks and per-sample gradients removed.

    Not supported, with a clear error at fit start: gradient accumulation
    (``accumulate_grad_batches > 1``: the accountant assumes one step per Poisson batch),
    several optimizers, more than one device/process, and ``trainer.fit`` without a
    LightningDataModule (the callback substitutes the datamodule's training loader).
    """

    def __init__(
        self,
        noise_multiplier: float | None = None,
        target_epsilon: float | None = None,
        delta: float | None = None,
        max_grad_norm: float = 1.0,
        epochs: int | None = None,
        poisson_sampling: bool = True,
        accountant: str = "rdp",
        grad_sample_mode: str = "hooks",
        fix_model: bool = False,
        secure_mode: bool = False,
    ) -> None:
        super().__init__()
        if (noise_multiplier is None) == (target_epsilon is None):
            raise ValueError("DPSGD needs exactly one of noise_multiplier=σ or target_epsilon=ε.")
        if epochs is not None and target_epsilon is None:
            raise ValueError(
                f"epochs={epochs!r} applies only with target_epsilon=...; noise_multiplier=σ needs no calibration."
            )
        if grad_sample_mode in ("ghost", "ghost_fsdp"):
            raise ValueError(
                f"grad_sample_mode={grad_sample_mode!r} is not offered: ghost clipping needs the loss computed "
                f"through Opacus's criterion. Use one of {_GRAD_SAMPLE_MODES}."
            )
        self.noise_multiplier = (
            None if noise_multiplier is None else non_negative_real("noise_multiplier", noise_multiplier)
        )
        self.target_epsilon = None if target_epsilon is None else positive_real("target_epsilon", target_epsilon)
        self.delta = None if delta is None else real("delta", delta, low=0.0, high=1.0, low_open=True, high_open=True)
        self.max_grad_norm = positive_real("max_grad_norm", max_grad_norm)
        self.epochs = None if epochs is None else positive_int("epochs", epochs)
        self.poisson_sampling = flag("poisson_sampling", poisson_sampling)
        self.accountant = one_of("accountant", accountant, _ACCOUNTANTS)
        self.grad_sample_mode = one_of("grad_sample_mode", grad_sample_mode, _GRAD_SAMPLE_MODES)
        self.fix_model = flag("fix_model", fix_model)
        self.secure_mode = flag("secure_mode", secure_mode)
        self.engine: Any = None
        #: ε spent at :attr:`delta_used` (None before fit)
        self.epsilon: float | None = None
        #: σ the run trains with: ``noise_multiplier``, or the one calibrated for ``target_epsilon`` (None before fit)
        self.noise_multiplier_used: float | None = None
        #: δ of :attr:`epsilon`: ``delta``, or 1/n for n training points (None before fit)
        self.delta_used: float | None = None
        self._sample_rate: float | None = None
        self._private_loader: Any = None
        self._history: list[tuple[float, float, int]] = []

    @property
    @override
    def state_key(self) -> str:
        return self._generate_state_key(
            noise_multiplier=self.noise_multiplier,
            target_epsilon=self.target_epsilon,
            delta=self.delta,
            max_grad_norm=self.max_grad_norm,
            accountant=self.accountant,
        )

    # -- fit start: validate, then patch configure_optimizers and the train loader ------------------
    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        self._check_trainer(trainer)
        self._check_model(pl_module)
        datamodule = trainer.datamodule
        original_configure = pl_module.configure_optimizers
        original_loader = datamodule.train_dataloader

        def configure_optimizers() -> Any:
            return self._make_private(trainer, pl_module, original_configure(), original_loader())

        def train_dataloader() -> Any:
            return self._private_loader

        self.patcher.patch(pl_module, "configure_optimizers", configure_optimizers)
        self.patcher.patch(datamodule, "train_dataloader", train_dataloader)

    def _check_trainer(self, trainer: L.Trainer) -> None:
        if trainer.datamodule is None:
            raise ValueError(
                "DPSGD needs trainer.fit(model, datamodule=...) so it can make the training loader private."
            )
        if trainer.accumulate_grad_batches != 1:
            raise ValueError(
                f"DPSGD does not support accumulate_grad_batches={trainer.accumulate_grad_batches}: the privacy "
                "accountant assumes one optimizer step per Poisson batch. Use a larger batch size instead."
            )
        if trainer.world_size > 1:
            raise ValueError(
                f"DPSGD runs on one device/process (world_size={trainer.world_size}); Opacus's distributed DP-SGD "
                "is not wired in. Use devices=1."
            )

    def _check_model(self, pl_module: L.LightningModule) -> None:
        from opacus.validators import ModuleValidator

        if self.fix_model:
            for name, child in list(pl_module.named_children()):
                if ModuleValidator.validate(child, strict=False):
                    setattr(pl_module, name, ModuleValidator.fix(child))
        check_private_trainable(pl_module, "DPSGD", " or pass DPSGD(fix_model=True)")

    def _make_private(self, trainer: L.Trainer, pl_module: L.LightningModule, config: Any, loader: Any) -> Any:
        from opacus import PrivacyEngine

        optimizer, schedulers, rebuild = _single_optimizer(config)
        limit = trainer.limit_train_batches  # as Lightning limits each epoch's batches
        per_epoch = min(len(loader), limit) if isinstance(limit, int) else int(len(loader) * limit)
        # σ for the whole run from its first step (a resumed run's history is part of it)
        self.noise_multiplier_used, self._sample_rate, self.delta_used = self.resolve(
            len(loader.dataset), len(loader), trainer.max_epochs, trainer.max_steps, per_epoch
        )
        self.engine = PrivacyEngine(accountant=self.accountant, secure_mode=self.secure_mode)
        self.engine.accountant.history = list(self._history)  # steps already taken, when resuming
        left_before = _opacus_attributes(pl_module)
        common = dict(
            module=pl_module,
            optimizer=optimizer,
            data_loader=loader,
            max_grad_norm=self.max_grad_norm,
            poisson_sampling=self.poisson_sampling,
            grad_sample_mode=self.grad_sample_mode,
            wrap_model=False,
        )
        hooks, dp_optimizer, self._private_loader = self.engine.make_private(
            noise_multiplier=self.noise_multiplier_used, **common
        )
        self.patcher.defer(_detach, hooks, pl_module, left_before)
        # Lightning steps the private optimizer; the user's schedulers must follow it. They keep
        # scheduling the same learning rates: the private optimizer shares the param_groups.
        for scheduler in schedulers:
            if getattr(scheduler, "optimizer", None) is optimizer:
                self.patcher.patch(scheduler, "optimizer", dp_optimizer)
        if schedulers:
            _track_step_order(dp_optimizer)
        return rebuild(dp_optimizer)

    def resolve(
        self, n: int, batches: int, max_epochs: int | None, max_steps: int | None = None, per_epoch: int | None = None
    ) -> tuple[float, float, float]:
        """(σ, q, δ) of a run on ``n`` training points served in ``batches`` batches an epoch, as every engine uses them.

        δ is ``delta`` or 1/n; q = 1/``batches``, the rate Opacus's ``make_private`` gives the
        accountant (Poisson sampling or not); σ is ``noise_multiplier``, or calibrated for
        ``target_epsilon`` over the run's steps: ``max_epochs`` epochs of ``per_epoch`` steps
        (default ``batches``; Poisson sampling may give an epoch one batch fewer, so counting the
        loader's is safe), at most ``max_steps``, or ``epochs`` epochs when that is more.
        """
        delta = self.delta if self.delta is not None else 1.0 / n
        sample_rate = 1 / batches
        sigma = self.noise_multiplier
        if self.target_epsilon is not None:
            steps = calibration_steps(
                batches if per_epoch is None else per_epoch, max_epochs, max_steps, self.epochs, self.target_epsilon
            )
            sigma = noise_multiplier_for(self.target_epsilon, delta, sample_rate, steps, self.accountant)
        return float(sigma), sample_rate, delta

    # -- accounting ---------------------------------------------------------------------------------
    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epsilon = float(self.engine.get_epsilon(self.delta_used))
        pl_module.log("aca/epsilon", self.epsilon, on_epoch=True, on_step=False)

    @override
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epsilon = float(self.engine.get_epsilon(self.delta_used))  # also when max_steps ends an epoch early

    @property
    def sample_rate(self) -> float | None:
        """q = 1/len(training loader), the sampling rate Opacus's ``make_private`` gives the accountant.

        Under Poisson sampling each point joins a batch with probability q (expected batch size q·n);
        without it the accountant still counts every step at this rate. None before fit.
        """
        return self._sample_rate

    @property
    def history(self) -> list[tuple[float, float, int]]:
        """The accountant's history: one ``(σ, q, steps)`` entry per stretch of steps at the same σ and q."""
        history = self.engine.accountant.history if self.engine is not None else self._history
        return [(float(sigma), float(q), int(steps)) for sigma, q, steps in history]

    @property
    def steps(self) -> int:
        """Optimizer steps the accountant has counted (those of a resumed run's checkpoint included)."""
        return sum(steps for _, _, steps in self.history)

    def record_fields(self) -> dict[str, Any]:
        """What DP-SGD adds to a run's record, JSON-ready; ``{}`` before fit.

        ``epsilon`` (ε spent), ``noise_multiplier`` (σ as used), ``sample_rate`` (q) and ``steps``
        (optimizer steps) as the accountant counted them, ``delta`` (δ of ε) and ``accountant``.
        """
        history = self.history
        if self.epsilon is None or not history:
            return {}
        sigma, sample_rate, _ = history[-1]
        return privacy_fields(sigma, sample_rate, self.steps, self.delta_used, self.accountant, epsilon=self.epsilon)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {
            "epsilon": self.epsilon,
            "delta": self.delta_used,
            "noise_multiplier": self.noise_multiplier_used,
            "sample_rate": self._sample_rate,
            "history": self.history,
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.engine = None  # a fit after loading accounts from the loaded history
        self.epsilon = state_dict["epsilon"]
        self.delta_used = state_dict["delta"]
        self.noise_multiplier_used = state_dict["noise_multiplier"]
        self._history = [tuple(step) for step in state_dict["history"]]
        self._sample_rate = state_dict.get("sample_rate", self._history[-1][1] if self._history else None)


def calibration_steps(
    per_epoch: int, max_epochs: int | None, max_steps: int | None, epochs: int | None, target_epsilon: float
) -> int:
    """The optimizer steps a target ε is calibrated for: the run's (``max_epochs`` × ``per_epoch``, at most
    ``max_steps``; −1 or ``None`` is no limit), or ``epochs`` × ``per_epoch`` when that is more.

    Fewer planned epochs than the run takes would overspend the budget and are refused.
    """
    runs = [max_epochs * per_epoch] if max_epochs is not None and max_epochs >= 0 else []
    runs += [max_steps] if max_steps is not None and max_steps >= 0 else []
    if not runs:
        raise ValueError(
            "DPSGD(target_epsilon=...) calibrates σ for the Trainer's length, but this Trainer never stops: "
            "set max_epochs or max_steps."
        )
    steps = min(runs)
    if epochs is not None:
        planned = epochs * per_epoch
        if planned < steps:
            raise ValueError(
                f"DPSGD(epochs={epochs}) calibrates σ for {planned} steps, but the Trainer takes {steps} "
                f"(max_epochs={max_epochs}, max_steps={max_steps}, {per_epoch} batches an epoch): ε would end "
                f"above target_epsilon={target_epsilon}. Leave epochs unset to calibrate for the Trainer's "
                "length."
            )
        steps = planned
    return max(steps, 1)  # a run of no steps has nothing to calibrate; zero steps would never converge


@functools.lru_cache(maxsize=256)  # a sweep asks for the same ε many times; each search costs seconds
def noise_multiplier_for(target_epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str) -> float:
    """σ that spends ``target_epsilon`` at ``delta`` after ``steps`` Poisson-sampled steps (Opacus's calibration)."""
    from opacus.accountants.utils import get_noise_multiplier

    return float(
        get_noise_multiplier(
            target_epsilon=target_epsilon,
            target_delta=delta,
            sample_rate=sample_rate,
            steps=steps,
            accountant=accountant,
        )
    )


@functools.lru_cache(maxsize=256)  # the runs of a sweep share (σ, q, steps, δ): one accounting each
def epsilon_spent(noise_multiplier: float, sample_rate: float, steps: int, delta: float, accountant: str) -> float:
    """ε at ``delta`` after ``steps`` Poisson-sampled steps of rate q at noise σ, from an Opacus accountant."""
    from opacus.accountants import create_accountant

    acc = create_accountant(mechanism=accountant)
    if steps:
        acc.history = [(noise_multiplier, sample_rate, steps)]
    return float(acc.get_epsilon(delta))


def privacy_fields(
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    delta: float,
    accountant: str,
    epsilon: float | None = None,
) -> dict[str, Any]:
    """A DP-SGD run's record fields: ε spent after ``steps`` Poisson-sampled steps of rate q at noise σ, and the
    numbers that decide it (σ, q, steps, δ, accountant), so ε can be audited from the record alone.

    ε is ``epsilon`` if given (a callback's accountant), else from an Opacus accountant whose
    history is [(σ, q, steps)].

    Example:
        >>> fields = privacy_fields(1.0, 0.01, 1000, 1e-5, "rdp")
        >>> sorted(fields), round(fields["epsilon"], 2)
        (['accountant', 'delta', 'epsilon', 'noise_multiplier', 'sample_rate', 'steps'], 2.1)
    """
    if epsilon is None:
        epsilon = epsilon_spent(float(noise_multiplier), float(sample_rate), int(steps), float(delta), accountant)
    return {
        "epsilon": float(epsilon),
        "noise_multiplier": float(noise_multiplier),
        "sample_rate": float(sample_rate),
        "steps": int(steps),
        "delta": float(delta),
        "accountant": accountant,
    }


def _opacus_attributes(module: torch.nn.Module) -> set[tuple[int, str]]:
    """The attributes named like Opacus's that the module's layers and parameters hold now."""
    owners = [*module.modules(), *module.parameters()]
    return {(id(owner), name) for owner in owners for name in _OPACUS_ATTRIBUTES if name in vars(owner)}


def _detach(hooks: Any, module: torch.nn.Module, left_before: set[tuple[int, str]]) -> None:
    """Remove Opacus's hooks from the module, and every attribute Opacus added to it since ``left_before``."""
    hooks.cleanup()
    for owner in [*module.modules(), *module.parameters()]:
        for name in _OPACUS_ATTRIBUTES:
            if name in vars(owner) and (id(owner), name) not in left_before:
                delattr(owner, name)


def _single_optimizer(config: Any) -> tuple[Optimizer, list[Any], Callable[[Optimizer], Any]]:
    """The one optimizer in a ``configure_optimizers`` result, its LR schedulers, and how to put a
    replacement optimizer back (Lightning's forms: an optimizer, ``[opt]``, ``[opt], [schedulers]``,
    ``{"optimizer": opt, "lr_scheduler": ...}`` or ``[that dict]``)."""
    if isinstance(config, Optimizer):
        return config, [], lambda new: new
    if isinstance(config, Mapping) and isinstance(config.get("optimizer"), Optimizer):
        return config["optimizer"], _schedulers(config.get("lr_scheduler")), lambda new: {**config, "optimizer": new}
    if isinstance(config, (list, tuple)) and len(config) == 2 and isinstance(config[0], (list, tuple)):
        optimizers, schedulers = config
        if len(optimizers) == 1 and isinstance(optimizers[0], Optimizer):
            return optimizers[0], _schedulers(schedulers), lambda new: ([new], schedulers)
    if isinstance(config, (list, tuple)) and len(config) == 1 and isinstance(config[0], (Optimizer, Mapping)):
        optimizer, schedulers, rebuild = _single_optimizer(config[0])
        return optimizer, schedulers, lambda new: [rebuild(new)]
    raise ValueError(
        "DPSGD supports one optimizer (optionally with LR schedulers); configure_optimizers returned "
        f"{type(config).__name__} with several or none. Train with a single optimizer."
    )


def _schedulers(config: Any) -> list[Any]:
    """The LR schedulers in the scheduler part of a ``configure_optimizers`` result."""
    if config is None:
        return []
    if isinstance(config, (list, tuple)):
        return [scheduler for part in config for scheduler in _schedulers(part)]
    if isinstance(config, Mapping):
        return _schedulers(config.get("scheduler"))
    return [config]


def _track_step_order(dp_optimizer: Any) -> None:
    """Mark the private optimizer's ``step`` as torch marks the step of an optimizer a scheduler is built on.

    A torch LR scheduler wraps its optimizer's ``step`` to check that the optimizer steps before
    the scheduler, and warns that ``step`` was overridden when its optimizer's ``step`` is not
    wrapped, as the private optimizer's is not when the scheduler moves onto it.
    """
    original_step = dp_optimizer.original_optimizer.step
    if not hasattr(original_step, "_wrapped_by_lr_sched") or hasattr(dp_optimizer.step, "_wrapped_by_lr_sched"):
        return
    step = dp_optimizer.step

    @functools.wraps(step)
    def tracked_step(*args: Any, **kwargs: Any) -> Any:
        dp_optimizer._opt_called = True
        return step(*args, **kwargs)

    tracked_step._wrapped_by_lr_sched = True  # type: ignore[attr-defined]
    dp_optimizer.step = tracked_step


def check_private_trainable(module: nn.Module, owner: str, other_fix: str = "") -> None:
    """Raise ``ValueError`` naming every layer of ``module`` that Opacus cannot train privately, and the fix."""
    from opacus.validators import ModuleValidator

    errors = ModuleValidator.validate(module, strict=False)
    if errors:
        listed = "; ".join(str(e) for e in errors)
        raise ValueError(
            f"{owner} cannot train this model privately: {listed}. Fix: replace these layers "
            f"(opacus.validators.ModuleValidator.fix(model) swaps BatchNorm for GroupNorm){other_fix}."
        )
