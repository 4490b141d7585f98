"""``run_stacked``: train a group of ``aca-run`` configurations as stacked models and write their records.

Each configuration is built from its run plan (:class:`~lightning_aca.experiment.RunPlan`), as
``aca-run`` builds it, and gets what its own ``aca-run`` would give it (Hardt et al. 2023, §2–3 for
the collective and S; Abadi et al. 2016 and Opacus's accounting for DP-SGD): the same initial
weights, the same members, the same shuffled batches under ERM
(:func:`~lightning_aca.data.sampling.shuffled_indices`), and the plan's ``record.json`` with
``"engine": "stacked"``. With several collectives (``collective.collectives``; Karan et al. 2025)
each model's members come from ``select_disjoint_members`` (``collective_members``), each collective is evaluated on its
own signal evaluation set and reported as ``aca/<metric>/<name>``, and the record lists the
collectives. Loggers: after training, each configuration's own ``logger`` group is
instantiated and receives, as ``aca-run``'s loggers do, the flat resolved config, sweep and device
as hyperparameters (:func:`~lightning_aca.runs.run_info.run_hparams`), its per-epoch
``train/loss`` and final ``aca/`` metrics, and the W&B run summary (CSV and W&B alike, one log or
W&B run per configuration).
"""

from __future__ import annotations

import math
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from torch import Tensor

from lightning_aca.experiment import RunPlan, close_loggers, data_fact, quiet, run_summary, uniqueness, validate
from lightning_aca.firm.dp import privacy_fields
from lightning_aca.stacked.config import check_group, stackable_reason
from lightning_aca.stacked.data import TensorData, load_tensors
from lightning_aca.stacked.functional import bytes_per_model, stack
from lightning_aca.stacked.gdro import StackedGroupDRO
from lightning_aca.stacked.module import Evaluation, SignalSet, StackedClassifier, StackedDataModule
from lightning_aca.stacked.privacy import PoissonPlan

#: fraction of the free memory the stacked models may plan to use.
MEMORY_FRACTION = 0.8


def available_memory(device: torch.device) -> int:
    """Bytes free for new tensors on ``device`` (CUDA: the driver's free memory; CPU: MemAvailable)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _device(cfg: DictConfig, device: str | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    accelerator = cfg.trainer.get("accelerator", "cpu")
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _trainer_device(device: torch.device) -> dict[str, Any]:
    if device.type == "cuda":
        return {"accelerator": "gpu", "devices": [device.index or 0]}
    return {"accelerator": device.type, "devices": 1}


class _Job:
    """One configuration's run plan and per-model numbers: initial network, members, firm settings.

    ``members[c]`` are the training points of collective c (``plan.collectives[c]``); ``dp`` and
    ``gdro`` are the plan's DPSGD and GroupDRO callbacks (``None`` where the firm has none).
    """

    def __init__(self, plan: RunPlan, data: TensorData, eligible: list[np.ndarray | None]) -> None:
        from lightning_aca.collective.dataset import collective_members
        from lightning_aca.firm.dp import DPSGD
        from lightning_aca.firm.gdro import GroupDRO
        from lightning_aca.stacked.network import network_of

        cfg = self.cfg = plan.cfg
        self.plan = plan
        self.model = plan.model
        self.net = network_of(plan.model)
        self.members = collective_members(data.n, self.plan.collectives, cfg.collective.seed, eligible)
        self.dp = next((c for c in plan.firm_callbacks if isinstance(c, DPSGD)), None)
        self.gdro = next((c for c in plan.firm_callbacks if isinstance(c, GroupDRO)), None)
        if self.dp is not None:
            # σ, q and δ as the DPSGD callback resolves them (stacked runs have no max_steps)
            self.sigma, _, self.delta = self.dp.resolve(data.n, data.batches, int(cfg.trainer.max_epochs))


def _signal_set(cfg: DictConfig, strategy: Any, name: str | None, data: TensorData) -> SignalSet:
    """The collective's signal evaluation set: held-out points whose true label is not y*, carrying g."""
    from lightning_aca.collective.strategies import SignalErasing

    mask = strategy.evaluation_mask(data.y_test)
    if not bool(mask.any()):
        who = "" if name is None else f" (collective {name!r})"
        raise ValueError(f"the test set has no point to evaluate {strategy!r}{who} on (every label equals the target).")
    clean = data.x_test[mask]
    agreement = (cfg.get("metrics") or {}).get("erasure_agreement")
    return SignalSet(
        signal_inputs=strategy.evaluation_input(clean),
        clean_inputs=clean,
        success_labels=strategy.success_label(data.y_test[mask]),
        erasure_agreement=isinstance(strategy, SignalErasing) if agreement is None else bool(agreement),
        name=name,
    )


def _evaluation(cfg: DictConfig, strategies: list[Any], names: list[str | None], data: TensorData) -> Evaluation:
    metrics = cfg.get("metrics") or {}
    with_clean = bool(metrics.get("clean", True))
    return Evaluation(
        signal_sets=tuple(_signal_set(cfg, s, name, data) for s, name in zip(strategies, names, strict=True)),
        x=data.x_test if with_clean else None,
        y=data.y_test if with_clean else None,
        groups=data.groups_test if with_clean else None,
        num_groups=data_fact(cfg.data, "num_groups"),
        top_k=int(metrics.get("top_k", 1)),
        x_val=data.x_val,
        y_val=data.y_val,
    )


def _views(strategies: list[Any], data: TensorData) -> tuple[torch.Tensor, torch.Tensor]:
    """``(1 + C, n, ...)`` inputs and ``(1 + C, n)`` labels: the clean set, then h_c(x, y) of every point.

    Each collective's h is applied once to every training point; each model then selects, per
    point, the view of the collective that point belongs to in that model (0: none).
    """
    xs, ys = [data.x_train], [data.y_train]
    for strategy in strategies:
        x = data.x_train.clone()
        strategy.member_input_rows_(x, torch.arange(data.n))
        xs.append(x)
        ys.append(strategy.member_label(data.y_train.clone()))
    return torch.stack(xs), torch.stack(ys)


def _chunk_size(jobs: list[_Job], data: TensorData, views: int, device: torch.device, max_models: int | None) -> int:
    net, shape = jobs[0].net, tuple(data.x_train.shape[1:])
    private = jobs[0].dp is not None
    batch = data.batch_size
    if private:
        expected = PoissonPlan.for_loader(data.n, data.batches).expected_batch_size
        batch = int(expected + 4 * math.sqrt(expected) + 8)
    per_model = bytes_per_model(net, shape, batch, 512, private)
    # the training views, and the clean test set with one signal copy per collective
    fixed = 4 * views * (data.x_train.numel() + data.x_test.numel())
    free = int(MEMORY_FRACTION * available_memory(device)) - fixed
    fits = max(free // per_model, 0)
    wanted = len(jobs) if max_models is None else min(max_models, len(jobs))
    if fits < 1:
        raise ValueError(
            f"one stacked model needs about {per_model / 2**20:.1f} MiB on {device} but about "
            f"{max(free, 0) / 2**20:.1f} MiB is free: the chunk size that fits is max_models=0; "
            "use a smaller batch or the standard launcher."
        )
    if fits < wanted:
        print(
            f"aca-run[stacked]: {wanted} models need about {wanted * per_model / 2**30:.2f} GiB on {device}, "
            f"{free / 2**30:.2f} GiB is free: chunks of {fits}",
            flush=True,
        )
    return min(wanted, fits)


def _fit_or_explain(module: StackedClassifier, cfg: DictConfig, device: torch.device) -> StackedClassifier:
    """:func:`fit`, with an out-of-memory error turned into one that names a chunk size to try."""
    try:
        return fit(module, cfg, device)
    except torch.OutOfMemoryError as err:
        raise ValueError(
            f"{module.k} stacked models ran out of memory on {device} (the estimate was too optimistic): "
            f"the chunk size that fits is at most max_models={max(module.k // 2, 1)}."
        ) from err


def _job_metrics(job: _Job, n: int) -> dict[str, float]:
    """The collective's size as set (α), as realised (population α) and in members; per collective with several."""
    from lightning_aca.metrics.functional import collective_sizes

    collectives = job.plan.collectives
    return collective_sizes([(c.name, c.alpha, len(m)) for c, m in zip(collectives, job.members, strict=True)], n)


def _log(job: _Job, history: list[dict[str, float]], final: dict[str, float], steps: int, record: dict) -> None:
    """Replay the run's epoch losses and final metrics into the configuration's own loggers, with its config and summary."""
    from lightning_aca.runs.run_info import log_hparams, log_summary, run_hparams, sweep_dir

    loggers = job.plan.loggers()
    device = {key: record[key] for key in ("device", "accelerator_count")}
    hparams = run_hparams(record["config"], record["overrides"], sweep_dir(job.cfg), engine="stacked", device=device)
    log_hparams(loggers, hparams)
    for logger in loggers:
        for epoch, values in enumerate(history):
            logger.log_metrics({**values, "epoch": epoch}, step=(epoch + 1) * steps - 1)
        logger.log_metrics(final, step=len(history) * steps - 1)
        logger.save()
    log_summary(loggers, record)
    close_loggers(loggers)


def _group_views(gdro: Any, views: tuple[Tensor, Tensor], data: TensorData) -> Tensor:
    """``(V, n)``: the groups the firm observes for every training point in every view (:func:`_views`)."""
    out = []
    for v, (x, y) in enumerate(zip(*views, strict=True)):
        if gdro.groups == "membership":
            out.append(torch.full_like(y, int(v > 0)))
        elif callable(gdro.groups):
            out.append(torch.as_tensor(gdro.groups((x, y, *data.extras_train))).long())
        else:
            out.append(data.extras_train[int(gdro.group_index) - 2].long())
    return torch.stack(out)


def _group_dro(jobs: list[_Job], group_views: Tensor, owner: Tensor) -> StackedGroupDRO:
    """Every model's group weights, step size and group adjustment C/√n_g over its own training set."""
    gdro = jobs[0].gdro
    num_groups = gdro.num_groups
    if int(group_views.min()) < 0 or int(group_views.max()) >= num_groups:
        raise ValueError(
            f"group indices must lie in [0, {num_groups - 1}] (num_groups={num_groups}), "
            f"got {group_views.unique().tolist()}; set num_groups to the number of groups."
        )
    observed = group_views.gather(0, owner.long())  # (K, n): each model's groups
    counts = torch.zeros(len(jobs), num_groups).scatter_add_(1, observed, torch.ones_like(observed, dtype=torch.float))
    given = [job.gdro.group_counts for job in jobs]
    counts = torch.stack([c if c is not None else counts[k] for k, c in enumerate(given)])
    strength = torch.tensor([float(job.gdro.generalization_adjustment) for job in jobs])
    adjustment = strength[:, None] / counts.clamp(min=1).sqrt()
    step_size = torch.tensor([float(job.gdro.step_size) for job in jobs])
    return StackedGroupDRO(group_views, num_groups, step_size, adjustment)


def build_module(
    jobs: list[_Job],
    data: TensorData,
    views: tuple[Tensor, Tensor],
    evaluation: Evaluation,
    group_views: Tensor | None = None,
) -> StackedClassifier:
    """The stacked model of ``jobs``: their initial networks, members, optimizers, schedules and firm settings.

    ``views`` are the training set's clean and member views (:func:`_views`) on the device;
    ``group_views`` their observed groups under group DRO (:func:`_group_views`).
    """
    from lightning_aca.stacked.optim import StackedOptimizer, lr_schedule

    params, buffers, base = stack([job.net for job in jobs])
    owner = torch.zeros(len(jobs), data.n, dtype=torch.int8)
    for i, job in enumerate(jobs):
        for c, members in enumerate(job.members):
            owner[i, torch.as_tensor(members, dtype=torch.long)] = c + 1
    seeds = [int(job.cfg.seed) for job in jobs]
    extra: dict[str, Any] = {}
    steps = data.batches
    if jobs[0].dp is not None:
        poisson = PoissonPlan.for_loader(data.n, data.batches)
        steps = poisson.steps_per_epoch
        extra = dict(
            poisson=poisson,
            max_grad_norm=torch.tensor([float(job.dp.max_grad_norm) for job in jobs]),
            noise_multiplier=torch.tensor([job.sigma for job in jobs]),
            noise_seed=int(np.random.SeedSequence([*seeds, len(seeds)]).generate_state(1)[0]),
        )
    if group_views is not None:
        extra["group_dro"] = _group_dro(jobs, group_views, owner)
    configured = [job.model.configure_optimizers() for job in jobs]
    device = views[0].device
    return StackedClassifier(
        params,
        buffers,
        base,
        *views,
        owner.to(device),
        seeds,
        optimizer=StackedOptimizer.from_configured(configured, params),
        lr_schedule=lr_schedule(configured, steps, int(jobs[0].cfg.trainer.max_epochs)),
        batch_size=data.batch_size,
        batches=data.batches,
        evaluation=evaluation,
        **extra,
    )


def fit(module: StackedClassifier, cfg: DictConfig, device: torch.device) -> StackedClassifier:
    """Train ``module`` for ``cfg.trainer.max_epochs`` epochs with a Lightning Trainer on ``device``."""
    import lightning as L

    trainer = L.Trainer(
        **_trainer_device(device),
        max_epochs=int(cfg.trainer.max_epochs),
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=not cfg.get("quiet", False),
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        default_root_dir=str(cfg.output_dir),
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*(configure_optimizers|does not have many workers).*")
        trainer.fit(module, StackedDataModule())
    return module


class _Group:
    """What the configurations of one group share: device, data, strategies, views, evaluation sets, ξ̂."""

    def __init__(self, cfgs: list[DictConfig], resolved: list[dict[str, Any]], device: str | None) -> None:
        first = cfgs[0]
        self.device = _device(first, device)
        data = load_tensors(first.data)
        plans = [RunPlan.build(cfg, r) for cfg, r in zip(cfgs, resolved, strict=True)]
        plan = plans[0]
        strategies = [c.strategy for c in plan.collectives]
        # eligibility from the true labels of the training set, as the standard path decides it
        eligible = [s.eligible(data.y_train).numpy() if s.uses_labels else None for s in strategies]
        self.jobs = [_Job(p, data, eligible) for p in plans]
        self.evaluation = _evaluation(first, strategies, plan.names, data)
        inputs = data.x_train[:5000]
        self.xis = [uniqueness(inputs, s) for s in strategies]
        self.data_on_host = data
        views = _views(strategies, data)
        gdro = self.jobs[0].gdro
        self.group_views = None if gdro is None else _group_views(gdro, views, data)
        self.views = tuple(view.to(self.device) for view in views)
        self.data = TensorData(**{**vars(data), "x_train": self.views[0][0], "y_train": self.views[1][0]})


def _stack_of(cfgs: list[DictConfig]) -> list[dict[str, Any]]:
    """The configs' resolved dicts; ``ValueError`` unless they form one group the engine can train."""
    resolved = check_group(cfgs)
    reason = stackable_reason(cfgs[0])
    if reason is not None:
        raise ValueError(f"these configurations cannot be stacked: {reason}")
    return resolved


def build_stacked(cfgs: Sequence[DictConfig], device: str | None = "cpu") -> StackedClassifier:
    """The untrained stacked model of a group of configurations (as :func:`run_stacked` builds each chunk)."""
    cfgs = list(cfgs)
    group = _Group(cfgs, _stack_of(cfgs), device)
    return build_module(group.jobs, group.data, group.views, group.evaluation, group.group_views)


def run_stacked(cfgs: Sequence[DictConfig], device: str | None = None, max_models: int | None = None) -> list[dict]:
    """Train the configs (identical except STACKABLE_KEYS) as one stacked model and write their records.

    Chunked by ``max_models`` and by a memory estimate; each config's ``record.json`` (``aca-run``'s
    schema plus ``"engine": "stacked"``) is written atomically into its ``output_dir``, and a config
    whose record exists is skipped, as ``aca-run`` skips it. Returns the records in order. A model
    whose training loss or weights became non-finite gets a failed record (``"status": "failed"``,
    its ``error`` printed to stderr) instead of a result; the other models' records are written.
    Raises ``ValueError`` if the configs differ in a non-stackable key (naming it), cannot be
    stacked (the reason), or do not fit in memory (naming the chunk size that fits: the estimate
    lowers the chunk below ``max_models`` by itself; the error comes when not even one model fits
    or a chunk runs out of memory).
    """
    from lightning_aca.runs.records import RECORD_NAME, finished_record, write_record
    from lightning_aca.runs.run_info import device_info
    from lightning_aca.validation import positive_int

    cfgs = list(cfgs)
    if not cfgs:
        return []
    if max_models is not None:
        max_models = positive_int("max_models", max_models)
    resolved = _stack_of(cfgs)
    records: list[dict | None] = [None] * len(cfgs)
    pending = []
    for i, cfg in enumerate(cfgs):
        records[i] = finished_record(cfg.output_dir, resolved[i])
        if records[i] is not None:
            print(f"aca-run: skip, record exists: {Path(cfg.output_dir) / RECORD_NAME}", flush=True)
        else:
            validate(cfg)  # a bad config fails before any model of the group trains
            pending.append(i)
    if not pending:
        return records
    first = cfgs[pending[0]]
    if first.get("quiet"):
        quiet()
    os.environ.setdefault("WANDB_MODE", "offline")
    group = _Group([cfgs[i] for i in pending], [resolved[i] for i in pending], device)
    jobs, data = group.jobs, group.data
    size = _chunk_size(jobs, group.data_on_host, len(group.views[0]), group.device, max_models)
    device = device_info(group.device)
    for start in range(0, len(jobs), size):
        chunk = jobs[start : start + size]
        began = time.perf_counter()
        module = build_module(chunk, data, group.views, group.evaluation, group.group_views)
        module = _fit_or_explain(module, chunk[0].cfg, group.device)
        history = torch.stack(module.history).cpu().tolist() if module.history else []  # (epochs, K)
        # what a firm callback logs at each epoch's end (GroupDRO's q and worst-group loss), per epoch and model
        firm_epochs = (
            module.group_dro.epoch_metrics() if module.group_dro is not None else [[{}] * len(chunk)] * len(history)
        )
        wall = (time.perf_counter() - began) / len(chunk)
        for k, job in enumerate(chunk):
            failed = job.plan.failed(
                engine="stacked",
                epoch_losses=[row[k] for row in history],
                weights=[(name, p[k]) for name, p in module.params.items()],
                wall_time_s=wall,
            )
            if failed is not None:  # the other models of the stack are unaffected: each has its own weights
                write_record(failed, Path(job.cfg.output_dir))
                records[pending[start + k]] = failed
                print(f"aca-run[stacked]: error: {failed['error']}", file=sys.stderr, flush=True)
                continue
            metrics = {**module.results[k], **_job_metrics(job, data.n)}
            firm = {}
            if job.dp is not None:
                plan = module.poisson
                steps = plan.steps_per_epoch * int(job.cfg.trainer.max_epochs)
                firm = privacy_fields(job.sigma, plan.sample_rate, steps, job.delta, job.dp.accountant)
            if module.group_dro is not None:
                firm = module.group_dro.record_fields(k)
            record = job.plan.record(
                engine="stacked",
                metrics=metrics,
                members=[len(m) for m in job.members],
                xis=group.xis,
                n_train=data.n,
                wall_time_s=wall,
                firm=firm,
                device=device,
            )
            path = write_record(record, Path(job.cfg.output_dir))
            final = dict(metrics) if job.dp is None else {**metrics, "aca/epsilon": firm["epsilon"]}
            epochs = [{"train/loss": row[k], **firm_row[k]} for row, firm_row in zip(history, firm_epochs, strict=True)]
            _log(job, epochs, final, module.steps_per_epoch, record)
            records[pending[start + k]] = record
            print(f"aca-run[stacked]: {run_summary(record)} -> {path}", flush=True)
    return records
