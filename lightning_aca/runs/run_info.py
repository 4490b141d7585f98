"""What a run tells its loggers and its record about itself: resolved config, sweep, device, summary.

Every logger of an ``aca-run`` run (and of each configuration the stacked engine trains) gets the
resolved Hydra config as flat hyperparameters (``firm.callbacks.dpsgd.target_epsilon``), the swept
settings (``sweep.<key>``, as the record's ``sweep``), the list of swept keys, the sweep directory,
the group of the run's S(α) curve (:func:`~lightning_aca.runs.records.group_label`), the
engine and the device, so a W&B dashboard can group and filter runs by any of them. The W&B run
summary holds the run's measurements (Hardt et al. 2023, §3): S(α) (``aca/success``), the clean
accuracy, the baseline (S on the clean versions of the same inputs), α, the members and ε, and
with several collectives each one's ``aca/success/<name>``, ``aca/alpha/<name>`` and
``aca/members/<name>``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from lightning_aca.runs.records import group_key, group_label, sweep_params

__all__ = [
    "device_info",
    "devices_line",
    "flatten_config",
    "log_hparams",
    "log_summary",
    "multirun_dir",
    "run_hparams",
    "summary_values",
    "sweep_dir",
    "wandb_group",
]


def flatten_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as one level of dotted keys; lists holding dicts or lists are indexed by position.

    A list of plain values (an input shape, a box) stays one value; an empty mapping stays ``{}`` so
    no key disappears.

    Example:
        >>> flatten_config({"firm": {"callbacks": {"dpsgd": {"target_epsilon": 1.0}}}, "seed": 0, "shape": [1, 8, 8]})
        {'firm.callbacks.dpsgd.target_epsilon': 1.0, 'seed': 0, 'shape': [1, 8, 8]}
        >>> flatten_config({"collectives": [{"name": "a", "alpha": 0.01}], "callbacks": {}})
        {'collectives.0.name': 'a', 'collectives.0.alpha': 0.01, 'callbacks': {}}
    """
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten_config(value, f"{name}."))
        elif isinstance(value, list | tuple) and any(isinstance(item, Mapping | list | tuple) for item in value):
            flat.update(flatten_config(dict(enumerate(value)), f"{name}."))
        else:
            flat[name] = value
    return flat


def device_info(device: Any, accelerator_count: int = 1) -> dict[str, Any]:
    """The record's ``device`` (the accelerator's name, e.g. ``NVIDIA H100 80GB HBM3``, or ``cpu``) and ``accelerator_count``.

    ``device`` is a ``torch.device`` or its text; a CUDA device is named by the driver.

    Example:
        >>> device_info("cpu")
        {'device': 'cpu', 'accelerator_count': 1}
    """
    import torch

    device = torch.device(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    return {"device": name, "accelerator_count": int(accelerator_count)}


def sweep_dir(cfg: Any) -> str | None:
    """The sweep directory of the run composed as ``cfg``, or None for a single run.

    The stacked engine's configs carry their job's ``hydra.sweep.dir``; an ``aca-run`` job of a
    multirun reads it from Hydra.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    local = OmegaConf.select(cfg, "hydra.sweep.dir", default=None) if OmegaConf.is_config(cfg) else None
    if local is not None:
        return str(local)
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return str(HydraConfig.get().sweep.dir)
    return None


def multirun_dir(mode: Any, directory: str) -> str | None:
    """``directory`` (``hydra.sweep.dir``) when ``mode`` (``hydra.mode``) is a multirun, else None.

    The W&B group of a run (``logger.wandb.group``): a single run has no sweep, and the sweep
    directory Hydra composes for it is never created. ``mode`` is Hydra's ``RunMode`` or its name.

    Example:
        >>> from hydra.types import RunMode
        >>> multirun_dir(RunMode.MULTIRUN, "multirun/x"), multirun_dir("RUN", "multirun/x")
        ('multirun/x', None)
    """
    name = getattr(mode, "name", str(mode).rpartition(".")[2])
    return str(directory) if name == "MULTIRUN" else None


def run_hparams(
    config: Mapping[str, Any],
    overrides: Sequence[str],
    directory: str | None,
    *,
    engine: str,
    device: Mapping[str, Any],
) -> dict[str, Any]:
    """The hyperparameters every logger of a run gets: the flat resolved config plus the sweep and the device.

    Keys: the config's (:func:`flatten_config`); ``sweep.<key>`` for each swept setting (a config
    group choice such as ``sweep.firm`` included); ``sweep_keys``, the swept keys; ``sweep_dir``;
    ``sweep_group``, the S(α) curve the run belongs to (every swept setting except α and seed);
    ``engine``, ``device`` and ``accelerator_count`` (:func:`device_info`).

    Example:
        >>> hp = run_hparams({"collective": {"alpha": 0.01}, "seed": 1}, ["collective.alpha=0.01", "seed=1", "firm=dpsgd"],
        ...                  "multirun/x", engine="trainer", device={"device": "cpu", "accelerator_count": 1})
        >>> hp["collective.alpha"], hp["sweep.firm"], hp["sweep_keys"], hp["sweep_group"], hp["device"]
        (0.01, 'dpsgd', ['collective.alpha', 'firm', 'seed'], 'firm=dpsgd', 'cpu')
    """
    swept = sweep_params(list(overrides))
    return {
        **flatten_config(config),
        **{f"sweep.{key}": value for key, value in swept.items()},
        "sweep_keys": sorted(swept),
        "sweep_dir": directory,
        "sweep_group": group_label(group_key({"sweep": swept})),
        "engine": engine,
        **device,
    }


def summary_values(record: Mapping[str, Any]) -> dict[str, Any]:
    """The W&B run summary of a run record: every ``aca/*`` metric (S, baseline, clean accuracy, α and members,
    per collective with several) and ε (left out for a run without DP-SGD).

    Example:
        >>> summary_values({"epsilon": 3.0, "metrics": {"aca/success": 0.9, "aca/alpha": 0.02, "aca/members": 27.0}})
        {'aca/success': 0.9, 'aca/alpha': 0.02, 'aca/members': 27.0, 'aca/epsilon': 3.0}
    """
    summary = {key: value for key, value in (record.get("metrics") or {}).items() if key.startswith("aca/")}
    if record.get("epsilon") is not None:
        summary["aca/epsilon"] = record["epsilon"]
    return summary


def log_hparams(loggers: Iterable[Any], hparams: Mapping[str, Any]) -> None:
    """Log ``hparams`` (:func:`run_hparams`) to every Lightning logger: W&B's config, CSV's ``hparams.yaml``."""
    for logger in loggers:
        logger.log_hyperparams(dict(hparams))


def log_summary(loggers: Iterable[Any], record: Mapping[str, Any]) -> None:
    """Put :func:`summary_values` of ``record`` into the summary of each W&B logger's run (rank zero only)."""
    from lightning.pytorch.loggers import WandbLogger
    from lightning.pytorch.utilities import rank_zero_only

    if rank_zero_only.rank != 0:
        return
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.experiment.summary.update(summary_values(record))


def devices_line(records: Iterable[Mapping[str, Any]]) -> str:
    """One line naming the device(s), accelerator count and engine the records were trained with, with run counts.

    Example:
        >>> devices_line([{"device": "cpu", "accelerator_count": 1, "engine": "trainer"}] * 2 + [{"engine": "trainer"}])
        'device: cpu ×1, trainer engine (2 runs); device not recorded (1 run)'
    """
    counts = Counter(
        (record.get("device"), record.get("accelerator_count"), record.get("engine")) for record in records
    )
    parts = []
    for (device, count, engine), runs in sorted(counts.items(), key=lambda item: (item[0][0] is None, str(item[0]))):
        runs_text = f"{runs} run{'s' if runs != 1 else ''}"
        if device is None:
            parts.append(f"device not recorded ({runs_text})")
        else:
            parts.append(f"{device} ×{count}, {engine} engine ({runs_text})")
    recorded = sum(device is not None for device, _, _ in counts)
    label = "devices: " if recorded > 1 else "device: " if recorded else ""
    return label + "; ".join(parts)


def wandb_group(records: Iterable[Mapping[str, Any]]) -> str | None:
    """The W&B group (``logger.wandb.group``, the sweep directory by default) shared by the records' runs.

    None when no record's run logged to W&B or they name several groups.

    Example:
        >>> wandb_group([{"config": {"logger": {"wandb": {"group": "multirun/a"}}}}, {"config": {"logger": {}}}])
        'multirun/a'
    """
    groups = {
        (((record.get("config") or {}).get("logger") or {}).get("wandb") or {}).get("group") for record in records
    } - {None}
    return str(next(iter(groups))) if len(groups) == 1 else None
