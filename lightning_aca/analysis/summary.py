"""Success curves S(α) and critical masses α* from run records, one per group of swept settings.

Groups the run records (see :mod:`lightning_aca.runs.records`) into S(α) curves, averages each
over seeds, and reads off the critical mass α* = min{α : S(α) ≥ S*} (Hardt, Mazumdar,
Mendler-Dünner, Zrnic, "Algorithmic Collective Action in Machine Learning", ICML 2023,
arXiv 2302.04262, §3) with :func:`~lightning_aca.analysis.critical_mass.estimate_alpha_star`.
Beside S it keeps the baseline (``aca/baseline_success``, the same measure on the clean versions
of the evaluation inputs), since S is only evidence of the signal where it is above the baseline.
:func:`critical_mass_against` places the groups' α* against one swept setting (``aca-report --against``).
Beside α it keeps the collective's number of members m (``aca/members``) and beside α* the critical
number of members m* = α*·n (:class:`~lightning_aca.analysis.critical_mass.MembersStar`), for a
group whose runs share one training-set size n (the record's ``theory.n_train``): success may track
m rather than α, which only a comparison across n can tell.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from lightning_aca.analysis.critical_mass import AlphaStar, MembersStar, estimate_alpha_star
from lightning_aca.analysis.distances import mean_or_none
from lightning_aca.runs.records import group_key, group_label
from lightning_aca.validation import non_negative_int, real

__all__ = [
    "N_TRAIN",
    "AgainstPoint",
    "AlphaRow",
    "GroupSummary",
    "against_key",
    "against_name",
    "critical_mass_against",
    "group_records",
    "summarize",
    "varying_keys",
]

Key = tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class AlphaRow:
    """One point of a success curve: the runs of one group at one collective size α.

    Attributes:
        alpha: collective size α.
        n_seeds: number of runs at this α (one per seed in a sweep).
        success_mean: mean success S over the runs.
        success_std: sample standard deviation of S (ddof = 1); 0 for a single run.
        clean_acc_mean: mean ``aca/clean_acc``; ``None`` if no run logged it.
        epsilon_mean: mean privacy ε of DP runs; ``None`` if no run has one.
        baseline_success_mean: mean ``aca/baseline_success`` (S measured on the clean inputs);
            ``None`` if no run logged it.
        above_baseline: whether ``success_mean`` exceeds ``baseline_success_mean``; ``None`` when
            there is no baseline or the collective has no target class y* (erasing).
        dp_ceiling: what the group's (ε, δ)-DP allows this row's members
            (:func:`~lightning_aca.theory.dp_success_ceiling`, S(0) the group's mean S at α = 0);
            ``None`` for non-private groups and groups without α = 0 runs.
        members_mean: mean number of members m (``aca/members``) over the runs; ``None`` if no run
            logged it.
        worst_group_acc_mean: mean ``aca/worst_group_acc`` (data with groups: the lowest test
            accuracy over the groups); ``None`` if no run logged it.
    """

    alpha: float
    n_seeds: int
    success_mean: float
    success_std: float
    clean_acc_mean: float | None
    epsilon_mean: float | None
    baseline_success_mean: float | None = None
    above_baseline: bool | None = None
    dp_ceiling: float | None = None
    members_mean: float | None = None
    worst_group_acc_mean: float | None = None


@dataclass(frozen=True)
class GroupSummary:
    """A group's success curve and its critical mass.

    Attributes:
        label: the group's swept settings, e.g. ``firm=erm``; ``(all runs)`` when nothing else was swept.
        key: the group's :func:`~lightning_aca.runs.records.group_key`.
        success_level: the success level S* that defines α*.
        rows: one row per α, ascending, α = 0 included.
        alpha_star: α* over the runs with α > 0; ``None`` if the group has none.
        n_train: the training-set size n (``theory.n_train``) shared by the group's runs; ``None``
            when a record lacks it or the runs disagree.
        members_star: the critical number of members m* = α*·n; ``None`` without α* or one n.
    """

    label: str
    key: Key
    success_level: float
    rows: tuple[AlphaRow, ...]
    alpha_star: AlphaStar | None
    n_train: int | None = None
    members_star: MembersStar | None = None

    @property
    def not_above_baseline(self) -> tuple[float, ...]:
        """The α whose mean S is not above the baseline (for collectives with a target class)."""
        return tuple(row.alpha for row in self.rows if row.above_baseline is False)


def _epsilon(record: dict[str, Any]) -> float | None:
    epsilon = record.get("epsilon")
    return epsilon if epsilon is not None else record["metrics"].get("aca/epsilon")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _metric(runs: list[dict[str, Any]], name: str) -> list[float]:
    """The runs' numeric values of metric ``name`` (runs lacking it are left out)."""
    return [float(value) for run in runs if _is_number(value := run["metrics"].get(name))]


def _row(alpha: float, runs: list[dict[str, Any]]) -> AlphaRow:
    success = _metric(runs, "aca/success")
    baseline = mean_or_none(_metric(runs, "aca/baseline_success"))
    has_target = any(run.get("target_class") is not None for run in runs)
    success_mean = float(np.mean(success))
    return AlphaRow(
        alpha=alpha,
        n_seeds=len(runs),
        success_mean=success_mean,
        success_std=float(np.std(success, ddof=1)) if len(success) > 1 else 0.0,
        clean_acc_mean=mean_or_none(_metric(runs, "aca/clean_acc")),
        epsilon_mean=mean_or_none([_epsilon(run) for run in runs]),
        baseline_success_mean=baseline,
        above_baseline=None if baseline is None or not has_target else success_mean > baseline,
        members_mean=mean_or_none(_metric(runs, "aca/members")),
        worst_group_acc_mean=mean_or_none(_metric(runs, "aca/worst_group_acc")),
    )


def _n_train(runs: list[dict[str, Any]]) -> int | None:
    """The training-set size n the runs share (``theory.n_train``); ``None`` if one lacks it or they differ."""
    sizes = {(run.get("theory") or {}).get("n_train") for run in runs}
    return int(next(iter(sizes))) if len(sizes) == 1 and _is_number(next(iter(sizes))) else None


def _delta(record: dict[str, Any]) -> float | None:
    """The run's δ: its DPSGD callback's ``delta``, or 1/n (the callback's default)."""
    callbacks = ((record.get("config") or {}).get("firm") or {}).get("callbacks") or {}
    dp = next((c for c in callbacks.values() if isinstance(c, dict) and "max_grad_norm" in c), None)
    if dp is None:
        return None
    if dp.get("delta") is not None:
        return float(dp["delta"])
    n = (record.get("theory") or {}).get("n_train")
    return 1.0 / n if n else None


def _with_dp_ceiling(rows: tuple[AlphaRow, ...], by_alpha: dict[float, list[dict[str, Any]]]) -> tuple[AlphaRow, ...]:
    """The rows with the group-privacy ceiling on S (docs/theory.md §5) where the group is private and has α = 0 runs."""
    from lightning_aca.theory import dp_success_ceiling

    if not rows or rows[0].alpha != 0.0:
        return rows
    baseline = rows[0].success_mean
    out = []
    for row in rows:
        runs = by_alpha[row.alpha]
        deltas = [d for d in map(_delta, runs) if d is not None]
        members = _metric(runs, "aca/members")
        if row.epsilon_mean is None or not deltas or len(members) != len(runs):
            out.append(row)
            continue
        ceiling = dp_success_ceiling(baseline, row.epsilon_mean, max(deltas), round(max(members)))
        out.append(replace(row, dp_ceiling=ceiling))
    return tuple(out)


def group_records(records: Sequence[dict[str, Any]]) -> dict[Key, list[dict[str, Any]]]:
    """Records by :func:`~lightning_aca.runs.records.group_key`: one list per S(α) curve."""
    groups: dict[Key, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        groups[group_key(record)].append(record)
    return groups


def summarize(
    records: Sequence[dict[str, Any]],
    success_level: float = 0.9,
    n_bootstrap: int = 1000,
) -> list[GroupSummary]:
    """Summarize each group of records: per-α mean ± std of S and its baseline, and α* at S*.

    α* (Hardt et al. 2023, arXiv 2302.04262, §3) is estimated by
    :func:`~lightning_aca.analysis.critical_mass.estimate_alpha_star` from the group's runs with
    α > 0, bootstrapping over their ``seed``; α = 0 runs (the no-collective baseline) appear only in
    the rows. A group whose runs share one training-set size n also gets the critical number of
    members m* = α*·n with α*'s interval times n (a collective of size α has α·n members); runs of
    several n in one group have no single m*. Groups are sorted by label.

    Args:
        records: loaded run records (see :func:`~lightning_aca.runs.records.load_records`).
        success_level: success level S* defining α*, in (0, 1] (default 0.9).
        n_bootstrap: bootstrap replicates for α*'s interval, ≥ 0.
    """
    success_level = real("success_level", success_level, low=0.0, high=1.0, low_open=True)
    n_bootstrap = non_negative_int("n_bootstrap", n_bootstrap)
    if not records:
        raise ValueError("no records to summarize.")
    summaries = []
    for key, runs in group_records(records).items():
        by_alpha: dict[float, list[dict[str, Any]]] = defaultdict(list)
        for run in runs:
            by_alpha[float(run["alpha"])].append(run)
        positive = [run for run in runs if run["alpha"] > 0]
        alpha_star = None
        if positive:
            alpha_star = estimate_alpha_star(
                [run["alpha"] for run in positive],
                [run["metrics"]["aca/success"] for run in positive],
                success_level=success_level,
                seeds=[str(run.get("seed")) for run in positive],
                n_bootstrap=n_bootstrap,
            )
        rows = _with_dp_ceiling(tuple(_row(alpha, by_alpha[alpha]) for alpha in sorted(by_alpha)), by_alpha)
        n_train = _n_train(runs)
        members_star = (
            None if alpha_star is None or n_train is None else MembersStar.from_alpha_star(alpha_star, n_train)
        )
        summaries.append(GroupSummary(group_label(key), key, success_level, rows, alpha_star, n_train, members_star))
    return sorted(summaries, key=lambda summary: summary.label)


@dataclass(frozen=True)
class AgainstPoint:
    """One group's critical mass α* and members m* placed at its value of a swept setting (``aca-report --against KEY``).

    Attributes:
        value: the group's value of the setting; ``None`` for a reference group, whose records lack
            the setting (ERM against DP-SGD's target ε: the ε = ∞ end).
        others: the group's values of the other settings that vary between the groups holding the
            setting, as a :func:`~lightning_aca.runs.records.group_key`; one line per distinct
            ``others``; empty for a reference group.
        summary: the group's summary, whose α* and m* are the ones shown.
    """

    value: Any
    others: Key
    summary: GroupSummary


_ABSENT = object()

#: the ``--against`` key meaning the training-set size n, read from each record's ``theory.n_train``
N_TRAIN = "n_train"


def _settings(summary: GroupSummary) -> dict[str, Any]:
    """The group's swept settings, and its training-set size n as :data:`N_TRAIN` when its runs share one."""
    settings = dict(summary.key)
    if summary.n_train is not None:
        settings[N_TRAIN] = summary.n_train
    return settings


def varying_keys(summaries: Sequence[GroupSummary]) -> list[str]:
    """The swept settings whose value, or presence, differs between the groups of ``summaries``, sorted.

    The training-set size :data:`N_TRAIN` counts when the groups hold two sizes or more (records
    lacking it do not make it vary).

    Example:
        >>> rows = (AlphaRow(0.1, 1, 1.0, 0.0, None, None),)
        >>> keys = [(("firm", "erm"), ("model", "mlp")), (("firm", "dpsgd"), ("model", "mlp"))]
        >>> varying_keys([GroupSummary(group_label(key), key, 0.9, rows, None, n) for key, n in zip(keys, (1000, 4000))])
        ['firm', 'n_train']
    """
    settings = [_settings(summary) for summary in summaries]
    names = sorted({name for setting in settings for name in setting})
    values = {name: {repr(setting.get(name, _ABSENT)) for setting in settings} for name in names}
    values[N_TRAIN] = values.get(N_TRAIN, set()) - {repr(_ABSENT)}
    return [name for name in names if len(values[name]) > 1]


def against_key(summaries: Sequence[GroupSummary], key: str) -> str:
    """The swept setting named ``key``: ``key`` itself, or the only setting whose last dotted part is ``key``.

    ``n_train`` (:data:`N_TRAIN`) is the training-set size n of each group's records
    (``theory.n_train``), whichever setting chose it. Raises ``ValueError`` naming ``--against`` and
    listing the swept keys when no group holds ``key``, and listing the candidates when its last
    part names several settings.

    Example:
        >>> rows = (AlphaRow(0.1, 1, 1.0, 0.0, None, None),)
        >>> keys = [(("firm.callbacks.dpsgd.target_epsilon", 1),), (("firm.callbacks.dpsgd.target_epsilon", 8),)]
        >>> against_key([GroupSummary(group_label(key), key, 0.9, rows, None) for key in keys], "target_epsilon")
        'firm.callbacks.dpsgd.target_epsilon'
    """
    names = sorted({name for summary in summaries for name in _settings(summary)})
    if key in names:
        return key
    matches = [name for name in names if name.rsplit(".", 1)[-1] == key]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ValueError(f"--against {key!r} is ambiguous: it names {', '.join(matches)}; pass the full key.")
    varying = ", ".join(varying_keys(summaries)) or "none (only α and seed vary)"
    axis = " (α and seed are each curve's own axes)" if key.rsplit(".", 1)[-1] in ("alpha", "seed") else ""
    raise ValueError(f"--against {key!r} is not a setting swept between these groups{axis}: swept keys are {varying}.")


def against_name(key: str) -> str:
    """The stem of the files ``aca-report --against KEY`` writes: ``critical_mass_against_`` and the key's last part.

    Example:
        >>> against_name("firm.callbacks.dpsgd.target_epsilon")
        'critical_mass_against_target_epsilon'
    """
    return f"critical_mass_against_{key.rsplit('.', 1)[-1]}"


def _order(value: Any) -> tuple[int, Any]:
    """Numbers by size, then anything else by its text."""
    return (0, value) if _is_number(value) else (1, str(value))


def _same_axis(placed: Sequence[GroupSummary], key: str, candidates: set[str]) -> set[str]:
    """The ``candidates`` that are ``key`` under another name: their values and ``key``'s map one to one."""
    settings = [_settings(summary) for summary in placed]
    same = set()
    for name in candidates:
        pairs = {(repr(setting[key]), repr(setting.get(name, _ABSENT))) for setting in settings}
        if len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs}):
            same.add(name)
    return same


@dataclass(frozen=True)
class SizeExponent:
    """How the critical number of members grows with the training-set size: m* ∝ n^b along one series.

    b = 0: a constant number of members suffices at every n; b = 1: a constant fraction (α* flat).
    ``b`` is the least-squares slope of log m* on log n over the series' groups with a reached α*,
    ``stderr`` its standard error (``None`` with fewer than three groups), ``sizes`` those n.
    """

    others: Key
    b: float
    stderr: float | None
    sizes: tuple[int, ...]


def size_exponents(points: Sequence[AgainstPoint]) -> list[SizeExponent]:
    """The exponent b of m* ∝ n^b of each series of ``critical_mass_against(summaries, "n_train")``.

    A series needs at least two sizes with a reached α* (an m* beyond the tested range has no
    place on the line); series with fewer are left out.
    """
    series: dict[Key, list[tuple[float, float]]] = defaultdict(list)
    for point in points:
        members = point.summary.members_star
        if point.value is None or members is None or not point.summary.alpha_star.reached:
            continue
        series[point.others].append((float(point.value), members.members_star))
    out = []
    for others, pairs in series.items():
        if len({n for n, _ in pairs}) < 2:
            continue
        log_n, log_m = np.log([n for n, _ in pairs]), np.log([m for _, m in pairs])
        centred = log_n - log_n.mean()
        slope = float(centred @ (log_m - log_m.mean()) / (centred @ centred))
        stderr = None
        if len(pairs) > 2:
            residuals = log_m - log_m.mean() - slope * centred
            stderr = float(np.sqrt(residuals @ residuals / (len(pairs) - 2) / (centred @ centred)))
        out.append(SizeExponent(others, slope, stderr, tuple(int(n) for n, _ in sorted(pairs))))
    return out


def critical_mass_against(summaries: Sequence[GroupSummary], key: str) -> list[AgainstPoint]:
    """Each group's α* and m* at its value of the swept setting ``key`` (full, or its last part; see :func:`against_key`).

    Shows how the critical mass α* (Hardt et al. 2023, arXiv 2302.04262, §3) and the critical number
    of members m* = α*·n move with a firm or data setting, e.g. with DP-SGD's target ε (Solanki et
    al., arXiv 2505.05707) or with the training-set size n (``key`` = ``n_train``): success that
    tracks the number of members keeps m* flat while α* falls as 1/n. α* and m* are each group's
    own, never re-estimated. Groups differing only in ``key`` form one series; each other varying
    setting splits series, except that n never does against a swept setting (the swept settings
    already fix it), and a swept setting whose values map one to one onto n (the data size under
    its override's name) does not against ``n_train``. Groups holding ``key`` come first, by their
    other varying settings and then by value; groups lacking it (references) follow, by label.
    """
    key = against_key(summaries, key)
    placed = [summary for summary in summaries if key in _settings(summary)]
    others = set(varying_keys(placed)) - {key}
    if key == N_TRAIN:
        others -= _same_axis(placed, key, others)
    else:
        others.discard(N_TRAIN)
    points = []
    for summary in placed:
        settings = _settings(summary)
        points.append(
            AgainstPoint(settings[key], tuple(sorted(i for i in settings.items() if i[0] in others)), summary)
        )
    points.sort(key=lambda point: (group_label(point.others), _order(point.value)))
    references = [AgainstPoint(None, (), summary) for summary in summaries if key not in _settings(summary)]
    return points + sorted(references, key=lambda point: point.summary.label)
