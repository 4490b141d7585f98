"""The rounds of :class:`CriticalMassSweeper`: settings, searches, one launcher batch a round, the summary.

The sweep's overrides (``hydra.sweeper.params`` first, then the command line, the later of two
for one key winning) are split into ``collective.alpha`` (its values give the default range),
``seed`` (the default seeds) and the rest, expanded into settings as Hydra's basic sweeper does.
Before every round each setting's finished runs are read from the records in the sweep directory
(those whose :func:`~lightning_aca.runs.records.group_key` is the setting's), so runs of a
killed search, or of a grid run into the same directory, count and are not trained again.

Settings that cannot be searched (a bad sweeper value, a setting whose ``collective`` has no single
``collective.alpha``) stop the sweep before any run with one ``aca-run: error:`` line and exit code 2.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.core.utils import JobReturn
from omegaconf import DictConfig, OmegaConf

from lightning_aca.analysis.alpha_search import AlphaSearch, SearchStep
from lightning_aca.experiment import ConfigError
from lightning_aca.runs.records import group_key, group_label, load_records, sweep_params, write_atomically

if TYPE_CHECKING:
    from .critical_mass_sweeper import CriticalMassSweeper

ALPHA_KEY = "collective.alpha"
SEED_KEY = "seed"
DEFAULT_SEEDS = (0, 1, 2)
SUMMARY_NAME = "critical_mass.json"
_PREFIX = "critical_mass:"


@dataclass
class _Setting:
    overrides: list[str]
    label: str
    key: tuple[tuple[str, Any], ...]
    step: SearchStep | None = None


def _values(override: Override) -> list[Any]:
    """The values an override gives its key: a list or range sweep's, an interval's ends, or its one value."""
    if override.is_discrete_sweep():
        return list(override.sweep_iterator())
    if override.is_interval_sweep():
        interval = override.value()
        return [interval.start, interval.end]
    if override.is_sweep_override():
        raise ValueError(
            f"{override.input_line}: the critical-mass sweeper takes a list, range(...) or interval(low,high) here."
        )
    return [override.value()]


def search_for(sweeper: CriticalMassSweeper, overrides: Sequence[Override]) -> tuple[AlphaSearch, list[Override]]:
    """The :class:`AlphaSearch` the sweeper's arguments and ``overrides`` ask for, and the other overrides."""
    alphas: list[Any] = []
    seeds: list[Any] = []
    others: list[Override] = []
    for override in overrides:
        if override.key_or_group == ALPHA_KEY:
            alphas = _values(override)
        elif override.key_or_group == SEED_KEY:
            seeds = _values(override)
        else:
            others.append(override)
    alpha_range = sweeper.alpha_range
    if alpha_range is None:
        if len(alphas) < 2:
            raise ValueError(
                "hydra.sweeper.alpha_range is not set and collective.alpha is not swept over two or more values: "
                "give hydra.sweeper.alpha_range=[0.001,0.2] or sweep collective.alpha=interval(0.001,0.2)."
            )
        alpha_range = [min(alphas), max(alphas)]
    if sweeper.seeds is None:
        chosen = seeds or list(DEFAULT_SEEDS)
    elif isinstance(sweeper.seeds, int) and not isinstance(sweeper.seeds, bool):
        if sweeper.seeds < 1:
            raise ValueError(f"hydra.sweeper.seeds must be a list of seeds or a positive count, got {sweeper.seeds}.")
        chosen = list(range(sweeper.seeds))
    else:
        chosen = list(sweeper.seeds)
    try:
        search = AlphaSearch(
            alpha_range=tuple(alpha_range),
            seeds=tuple(chosen),
            success_level=sweeper.success_level,
            tolerance=sweeper.tolerance,
            max_runs=sweeper.max_runs,
            initial=sweeper.initial,
            explore_seeds=sweeper.explore_seeds,
            points_per_round=sweeper.points_per_round,
        )
    except (TypeError, ValueError) as err:
        raise ValueError(f"hydra.sweeper.{err}") from None
    return search, others


def _settings(others: Sequence[Override]) -> list[_Setting]:
    settings = []
    for overrides in BasicSweeper.split_arguments(list(others), None)[0]:
        key = group_key({"sweep": sweep_params(overrides)})
        settings.append(_Setting(list(overrides), group_label(key), key))
    return settings


def _check_searchable(sweeper: CriticalMassSweeper, setting: _Setting) -> None:
    """A :class:`ConfigError` unless ``setting`` composes one collective whose ``collective.alpha`` the search can set."""
    assert sweeper.config is not None and sweeper.hydra_context is not None
    config = sweeper.hydra_context.config_loader.load_sweep_config(sweeper.config, list(setting.overrides))
    choice = OmegaConf.select(config, "hydra.runtime.choices.collective", default=None)
    where = f"collective={choice}" if choice else "collective"
    if choice == "none":
        raise ConfigError(
            f"{where} has no collective, so there is no critical mass to search: choose one "
            "(e.g. collective=signal_planting), or drop hydra/sweeper=critical_mass for the alpha = 0 baseline."
        )
    node = config.get("collective")
    if isinstance(node, DictConfig) and "collectives" in node:
        raise ConfigError(
            f"{where} has no single {ALPHA_KEY} (several collectives each have collective.collectives.<name>.alpha): "
            "the critical-mass sweeper searches one collective's alpha; choose one collective "
            "(e.g. collective=signal_planting), or sweep collective.collectives.<name>.alpha without "
            "hydra/sweeper=critical_mass."
        )
    if not isinstance(node, DictConfig) or "alpha" not in node:
        raise ConfigError(
            f"the config has no {ALPHA_KEY} for the critical-mass sweeper to search: choose a collective "
            "with one (e.g. collective=signal_planting)."
        )


def _finished(sweep_dir: Path) -> list[dict[str, Any]]:
    """The usable records under the sweep directory; none yet is an empty list."""
    if not sweep_dir.exists():
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a record being written by another process is read next round
        try:
            return load_records([sweep_dir])
        except ValueError:
            return []


def _runs(records: Sequence[dict[str, Any]], setting: _Setting) -> tuple[list[float], list[float], list[int]]:
    mine = [r for r in records if r.get("alpha") is not None and group_key(r) == setting.key]
    return (
        [float(r["alpha"]) for r in mine],
        [float(r["metrics"]["aca/success"]) for r in mine],
        [int(r["seed"]) for r in mine],
    )


def _describe(step: SearchStep) -> str:
    fit = step.fit
    if fit is None:
        return "no runs yet"
    bracket = "" if step.bracket is None else f"bracket [{step.bracket[0]:.4g}, {step.bracket[1]:.4g}], "
    return f"{step.n_runs} runs, {bracket}{fit}"


def _proposed(step: SearchStep) -> str:
    seeds_at: dict[float, list[int]] = {}
    for alpha, seed in step.runs:
        seeds_at.setdefault(alpha, []).append(seed)
    points = ", ".join(f"{alpha:.4g} (seed {','.join(map(str, seeds))})" for alpha, seeds in seeds_at.items())
    return f"{len(step.runs)} new: α = {points}"


def _summary(search: AlphaSearch, settings: Sequence[_Setting], rounds: int) -> dict[str, Any]:
    return {
        "alpha_range": list(search.alpha_range),
        "seeds": list(search.seeds),
        "success_level": search.success_level,
        "tolerance": search.tolerance,
        "points_per_round": search.points_per_round,
        "rounds": rounds,
        "settings": [
            {
                "setting": s.label,
                "overrides": s.overrides,
                "status": s.step.status,
                "runs": s.step.n_runs,
                "bracket": None if s.step.bracket is None else list(s.step.bracket),
                "alpha_star": None if s.step.fit is None else asdict(s.step.fit),
            }
            for s in settings
            if s.step is not None
        ],
    }


def sweep(sweeper: CriticalMassSweeper, arguments: Sequence[str]) -> list[Sequence[JobReturn]]:
    """Run the rounds of every setting's search; the launcher's returns, one list per round."""
    assert sweeper.config is not None and sweeper.launcher is not None and sweeper.hydra_context is not None
    parser = OverridesParser.create(config_loader=sweeper.hydra_context.config_loader)
    params = [f"{key}={value}" for key, value in sweeper.params.items()]
    try:
        search, others = search_for(sweeper, parser.parse_overrides([*params, *arguments]))
        settings = _settings(others)
        for setting in settings:
            _check_searchable(sweeper, setting)
    except ValueError as err:  # ConfigError included: the sweep's own settings, before any run
        print(f"aca-run: error: {err}", file=sys.stderr, flush=True)
        sys.exit(2)
    sweep_dir = Path(str(sweeper.config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(sweeper.config, sweep_dir / "multirun.yaml")
    print(
        f"{_PREFIX} {len(settings)} setting(s), α in [{search.alpha_range[0]:.4g}, {search.alpha_range[1]:.4g}], "
        f"seeds {list(search.seeds)}, S* = {search.success_level:g}, tolerance ±{search.tolerance:.0%}, "
        f"up to {search.points_per_round} α a round, at most {search.max_runs} runs a setting",
        flush=True,
    )

    returns: list[Sequence[JobReturn]] = []
    job_idx = rounds = 0
    asked: set[tuple[int, float, int]] = set()
    while True:
        records = _finished(sweep_dir)
        batch: list[list[str]] = []
        for i, setting in enumerate(settings):
            if setting.step is not None and setting.step.done:
                continue
            setting.step = search.step(*_runs(records, setting))
            unfinished = [(i, *run) for run in setting.step.runs if (i, *run) in asked]
            if unfinished:
                raise RuntimeError(
                    f"{_PREFIX} {setting.label}: run(s) at (α, seed) = {[u[1:] for u in unfinished]} were launched "
                    f"but left no record under {sweep_dir}; the task must write one record per run."
                )
            asked.update((i, *run) for run in setting.step.runs)
            status = _proposed(setting.step) if setting.step.runs else setting.step.status
            print(f"{_PREFIX} round {rounds + 1} | {setting.label}: {_describe(setting.step)} → {status}", flush=True)
            batch += [
                [*setting.overrides, f"{ALPHA_KEY}={alpha!r}", f"{SEED_KEY}={seed}"]
                for alpha, seed in setting.step.runs
            ]
        if not batch:
            break
        rounds += 1
        sweeper.validate_batch_is_legal(batch)
        results = sweeper.launcher.launch(batch, initial_job_idx=job_idx)
        for result in results:
            _ = result.return_value  # a failed job raises here, as with the basic sweeper
        job_idx += len(batch)
        returns.append(results)

    for setting in settings:
        assert setting.step is not None
        print(f"{_PREFIX} {setting.label}: {setting.step.status} after {setting.step.n_runs} runs: {setting.step.fit}")
    summary = json.dumps(_summary(search, settings, rounds), indent=2, default=str)
    write_atomically(sweep_dir / SUMMARY_NAME, summary.encode())
    return returns
