"""``aca-run``: the Hydra app that trains one firm model on data with a collective.

Composes data, collective, model, firm callbacks, loggers and Trainer from ``conf/`` with
``hydra.utils.instantiate``, trains, tests, and writes one run record (``record.json``)
atomically into the run directory. A run whose record exists is skipped, so a killed sweep
re-run with the same ``hydra.sweep.dir`` resumes where it stopped. After a multirun,
:class:`SweepReport` prints the ``aca-report`` table and plot path for the sweep directory.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback as HydraCallback
from omegaconf import DictConfig, ListConfig, OmegaConf

from lightning_aca.runs.records import RECORD_NAME, collective_entry, finished_record, make_record, write_record
from lightning_aca.runs.run_info import device_info, log_hparams, log_summary, run_hparams, sweep_dir
from lightning_aca.validation import non_negative_int, positive_int

#: longest run directory name kept as is (file systems allow 255 bytes a name)
_LONGEST_DIRNAME = 200


def run_dirname(overrides: str) -> str:
    """The run directory name of a sweep job: its overrides (``hydra.job.override_dirname``), shortened if too long.

    A name over 200 characters becomes its first 183 characters, ``-`` and 16 hex digits of its
    SHA-1, so that a sweep over many long keys (``collective.collectives.first.alpha=...``) still gets
    one directory per override combination, the same on every re-run (resume finds it).

    Example:
        >>> run_dirname("collective.alpha=0.01,seed=1")
        'collective.alpha=0.01,seed=1'
        >>> name = run_dirname("x" * 300)
        >>> len(name), name[-17:]
        (200, '-02fd68253071f895')
    """
    if len(overrides) <= _LONGEST_DIRNAME:
        return overrides
    import hashlib

    digest = hashlib.sha1(overrides.encode()).hexdigest()[:16]
    return f"{overrides[: _LONGEST_DIRNAME - 17]}-{digest}"


OmegaConf.register_new_resolver("aca_dirname", run_dirname, replace=True)


class ConfigError(ValueError):
    """A configuration value that cannot run; the message names the key and the fix."""


def _overrides() -> list[str]:
    if not HydraConfig.initialized():
        return []
    return list(HydraConfig.get().overrides.task)


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


def _quiet() -> None:
    """Silence banners and advice (not errors) for sweeps: one summary line per run remains."""
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module=r"lightning(\..*)?")
    warnings.filterwarnings(
        "ignore", message=r".*(does not have many workers|Secure RNG turned off|Full backward hook).*"
    )


def _uniqueness(dm: Any, strategy: Any = None) -> float | None:
    """ξ̂ of ``strategy``'s signal (default: the datamodule's one strategy) on up to 5,000 clean training inputs.

    None without a signal. Texts count when they already carry the signal's token pattern
    (``signal.carries``).
    """
    import torch

    from lightning_aca.theory import estimate_uniqueness

    signal = (strategy if strategy is not None else dm.strategy).signal
    base = dm.train_dataset.dataset
    if signal is None:
        return None
    inputs = [base[i][0] for i in range(min(len(base), 5000))]
    if all(isinstance(x, str) for x in inputs):
        return estimate_uniqueness(inputs, signal) if hasattr(signal, "carries") else None
    try:
        return estimate_uniqueness(torch.stack(inputs), signal)
    except (TypeError, RuntimeError):  # ragged shapes
        return None


def config_collectives(cfg: DictConfig) -> list[Any] | None:
    """The :class:`~lightning_aca.collective.collectives.Collective` s of ``collective.collectives``, or None for one.

    Karan et al. 2025: each entry is one collective, named by its key (order as written), with its
    own ``alpha`` and ``strategy``; strategies are instantiated in that order (before the data and
    the model, as every engine does, so initial weights agree). A malformed entry is a
    :class:`ConfigError` naming the key.
    """
    from hydra.utils import instantiate

    from lightning_aca.collective.collectives import Collective

    node = cfg.collective
    _check_collective(node)
    if "collectives" not in node:
        return None
    out = []
    for name, entry in node.collectives.items():
        try:
            out.append(Collective(str(name), instantiate(entry.strategy), entry.alpha))
        except (TypeError, ValueError) as err:
            raise ConfigError(f"collective.collectives.{name}: {err}") from None
    return out


def build_datamodule(cfg: DictConfig) -> Any:
    """The run's :class:`~lightning_aca.data.datamodule.CollectiveDataModule` from the ``data`` and ``collective`` groups."""
    from hydra.utils import instantiate

    from lightning_aca.data.datamodule import CollectiveDataModule

    collectives = config_collectives(cfg)
    if collectives is not None:
        given: dict[str, Any] = {"collectives": collectives}
    else:
        node = cfg.collective
        given = {"strategy": instantiate(node.strategy), "alpha": node.alpha}
    return CollectiveDataModule(
        seed=cfg.collective.seed,
        datamodule=instantiate(cfg.data.datamodule),
        num_classes=cfg.data.num_classes,
        return_membership=cfg.collective.get("return_membership", False),
        injection=cfg.collective.get("injection", "auto"),
        **given,
    )


def run_experiment(cfg: DictConfig) -> dict[str, Any]:
    """Train and test one configuration and return (and write) its run record."""
    out_dir = Path(cfg.output_dir)
    config = OmegaConf.to_container(cfg, resolve=True)
    finished = finished_record(out_dir, config)
    if finished is not None:
        print(f"aca-run: skip, record exists: {out_dir / RECORD_NAME}", flush=True)
        return finished
    validate(cfg)
    start = time.perf_counter()
    import lightning as L
    from hydra.utils import instantiate

    from lightning_aca.metrics.callback import CollectiveMetrics

    if cfg.quiet:
        _quiet()
    if cfg.get("torch_threads"):
        import torch

        torch.set_num_threads(cfg.torch_threads)
    L.seed_everything(cfg.seed, verbose=False)
    dm = build_datamodule(cfg)
    model = instantiate(cfg.model)
    metrics = CollectiveMetrics(**cfg.metrics, num_groups=cfg.data.get("num_groups"))
    firm_callbacks = [instantiate(c) for c in cfg.firm.get("callbacks", {}).values()]
    # online strategies (gradient control …) act as callbacks that see the model each step
    collective_callbacks = [instantiate(c) for c in cfg.collective.get("callbacks", {}).values()]
    loggers = [instantiate(c) for c in cfg.logger.values()]
    trainer = instantiate(
        cfg.trainer,
        callbacks=[metrics, *collective_callbacks, *firm_callbacks],
        logger=loggers or False,
        enable_progress_bar=not cfg.quiet,
        enable_model_summary=not cfg.quiet,
        default_root_dir=str(out_dir),
    )
    device = device_info(trainer.strategy.root_device, trainer.num_devices * trainer.num_nodes)
    log_hparams(loggers, run_hparams(config, _overrides(), sweep_dir(cfg), engine="trainer", device=device))
    trainer.fit(model, dm)
    stage = "fit" if not cfg.test else "test"
    if cfg.test:
        trainer.test(model, datamodule=dm, verbose=not cfg.quiet)
    results = metrics.results.get(stage) or metrics.results.get("validate") or metrics.results.get("fit", {})
    for callback in collective_callbacks:  # e.g. aca/param_distance, aca/alpha_star
        results = {**getattr(callback, "results", {}), **results}
    several = len(dm.collectives) > 1
    record = make_record(
        engine="trainer",
        overrides=_overrides(),
        config=config,
        alpha=None if several else dm.alpha,
        seed=cfg.seed,
        strategy=None if several else dm.strategy,
        metrics=results,
        epsilon=next((cb.epsilon for cb in firm_callbacks if hasattr(cb, "epsilon")), None),
        xi=None if several else _uniqueness(dm),
        n_train=len(dm.train_dataset),
        wall_time_s=time.perf_counter() - start,
        collectives=[
            collective_entry(c, len(dm.train_dataset.members_of(c.name)), _uniqueness(dm, c.strategy))
            for c in dm.collectives
        ]
        if several
        else None,
        **device,
    )
    path = write_record(record, out_dir)
    log_summary(loggers, record)
    _close(loggers)
    print(f"aca-run: {run_summary(record, results)} ({record['wall_time_s']:.1f} s) -> {path}", flush=True)
    return record


def run_summary(record: dict[str, Any], results: dict[str, Any]) -> str:
    """A run's one-line result (both engines print it): α, S and its baseline (per collective, when several), seed, clean accuracy."""
    nan = float("nan")

    def measured(suffix: str = "") -> str:
        success, baseline = results.get(f"aca/success{suffix}", nan), results.get(f"aca/baseline_success{suffix}", nan)
        return f"S={success:.3f} baseline={baseline:.3f}"

    clean = f"clean_acc={results.get('aca/clean_acc', nan):.3f}"
    if not record.get("collectives"):
        return f"alpha={record['alpha']:g} seed={record['seed']} {measured()} {clean}"
    each = "; ".join(f"{c['name']}: alpha={c['alpha']:g} {measured('/' + c['name'])}" for c in record["collectives"])
    return f"seed={record['seed']} {each}; {clean}"


def _close(loggers: list[Any]) -> None:
    """Finish loggers so the next run of an in-process sweep starts its own W&B run."""
    from lightning.pytorch.loggers import WandbLogger

    for logger in loggers:
        logger.finalize("success")
        if isinstance(logger, WandbLogger):
            logger.experiment.finish()


def _root_cause(err: BaseException) -> BaseException:
    while err.__cause__ is not None:
        err = err.__cause__
    return err


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def _hydra_main(cfg: DictConfig) -> None:
    try:
        run_experiment(cfg)
    except Exception as err:
        cause = _root_cause(err)
        if isinstance(cause, (ValueError, TypeError, KeyError, ImportError)):
            print(f"aca-run: error: {cause}", file=sys.stderr, flush=True)
            sys.exit(2)
        raise


def main() -> None:
    """Console entry point of ``aca-run``."""
    os.environ.setdefault("HYDRA_FULL_ERROR", "0")
    _hydra_main()


class SweepReport(HydraCallback):
    """Hydra callback: after a multirun, print the ``aca-report`` table for the sweep directory."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from lightning_aca.analysis.report import main as report_main

        report = config.get("report", {})
        level = report.get("success_level", 0.9)
        argv = [str(config.hydra.sweep.dir), "--success-level", str(level)]
        argv += ["--theory-epsilon", str(report.get("theory_epsilon", 0.01))]
        report_main(argv)


if __name__ == "__main__":
    main()
