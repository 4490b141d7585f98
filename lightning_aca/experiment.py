"""The run plan: one composed ``aca-run`` config turned into the run's objects, once, for every engine.

A run of Hardt et al. 2023 (§2–3) is a seed, a firm's model and learning algorithm, and one or more
collectives (Karan et al. 2025) acting on a training set. :class:`RunPlan` builds these from a
config in one seeded order — validation, ``seed_everything(seed)``, the model (so its initial
weights depend on the seed alone), the collectives (always a list: one collective is a list of
one), the firm's and the collective's callbacks — and knows the rest of the run's contract: its
data (with the seeded batch order of :mod:`lightning_aca.data.sampling`), its metrics callback, its
loggers and its record, or its failed record when training left the loss or weights non-finite
(:meth:`RunPlan.failed`: such a run is never recorded as a result). The standard engine (``aca-run``, one Lightning Trainer per run) and the
stacked engine (:mod:`lightning_aca.stacked`) both build from it, so a rule written here holds for
both.
"""

from __future__ import annotations

import functools
import json
import logging
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from lightning_aca.collective.collectives import Collective
from lightning_aca.runs.records import collective_entry, failed_record, make_record
from lightning_aca.runs.run_info import multirun_dir
from lightning_aca.validation import non_negative_int, positive_int

__all__ = ["ConfigError", "RunPlan", "close_loggers", "config_collectives", "quiet", "run_summary", "validate"]


class ConfigError(ValueError):
    """A configuration value that cannot run; the message names the key and the fix."""


def _missing_keys(node: DictConfig | ListConfig, prefix: str = "") -> Iterator[str]:
    """Dotted keys whose value is ``???``, without resolving interpolations (which may point at them)."""
    keys = node.keys() if isinstance(node, DictConfig) else range(len(node))
    for key in keys:
        path = f"{prefix}[{key}]" if isinstance(node, ListConfig) else f"{prefix}.{key}" if prefix else str(key)
        if OmegaConf.is_missing(node, key):
            yield path
        elif not OmegaConf.is_interpolation(node, key) and isinstance(node[key], (DictConfig, ListConfig)):
            yield from _missing_keys(node[key], path)


def validate(cfg: DictConfig) -> None:
    """Fail fast, before any training, on values no constructor checks.

    ``trainer.max_epochs`` (Lightning takes −1 as "no limit") and ``seed`` (Lightning's
    ``seed_everything`` truncates floats) are checked here, and that ``collective`` holds either
    ``strategy`` and ``alpha`` (one collective) or ``collectives`` (several); the collectives' α and
    seed are checked by :class:`~lightning_aca.data.datamodule.CollectiveDataModule`. Keys a
    config marks ``???`` (e.g. ``data=csv``'s file) must be given.
    """
    missing = list(_missing_keys(cfg))
    if missing:
        raise ConfigError(
            f"{', '.join(missing)} must be set (??? in the config): add {' '.join(f'{key}=...' for key in missing)} "
            "to the command line; the config file's comments say what each takes."
        )
    for key, check in (("trainer.max_epochs", positive_int), ("seed", non_negative_int)):
        try:
            check(key, OmegaConf.select(cfg, key))
        except (TypeError, ValueError) as error:
            raise ConfigError(str(error)) from None
    _check_collective(cfg.get("collective"))


def _check_collective(node: Any) -> None:
    """``collective`` has ``strategy`` + ``alpha`` or ``collectives`` (each entry with both), never both forms."""
    if not isinstance(node, DictConfig) or "collectives" not in node:
        return
    single = [key for key in ("alpha", "strategy") if key in node]
    if single:
        raise ConfigError(
            f"collective has both {' and '.join(f'collective.{k}' for k in single)} (one collective) and "
            "collective.collectives (several); give either, e.g. drop collective.alpha and set "
            "collective.collectives.<name>.alpha."
        )
    entries = node.collectives
    if not isinstance(entries, DictConfig) or len(entries) < 2:
        raise ConfigError(
            "collective.collectives must map two or more collectives' names to their alpha and strategy "
            "(see conf/collective/two_collectives.yaml); one collective is collective.strategy + collective.alpha "
            "(e.g. collective=signal_planting)."
        )
    for name, entry in entries.items():
        missing = [key for key in ("alpha", "strategy") if not isinstance(entry, DictConfig) or key not in entry]
        if missing:
            raise ConfigError(
                f"collective.collectives.{name} needs {' and '.join(missing)}: set "
                + " ".join(f"collective.collectives.{name}.{key}=..." for key in missing)
                + "."
            )


def config_collectives(cfg: DictConfig) -> list[Collective]:
    """The run's collectives, always a list: ``collective.strategy`` + ``alpha`` is a list of one.

    Karan et al. 2025: each entry of ``collective.collectives`` is one collective, named by its key
    (order as written), with its own ``alpha`` and ``strategy`` (and ``max_alpha``, the largest α
    it takes in the sweep, which sizes the disjoint pools); strategies are instantiated in that
    order. A malformed entry is a :class:`ConfigError` naming the key.
    """
    from hydra.utils import instantiate

    from lightning_aca.collective.collectives import given_collectives

    node = cfg.collective
    _check_collective(node)
    if "collectives" not in node:
        try:
            return given_collectives("collective", instantiate(node.strategy), node.alpha, None)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"collective: {err}") from None
    out = []
    for name, entry in node.collectives.items():
        try:
            out.append(Collective(str(name), instantiate(entry.strategy), entry.alpha, entry.get("max_alpha")))
        except (TypeError, ValueError) as err:
            raise ConfigError(f"collective.collectives.{name}: {err}") from None
    return out


#: what a ``data`` group's datamodule knows and the model, the metrics and Group DRO need
DATA_FACTS = ("input_shape", "num_classes", "num_groups")


def _data_error(err: BaseException) -> ConfigError:
    return ConfigError(f"data.datamodule: {err}".splitlines()[0])


def _build_datamodule(node: DictConfig) -> Any:
    """The ``data`` group's datamodule; bad arguments (a missing file, an unknown key) are a :class:`ConfigError`."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        return instantiate(node)
    except InstantiationException as err:
        if isinstance(err.__cause__, (ValueError, TypeError, OSError)):
            raise _data_error(err.__cause__) from err
        raise


def cache_key(node: Any) -> str:
    """A config node, resolved, as canonical JSON: the key of a cache of what is built from it
    (``OmegaConf.create(json.loads(key))`` gives the node back)."""
    return json.dumps(OmegaConf.to_container(node, resolve=True), sort_keys=True, default=str)


@functools.lru_cache(maxsize=16)
def _datamodule_facts(datamodule_key: str) -> dict[str, Any]:
    """The :data:`DATA_FACTS` of a datamodule built to read them and then let go, so no data set stays in memory.

    ``input_shape`` is read first: a table's width reads the file, which also gives its class count.
    """
    datamodule = _build_datamodule(OmegaConf.create(json.loads(datamodule_key)))
    try:
        return {key: getattr(datamodule, key, None) for key in DATA_FACTS}
    except (ValueError, TypeError, OSError) as err:
        raise _data_error(err) from err


def data_fact(data: DictConfig, key: str) -> Any:
    """``num_classes``, ``input_shape`` or ``num_groups`` of a ``data`` group: given there, else its datamodule's.

    A datamodule holds these (``DigitsDataModule().num_classes`` is 10), so a data config does not
    repeat them; a config that gives one (e.g. a text file's ``data.num_classes=3``) overrides it.
    ``None`` where the datamodule has none (``num_groups`` of data without groups). Configs read
    them as ``${aca_data:num_classes}``.
    """
    if key not in DATA_FACTS:
        raise ConfigError(f"aca_data takes one of {DATA_FACTS}, got {key!r}.")
    if key in data:
        return data[key]
    value = _datamodule_facts(cache_key(data.datamodule))[key]
    return list(value) if isinstance(value, tuple) else value


OmegaConf.register_new_resolver("aca_data", lambda key, _root_: data_fact(_root_.data, key), replace=True)
OmegaConf.register_new_resolver("aca_multirun_dir", multirun_dir, replace=True)


def quiet() -> None:
    """Silence banners and advice (not errors) for sweeps: one summary line per run remains."""
    import lightning  # noqa: F401  (its import sets its loggers' levels: set them after)

    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module=r"lightning(\..*)?")
    warnings.filterwarnings(
        "ignore", message=r".*(does not have many workers|Secure RNG turned off|Full backward hook).*"
    )


def uniqueness(inputs: Sequence[Any], strategy: Any) -> float | None:
    """ξ̂ of ``strategy``'s signal on up to 5,000 clean training inputs (Hardt et al. 2023, §3.1); None without one.

    Texts count when they already carry the signal's token pattern (``signal.carries``).
    """
    import torch

    from lightning_aca.theory import estimate_uniqueness

    signal = strategy.signal
    if signal is None:
        return None
    inputs = list(inputs[: min(len(inputs), 5000)])
    if all(isinstance(x, str) for x in inputs):
        return estimate_uniqueness(inputs, signal) if hasattr(signal, "carries") else None
    try:
        return estimate_uniqueness(torch.stack(inputs), signal)
    except (TypeError, RuntimeError):  # ragged shapes
        return None


def overrides_of(cfg: DictConfig) -> list[str]:
    """The run's command-line overrides: Hydra's, or the ``hydra.overrides.task`` a stacked job's config carries."""
    from hydra.core.hydra_config import HydraConfig

    task = OmegaConf.select(cfg, "hydra.overrides.task", default=None)
    if task is not None:
        return [str(o) for o in task]
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def run_summary(record: dict[str, Any]) -> str:
    """A run's one-line result (every engine prints it): α, S and its baseline (per collective, when several), seed, clean accuracy."""
    from lightning_aca.runs.keys import metric_key

    nan = float("nan")
    results = record["metrics"]

    def measured(name: str | None = None) -> str:
        success = results.get(metric_key("success", name), nan)
        baseline = results.get(metric_key("baseline_success", name), nan)
        return f"S={success:.3f} baseline={baseline:.3f}"

    clean = f"clean_acc={results.get('aca/clean_acc', nan):.3f}"
    if not record.get("collectives"):
        return f"alpha={record['alpha']:g} seed={record['seed']} {measured()} {clean}"
    each = "; ".join(f"{c['name']}: alpha={c['alpha']:g} {measured(c['name'])}" for c in record["collectives"])
    return f"seed={record['seed']} {each}; {clean}"


def close_loggers(loggers: list[Any]) -> None:
    """Finish loggers so the next run of an in-process sweep starts its own W&B run."""
    from lightning.pytorch.loggers import WandbLogger

    for logger in loggers:
        logger.finalize("success")
        if isinstance(logger, WandbLogger):
            logger.experiment.finish()


def _started_or_offline(name: str, logger_cfg: DictConfig, logger: Any) -> Any:
    """``logger`` with its W&B run started if it logs online, else an offline twin when W&B cannot be reached."""
    from lightning.pytorch.loggers import WandbLogger

    if not isinstance(logger, WandbLogger) or logger_cfg.get("offline", False):
        return logger
    import wandb
    from hydra.utils import instantiate

    try:
        logger.experiment  # noqa: B018  (wandb.init, bounded by settings.init_timeout)
    except wandb.errors.Error as err:
        reason = str(err).splitlines()[0]
        logging.getLogger(__name__).warning(
            f"logger.{name}: W&B run could not start ({reason}); logging offline instead "
            f"(upload later with `wandb sync`); pass logger.{name}.offline=true to skip the wait."
        )
        return instantiate(logger_cfg, offline=True, mode="offline")  # the env var WANDB_MODE is read once
    return logger


@dataclass
class RunPlan:
    """The objects of one run, built from its config in one seeded order (see the module docstring).

    Attributes:
        cfg: the composed config.
        config: the resolved config as the record stores it.
        model: the firm's LightningModule, initialised right after ``seed_everything(seed)``.
        collectives: the collectives, in order (a list of one for one collective).
        firm_callbacks: the firm's learning algorithm (``firm.callbacks``: DPSGD, GroupDRO, …).
        collective_callbacks: online strategies acting on the model each step (``collective.callbacks``).
    """

    cfg: DictConfig
    config: dict[str, Any]
    model: Any
    collectives: list[Collective]
    firm_callbacks: list[Any] = field(default_factory=list)
    collective_callbacks: list[Any] = field(default_factory=list)

    @classmethod
    def build(cls, cfg: DictConfig, config: dict[str, Any] | None = None) -> RunPlan:
        """Validate ``cfg`` and build the run's objects: seed, model, collectives, callbacks, in this order."""
        import lightning as L
        from hydra.utils import instantiate

        validate(cfg)
        if cfg.get("torch_threads"):
            import torch

            torch.set_num_threads(cfg.torch_threads)
        L.seed_everything(cfg.seed, verbose=False)
        model = instantiate(cfg.model)
        collectives = config_collectives(cfg)
        return cls(
            cfg=cfg,
            config=OmegaConf.to_container(cfg, resolve=True) if config is None else config,
            model=model,
            collectives=collectives,
            firm_callbacks=[instantiate(c) for c in (cfg.firm.get("callbacks") or {}).values()],
            collective_callbacks=[instantiate(c) for c in (cfg.collective.get("callbacks") or {}).values()],
        )

    @property
    def names(self) -> list[str | None]:
        """Each collective's name in metric keys (:func:`~lightning_aca.runs.keys.key_names`)."""
        from lightning_aca.runs.keys import key_names

        return key_names([c.name for c in self.collectives])

    def datamodule(self) -> Any:
        """The run's :class:`~lightning_aca.data.datamodule.CollectiveDataModule`: its collectives on the
        ``data`` group's datamodule, shuffled by the run's seed."""
        from lightning_aca.data.datamodule import CollectiveDataModule

        cfg = self.cfg
        return CollectiveDataModule(
            collectives=self.collectives,
            seed=cfg.collective.seed,
            shuffle_seed=cfg.seed,
            datamodule=_build_datamodule(cfg.data.datamodule),
            num_classes=data_fact(cfg.data, "num_classes"),
            return_membership=cfg.collective.get("return_membership", False),
            injection=cfg.collective.get("injection", "auto"),
        )

    def metrics_callback(self) -> Any:
        """The :class:`~lightning_aca.metrics.callback.CollectiveMetrics` of ``metrics`` (S, baseline, clean and group accuracy)."""
        from lightning_aca.metrics.callback import CollectiveMetrics

        return CollectiveMetrics(**self.cfg.metrics, num_groups=data_fact(self.cfg.data, "num_groups"))

    def loggers(self) -> list[Any]:
        """The ``logger`` group's loggers (CSV, W&B offline …); a logger that cannot be built is a :class:`ConfigError`.

        An online W&B logger starts its run here, within ``settings.init_timeout`` seconds; a run that
        cannot start (no network, no API key) logs offline instead, with one warning line.
        """
        from hydra.utils import instantiate
        from omegaconf.errors import OmegaConfBaseException

        loggers = []
        for name, logger_cfg in (self.cfg.get("logger") or {}).items():
            try:
                logger = instantiate(logger_cfg)
            except OmegaConfBaseException as err:
                raise ConfigError(f"logger.{name} cannot be built: {err}".splitlines()[0]) from None
            loggers.append(_started_or_offline(name, logger_cfg, logger))
        return loggers

    def firm_fields(self) -> dict[str, Any]:
        """What the firm's callbacks add to the record (DP-SGD's ε and its accounting, Group DRO's weights …)."""
        fields: dict[str, Any] = {}
        for callback in self.firm_callbacks:
            declared = callback.record_fields() if hasattr(callback, "record_fields") else {}
            clash = sorted(set(fields) & set(declared))
            if clash:
                raise ConfigError(f"firm callbacks both declare the record fields {clash}; keep one of them.")
            fields.update(declared)
        return fields

    def record(
        self,
        *,
        engine: str,
        metrics: dict[str, Any],
        members: Sequence[int],
        xis: Sequence[float | None],
        n_train: int,
        wall_time_s: float,
        firm: dict[str, Any],
        device: dict[str, Any],
    ) -> dict[str, Any]:
        """The run's record (the same schema for every engine): each collective's members and ξ̂, the
        measured metrics, the firm's fields and what trained it."""
        entries = [collective_entry(c, m, xi) for c, m, xi in zip(self.collectives, members, xis, strict=True)]
        return make_record(
            engine=engine,
            overrides=overrides_of(self.cfg),
            config=self.config,
            seed=self.cfg.seed,
            collectives=entries,
            metrics=metrics,
            firm=firm,
            n_train=n_train,
            wall_time_s=wall_time_s,
            **device,
        )

    def failed(
        self, *, engine: str, epoch_losses: Sequence[float], weights: Any, wall_time_s: float
    ) -> dict[str, Any] | None:
        """The run's failed record if its training loss or weights became non-finite, else None.

        ``epoch_losses`` are the mean training losses per epoch and ``weights`` the trained network's
        ``(name, tensor)`` pairs (:func:`~lightning_aca.runs.divergence.non_finite`). The record's
        ``error`` is one line naming the run directory, its overrides and the likely causes.
        """
        from lightning_aca.runs.divergence import non_finite

        reason = non_finite(epoch_losses, weights)
        if reason is None:
            return None
        overrides = overrides_of(self.cfg)
        error = (
            f"the run in {self.cfg.output_dir} ({' '.join(overrides) or 'no overrides'}) gives no result: {reason}; "
            f"likely a nan or inf in the training data, or a learning rate too large (model.lr="
            f"{self.cfg.model.get('lr')}); its record.json marks it failed."
        )
        return failed_record(
            engine=engine,
            overrides=overrides,
            config=self.config,
            seed=self.cfg.seed,
            error=error,
            wall_time_s=wall_time_s,
        )
