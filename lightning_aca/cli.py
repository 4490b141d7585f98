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

from lightning_aca.analysis.records import RECORD_NAME, finished_record, make_record, write_record
from lightning_aca.analysis.run_info import device_info, log_hparams, log_summary, run_hparams, sweep_dir
from lightning_aca.validation import non_negative_int, positive_int


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
    ``seed_everything`` truncates floats) are checked here; the collective's α and seed are checked
    by :class:`~lightning_aca.data.datamodule.CollectiveDataModule`. Keys a config marks ``???``
    (e.g. ``data=csv``'s file) must be given.
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


def _quiet() -> None:
    """Silence banners and advice (not errors) for sweeps: one summary line per run remains."""
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module=r"lightning(\..*)?")
    warnings.filterwarnings(
        "ignore", message=r".*(does not have many workers|Secure RNG turned off|Full backward hook).*"
    )


def _uniqueness(dm: Any) -> float | None:
    """ξ̂ of the strategy's signal on (up to 5,000) clean training inputs, if it has a signal.

    Texts count when they already carry the signal's token pattern (``signal.carries``).
    """
    import torch

    from lightning_aca.theory import estimate_uniqueness

    signal = dm.strategy.signal
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


def build_datamodule(cfg: DictConfig) -> Any:
    """The run's :class:`~lightning_aca.data.datamodule.CollectiveDataModule` from the ``data`` and ``collective`` groups."""
    from hydra.utils import instantiate

    from lightning_aca.data.datamodule import CollectiveDataModule

    return CollectiveDataModule(
        instantiate(cfg.collective.strategy),
        cfg.collective.alpha,
        cfg.collective.seed,
        datamodule=instantiate(cfg.data.datamodule),
        num_classes=cfg.data.num_classes,
        return_membership=cfg.collective.get("return_membership", False),
        injection=cfg.collective.get("injection", "auto"),
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
    record = make_record(
        engine="trainer",
        overrides=_overrides(),
        config=config,
        alpha=cfg.collective.alpha,
        seed=cfg.seed,
        strategy=dm.strategy,
        metrics=results,
        epsilon=next((cb.epsilon for cb in firm_callbacks if hasattr(cb, "epsilon")), None),
        xi=_uniqueness(dm),
        n_train=len(dm.train_dataset),
        wall_time_s=time.perf_counter() - start,
        **device,
    )
    path = write_record(record, out_dir)
    log_summary(loggers, record)
    _close(loggers)
    success, clean = results.get("aca/success", float("nan")), results.get("aca/clean_acc", float("nan"))
    baseline = results.get("aca/baseline_success", float("nan"))
    print(
        f"aca-run: alpha={record['alpha']:g} seed={record['seed']} S={success:.3f} baseline={baseline:.3f} "
        f"clean_acc={clean:.3f} "
        f"({record['wall_time_s']:.1f} s) -> {path}",
        flush=True,
    )
    return record


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
        level = report.get("success_level", report.get("threshold", 0.9))
        argv = [str(config.hydra.sweep.dir), "--success-level", str(level)]
        argv += ["--theory-epsilon", str(report.get("theory_epsilon", 0.01))]
        report_main(argv)


if __name__ == "__main__":
    main()
