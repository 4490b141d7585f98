"""Run records written by ``aca-run``: write them, find them, load them, and group them into S(α) curves.

Each ``aca-run`` run writes one ``record.json`` (schema version 1) into its run directory; a Hydra
multirun gives ``<sweep_dir>/<job_num>/record.json``. The collective's target class y* is stored
under ``target_class``. A group is the set of runs sharing every swept
setting except the collective size α and the seed: one success curve S(α) (Hardt, Mazumdar,
Mendler-Dünner, Zrnic, "Algorithmic Collective Action in Machine Learning", ICML 2023,
arXiv 2302.04262, §3) measured over seeds. A run with several collectives (Karan et al. 2025)
holds them under ``collectives`` (:func:`collective_entry`) and their success as
``aca/success/<name>``.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from lightning_aca.runs.keys import metric_key
from lightning_aca.validation import fraction

__all__ = [
    "RECORD_NAME",
    "SCHEMA_VERSION",
    "collective_entry",
    "collective_names",
    "failed_record",
    "find_records",
    "group_key",
    "group_label",
    "load_records",
    "make_record",
    "read_record",
    "sweep_params",
    "unique_runs",
    "write_atomically",
    "write_record",
]

RECORD_NAME = "record.json"
SCHEMA_VERSION = 1


def write_atomically(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same directory, so readers never see half a file."""
    path = Path(path)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False) as file:
        file.write(data)
    try:
        os.replace(file.name, path)
    except OSError:
        os.unlink(file.name)
        raise
    return path


def write_record(record: dict[str, Any], directory: str | os.PathLike[str]) -> Path:
    """Write ``record`` as ``<directory>/record.json`` atomically: a killed run leaves no record or a whole one."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    text = json.dumps(record, indent=2, sort_keys=True, default=str)
    return write_atomically(directory / RECORD_NAME, text.encode())


_NOT_SCIENCE = ("quiet", "output_dir", "hydra.", "hydra/")

#: ``trainer`` choices that pick only the device (accelerator and one device), not the training
DEVICE_TRAINERS = ("cpu", "gpu")


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def sweep_params(overrides: list[str]) -> dict[str, Any]:
    """``["collective.alpha=0.01", "seed=1"]`` → ``{"collective.alpha": 0.01, "seed": 1}``.

    Overrides that cannot change results (``quiet``, ``output_dir``, Hydra's own ``hydra.*`` and
    ``hydra/launcher=...``-style choices) are left out.

    Example:
        >>> sweep_params(["collective.alpha=0.01", "seed=1", "firm=erm", "quiet=true"])
        {'collective.alpha': 0.01, 'seed': 1, 'firm': 'erm'}
    """
    params = {}
    for item in overrides:
        key, _, value = item.partition("=")
        key = key.lstrip("+~")
        if not key.startswith(_NOT_SCIENCE):
            params[key] = _parse_value(value)
    return params


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for package in ("lightning-aca", "torch", "lightning", "torchmetrics", "hydra-core", "opacus"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            continue
    return out


def _run_fields(
    engine: str, overrides: list[str], config: dict[str, Any], seed: int, wall_time_s: float
) -> dict[str, Any]:
    """What every record holds, of a finished run or a failed one: schema, engine, overrides, seed, config, time."""
    return {
        "schema_version": SCHEMA_VERSION,
        "engine": engine,
        "overrides": list(overrides),
        "sweep": sweep_params(list(overrides)),
        "seed": int(seed),
        "config": config,
        "wall_time_s": round(wall_time_s, 3),
        "versions": _versions(),
    }


def make_record(
    *,
    engine: str,
    overrides: list[str],
    config: dict[str, Any],
    seed: int,
    collectives: list[dict[str, Any]],
    metrics: dict[str, float],
    n_train: int,
    wall_time_s: float,
    firm: dict[str, Any] | None = None,
    device: str | None = None,
    accelerator_count: int | None = None,
) -> dict[str, Any]:
    """One run's record, the same for every engine (``"trainer"``: one Lightning Trainer per run; ``"stacked"``).

    ``collectives`` holds one :func:`collective_entry` per collective. One collective's α,
    strategy, y* and ξ̂ are the record's ``alpha``, ``strategy``, ``target_class`` and
    ``theory.xi``; several are listed under ``"collectives"`` (each one's metrics keyed
    ``aca/<metric>/<name>``) and those top-level keys are null. ``firm`` holds what the firm's
    callbacks declare (``record_fields()``: DP-SGD's ``epsilon``, ``noise_multiplier``,
    ``sample_rate``, ``steps``, ``delta``, ``accountant``; Group DRO's ``group_weights`` and
    ``worst_group_loss``), stored at the top level; ``epsilon`` is null without DP-SGD.
    ``device`` and ``accelerator_count`` say what trained the run (see
    :func:`~lightning_aca.runs.run_info.device_info`); a record without them reads as "device not
    recorded". ``status`` is ``"finished"`` (a record without one is too); a run that did not end
    in a result has :func:`failed_record` instead.
    """
    one = collectives[0] if len(collectives) == 1 else None
    record = {
        **_run_fields(engine, overrides, config, seed, wall_time_s),
        "status": "finished",
        "alpha": None if one is None else one["alpha"],
        "strategy": None if one is None else one["strategy"],
        "target_class": None if one is None else one["target_class"],
        "metrics": metrics,
        "epsilon": None,
        **(firm or {}),
        "theory": {"xi": None if one is None else one["xi"], "n_train": int(n_train)},
        "device": device,
        "accelerator_count": None if accelerator_count is None else int(accelerator_count),
    }
    if one is None:
        record["collectives"] = list(collectives)
    return record


def failed_record(
    *, engine: str, overrides: list[str], config: dict[str, Any], seed: int, error: str, wall_time_s: float
) -> dict[str, Any]:
    """The record of a run that ended without a result (e.g. its training loss became non-finite).

    It holds no metrics: ``status`` is ``"failed"`` and ``error`` says why. :func:`load_records`
    skips it with a warning and :func:`finished_record` does not count it as finished, so a resumed
    sweep trains the run again.

    Example:
        >>> record = failed_record(engine="trainer", overrides=["model.lr=1e30"], config={}, seed=0,
        ...                        error="the training loss is nan in epoch 0", wall_time_s=1.0)
        >>> record["status"], record["sweep"], "metrics" in record
        ('failed', {'model.lr': 1e+30}, False)
    """
    return {**_run_fields(engine, overrides, config, seed, wall_time_s), "status": "failed", "error": error}


def collective_entry(collective: Any, members: int, xi: float | None) -> dict[str, Any]:
    """One collective of a several-collective run as its record holds it (name, α, strategy, y*, members, ξ̂).

    Example:
        >>> from lightning_aca import PixelPatch, SignalPlanting
        >>> from lightning_aca.collective.collectives import Collective
        >>> entry = collective_entry(Collective("first", SignalPlanting(PixelPatch(2), target_class=3), 0.02), 80, None)
        >>> entry["name"], entry["alpha"], entry["strategy"], entry["target_class"], entry["members"]
        ('first', 0.02, 'SignalPlanting', 3, 80)
    """
    return {
        "name": collective.name,
        "alpha": float(collective.alpha),
        "strategy": type(collective.strategy).__name__,
        "target_class": collective.strategy.target_class,
        "members": int(members),
        "xi": xi,
    }


def collective_names(record: dict[str, Any]) -> list[str]:
    """The names of a several-collective record's collectives, in order; ``[]`` for a one-collective record."""
    return [entry["name"] for entry in record.get("collectives") or []]


#: top-level config keys that decide what a run trains and measures (a resumed record must match them);
#: where it is written, how verbose, which logger, how many CPU threads and which device do not.
_TRAINING_KEYS = ("data", "model", "collective", "firm", "trainer", "seed", "test", "metrics")
_DEVICE_KEYS = ("accelerator", "devices", "strategy", "num_nodes", "enable_progress_bar", "enable_model_summary")


def _training_part(config: dict[str, Any]) -> dict[str, Any]:
    part = {key: config.get(key) for key in _TRAINING_KEYS}
    if isinstance(part["trainer"], dict):
        part["trainer"] = {k: v for k, v in part["trainer"].items() if k not in _DEVICE_KEYS}
    return part


def first_difference(a: Any, b: Any, prefix: str = "") -> tuple[str, Any, Any] | None:
    """``(dotted key, value in a, value in b)`` of the first difference between two nested dicts, or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            found = first_difference(a.get(key), b.get(key), f"{prefix}{key}.")
            if found:
                return found
        return None
    return None if a == b else (prefix.rstrip("."), a, b)


def _shown(value: Any) -> str:
    text = "null" if value is None else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def finished_record(directory: str | os.PathLike[str], config: dict[str, Any]) -> dict[str, Any] | None:
    """The record already in ``directory`` for this resolved ``config``, or None if the run has not finished.

    A killed sweep re-run with the same ``hydra.sweep.dir`` skips its finished runs. A record that
    cannot be read (truncated, not JSON, not an object) or that marks a failed run
    (:func:`failed_record`) is not a finished run: a warning names the file and the run is
    trained again (its new record replaces the file). A record left
    by a *different* configuration in the same run directory (say, the sweep's model was changed
    and the sweep re-run into the old directory) is never taken for this run's result: that is a
    ``ValueError`` naming the first differing key and the fix.

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> _ = write_record({"config": {"model": {"arch": "cnn"}}}, d)
        >>> finished_record(d, {"model": {"arch": "cnn"}, "output_dir": d})["config"]["model"]
        {'arch': 'cnn'}
        >>> finished_record(d, {"model": {"arch": "mlp"}})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: the run directory ... holds the record of another configuration (model.arch: 'cnn' there, 'mlp' here); re-run into a new hydra.sweep.dir, or delete that run directory to retrain it.
    """
    path = Path(directory) / RECORD_NAME
    if not path.exists():
        return None
    record, problem = read_record(path)
    if problem is not None:
        warnings.warn(f"retraining the run of {path}: {problem}; it is not a finished run.", stacklevel=2)
        return None
    found = first_difference(_training_part(record.get("config") or {}), _training_part(config))
    if found is not None:
        key, theirs, ours = (found[0], *(_shown(v) for v in found[1:]))
        raise ValueError(
            f"the run directory {Path(directory)} holds the record of another configuration ({key}: {theirs} there, "
            f"{ours} here); re-run into a new hydra.sweep.dir, or delete that run directory to retrain it."
        )
    return record


def find_records(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Record files under ``paths``: every ``record.json`` below a directory, or a path that is a file.

    Files are listed once each, sorted within each directory. Raises ``ValueError`` for a path that
    does not exist, so a mistyped sweep directory is not silently left out of a report.
    """
    found: dict[Path, Path] = {}
    for path in map(Path, paths):
        if path.is_dir():
            files = sorted(file for file in path.rglob(RECORD_NAME) if file.is_file())
        elif path.is_file():
            files = [path]
        else:
            raise ValueError(f"{path} does not exist; pass run or sweep directories, or {RECORD_NAME} files.")
        for file in files:
            found.setdefault(file.resolve(), file)
    return list(found.values())


def read_record(path: str | os.PathLike[str]) -> tuple[dict[str, Any] | None, str | None]:
    """``(record, None)`` for the record of a finished run; ``(record or None, why not)`` for a file that is
    unreadable, partial JSON (a run killed while writing, a truncated copy), not a JSON object, or the
    record of a failed run (:func:`failed_record`)."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return None, f"unreadable or partial JSON ({error})"
    if not isinstance(record, dict):
        return None, "not a JSON object"
    status = record.get("status", "finished")
    if status != "finished":
        return record, f"the run {status} without a result ({record.get('error', 'no reason recorded')})"
    return record, None


def _problem(record: dict[str, Any]) -> str | None:
    """Why a finished run's ``record`` cannot be used, or ``None`` if it can."""
    if record.get("schema_version") != SCHEMA_VERSION:
        return f"schema_version is {record.get('schema_version')!r}, this reader needs {SCHEMA_VERSION}"
    metrics = record.get("metrics") or {}
    entries = record.get("collectives")
    if entries is not None:
        if not isinstance(entries, list) or not all(isinstance(e, dict) and "name" in e for e in entries):
            return "'collectives' is not a list of named entries"
        checks = tuple(
            item
            for e in entries
            for item in (
                (f"collectives[{e['name']!r}].alpha", e.get("alpha")),
                (f"metrics['{metric_key('success', e['name'])}']", metrics.get(metric_key("success", e["name"]))),
            )
        )
    else:
        checks = (("alpha", record.get("alpha")), ("metrics['aca/success']", metrics.get("aca/success")))
    for name, value in checks:
        try:
            fraction(name, value)
        except (TypeError, ValueError) as error:
            return str(error).rstrip(".")
    return None


def load_records(paths: Iterable[str | os.PathLike[str]]) -> list[dict[str, Any]]:
    """Load the usable records under ``paths`` (see :func:`find_records`).

    A file that is unreadable or partial JSON (a run still writing, or killed), marks a failed run
    (:func:`failed_record`), has another
    ``schema_version``, or lacks a number α or ``metrics['aca/success']`` in [0, 1] (with several
    collectives: each one's α and ``aca/success/<name>``) is skipped with a warning naming it.
    Raises ``ValueError`` naming ``paths`` when no usable record is left.
    """
    paths = list(paths)
    files = find_records(paths)
    records = []
    for file in files:
        record, problem = read_record(file)
        if problem is None:
            problem = _problem(record)
        if problem is not None:
            warnings.warn(f"skipping {file}: {problem}", stacklevel=2)
            continue
        records.append(record)
    if not records:
        where = ", ".join(str(path) for path in paths)
        detail = f"{len(files)} found, none usable" if files else "none found"
        raise ValueError(f"no usable {RECORD_NAME} under {where} ({detail}).")
    return records


def _is_curve_axis(key: str) -> bool:
    """Whether a swept key varies along one curve (α, seed) or is Hydra's own, not a setting."""
    name = key.lstrip("+~")
    return name.startswith(("hydra.", "hydra/")) or name.rsplit(".", 1)[-1] in ("alpha", "seed")


def group_key(record: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """Swept settings that tell one S(α) curve from another: the sorted sweep minus α, seed and Hydra's own keys.

    A key counts as α (or seed) when its last dotted part is ``alpha`` (or ``seed``). The device
    choice ``trainer=cpu``/``trainer=gpu`` (the record's ``device`` names it) does not split a
    curve either: runs of one setting on either device are seeds of one curve. List or dict
    values are turned into their JSON text so that the key is hashable.

    Example:
        >>> group_key({"sweep": {"collective.alpha": 0.01, "seed": 1, "firm": "erm", "trainer": "gpu"}})
        (('firm', 'erm'),)
    """
    items = (record.get("sweep") or {}).items()
    return tuple(
        sorted(
            (key, json.dumps(value, sort_keys=True) if isinstance(value, list | dict) else value)
            for key, value in items
            if not _is_curve_axis(key) and not (key == "trainer" and value in DEVICE_TRAINERS)
        )
    )


def group_label(key: tuple[tuple[str, Any], ...]) -> str:
    """A :func:`group_key` as text, e.g. ``"firm=erm"``; ``"(all runs)"`` when nothing else was swept.

    Example:
        >>> group_label((("firm", "erm"), ("firm.callbacks.dpsgd.max_grad_norm", 0.3)))
        'firm=erm, firm.callbacks.dpsgd.max_grad_norm=0.3'
    """
    if not key:
        return "(all runs)"
    return ", ".join(f"{name}={value if isinstance(value, str) else json.dumps(value)}" for name, value in key)


def _run_key(record: dict[str, Any]) -> tuple[Any, ...]:
    """What names one run of a sweep: its group, its collectives' α (with names, when several) and its seed."""
    entries = record.get("collectives")
    sizes = tuple((e["name"], e["alpha"]) for e in entries) if entries else record.get("alpha")
    return group_key(record), sizes, record.get("seed")


def unique_runs(records: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(kept, dropped)``: the first record of each (group, α, seed), and the records repeating one.

    Two sweeps of the same settings (say a stacked and a standard sweep of seeds 0–3) hold two
    records of each run; pooled, they would count as twice the seeds and narrow every interval.

    Example:
        >>> runs = [{"sweep": {"firm": "erm"}, "alpha": 0.1, "seed": s, "engine": e} for e in ("stacked", "trainer")
        ...         for s in (0, 1)]
        >>> kept, dropped = unique_runs(runs)
        >>> [(r["engine"], r["seed"]) for r in kept], [(r["engine"], r["seed"]) for r in dropped]
        ([('stacked', 0), ('stacked', 1)], [('trainer', 0), ('trainer', 1)])
    """
    seen: set[tuple[Any, ...]] = set()
    kept, dropped = [], []
    for record in records:
        key = _run_key(record)
        (dropped if key in seen else kept).append(record)
        seen.add(key)
    return kept, dropped
