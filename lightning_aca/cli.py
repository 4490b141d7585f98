"""``aca-run``: the Hydra app that trains one firm model on data with a collective.

Builds the run from its composed config (:class:`~lightning_aca.experiment.RunPlan`: model,
collectives, data, firm callbacks, loggers), trains and tests it with the ``trainer`` group's
Lightning Trainer, and writes one run record (``record.json``) atomically into the run directory;
a run whose training loss or weights became non-finite gets a record marked failed instead and
ends with a one-line error. A run whose record exists is skipped, so a killed sweep re-run with
the same ``hydra.sweep.dir`` resumes where it stopped. After a multirun,
:class:`SweepReport` prints the ``aca-report`` table and plot path for the sweep directory.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import hydra
from hydra.experimental.callback import Callback as HydraCallback
from omegaconf import DictConfig, OmegaConf

from lightning_aca.experiment import ConfigError, RunPlan, close_loggers, overrides_of, quiet, run_summary, uniqueness
from lightning_aca.runs.records import RECORD_NAME, finished_record, write_record
from lightning_aca.runs.run_info import device_info, log_hparams, log_summary, run_hparams, sweep_dir

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


def run_experiment(cfg: DictConfig) -> dict[str, Any]:
    """Train and test one configuration with a Lightning Trainer and return (and write) its run record."""
    out_dir = Path(cfg.output_dir)
    config = OmegaConf.to_container(cfg, resolve=True)
    finished = finished_record(out_dir, config)
    if finished is not None:
        print(f"aca-run: skip, record exists: {out_dir / RECORD_NAME}", flush=True)
        return finished
    start = time.perf_counter()
    from hydra.utils import instantiate

    from lightning_aca.data.split import held_out_validation
    from lightning_aca.runs.divergence import FiniteTraining, NonFiniteTrainingError

    if cfg.quiet:
        quiet()
    plan = RunPlan.build(cfg, config)
    dm = plan.datamodule()
    metrics = plan.metrics_callback()
    loggers = plan.loggers()
    finite = FiniteTraining()
    trainer = instantiate(
        cfg.trainer,
        callbacks=[metrics, finite, *plan.collective_callbacks, *plan.firm_callbacks],
        logger=loggers or False,
        enable_progress_bar=not cfg.quiet,
        enable_model_summary=not cfg.quiet,
        default_root_dir=str(out_dir),
    )
    device = device_info(trainer.strategy.root_device, trainer.num_devices * trainer.num_nodes)
    log_hparams(loggers, run_hparams(config, overrides_of(cfg), sweep_dir(cfg), engine="trainer", device=device))
    trainer.fit(plan.model, dm)
    val_acc = trainer.callback_metrics.get("val/acc")  # the model's last validation accuracy (Classifier logs it)
    failed = plan.failed(
        engine="trainer",
        epoch_losses=finite.epoch_losses,
        weights=plan.model.named_parameters(),
        wall_time_s=time.perf_counter() - start,
    )
    if failed is not None:
        write_record(failed, out_dir)
        close_loggers(loggers)
        raise NonFiniteTrainingError(failed["error"])
    stage = "fit" if not cfg.test else "test"
    if cfg.test:
        trainer.test(plan.model, datamodule=dm, verbose=not cfg.quiet)
    results = metrics.results.get(stage) or metrics.results.get("validate") or metrics.results.get("fit", {})
    for callback in plan.collective_callbacks:  # e.g. aca/param_distance, aca/alpha_star
        results = {**getattr(callback, "results", {}), **results}
    if val_acc is not None and held_out_validation(dm.datamodule) is not None:
        results = {**results, "aca/val_acc": float(val_acc)}
    train = dm.train_dataset
    signals = any(c.strategy.signal is not None for c in plan.collectives)
    inputs = [train.dataset[i][0] for i in range(min(len(train), 5000))] if signals else []
    record = plan.record(
        engine="trainer",
        metrics=results,
        members=[len(train.members_of(c.name)) for c in plan.collectives],
        xis=[uniqueness(inputs, c.strategy) for c in plan.collectives],
        n_train=len(train),
        wall_time_s=time.perf_counter() - start,
        firm=plan.firm_fields(),
        device=device,
    )
    path = write_record(record, out_dir)
    log_summary(loggers, record)
    close_loggers(loggers)
    print(f"aca-run: {run_summary(record)} ({record['wall_time_s']:.1f} s) -> {path}", flush=True)
    return record


def _user_error(err: BaseException) -> BaseException | None:
    """The user error behind ``err``: a :class:`ConfigError` it wraps (OmegaConf keeps a resolver's error as the
    context of its own), else its root cause if that is a ValueError, TypeError, KeyError or ImportError."""
    link: BaseException | None = err
    while link is not None:
        if isinstance(link, ConfigError):
            return link
        link = link.__cause__ or link.__context__
    while err.__cause__ is not None:
        err = err.__cause__
    return err if isinstance(err, (ValueError, TypeError, KeyError, ImportError)) else None


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def _hydra_main(cfg: DictConfig) -> None:
    try:
        run_experiment(cfg)
    except Exception as err:
        cause = _user_error(err)
        if cause is None:
            raise
        print(f"aca-run: error: {cause}", file=sys.stderr, flush=True)
        sys.exit(2)


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
