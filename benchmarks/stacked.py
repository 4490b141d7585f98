"""Stacked sweeps against one run at a time: ``python -m benchmarks.stacked [--device cuda] [--small]``.

Four comparisons, each variant in this process or a child ``aca-run`` on the same machine:

- **sweep**: runs per minute of a ``dp_epsilon_sweep``-like sweep at MNIST scale (synthetic
  60,000 × 1×28×28 in memory, ``cnn``, DP-SGD with target ε, 5 α × 6 ε × 3 seeds = 90 runs),
  ``hydra/launcher=stacked`` against Hydra's basic launcher on ``--device``. The stacked side runs
  the whole sweep; the basic side runs two subsets (``--basic-runs``, default 2 and 6 runs) and is
  extrapolated linearly, T(runs) = a + b·runs, to the sweep's size (the output says so).
- **step**: seconds per model-step of the stacked DP-SGD step (K models, Poisson batches of
  expected size 256) against one Opacus hooks DP-SGD step of the same ``Classifier`` under the
  ``DPSGD`` callback (and a non-private step), steady state, set-up excluded.
- **memory** (with **step**, CUDA only): peak GPU memory of each variant's whole fit, per model, and
  the marginal memory per added model between the two largest stacks.
- **quickstart**: ``aca-run experiment=quickstart`` (10 runs on digits) end to end on the CPU,
  stacked launcher against the basic launcher, each in a fresh process.
- **graphs** (CUDA only): the stacked fit with and without CUDA-graph replay of its step, for
  ERM with Adam, DP-SGD and group DRO (8 models, real MNIST-5k / coloured MNIST-5k, MLP, 5
  epochs): wall time of the fit and the largest difference between the two runs' weights.
- **launchers**: what a user would run instead, on the same device: the ``mnist_dp`` recipe's
  DP sweep on real MNIST-5k (MLP, 20 epochs; 6 α × 2 target ε × 3 seeds = 36 runs), whole
  commands, through the stacked launcher, Hydra's joblib launcher with 8 processes sharing the
  device, and one run at a time (the basic launcher on a subset, extrapolated as in **sweep**).

Results go to ``benchmarks/results/stacked-<device>.md`` and ``.json`` (the device, versions and
sizes with them); ``--only`` reruns some comparisons and keeps the others' rows from that file.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from benchmarks.run import RESULTS, Row, _environment, _markdown, bare_trainer, compare, step_timer

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Sizes:
    """The sweep and stacks measured; ``--small`` shrinks every one of them."""

    n_train: int = 60000
    n_test: int = 10000
    batch_size: int = 256
    alphas: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.2)
    epsilons: tuple[float, ...] = (0.5, 1, 2, 4, 8, 16)
    seeds: tuple[int, ...] = (0, 1, 2)
    epochs: int = 5
    basic_runs: tuple[int, int] = (2, 6)
    stacks: tuple[int, ...] = (1, 16, 64, 90)
    quickstart_epochs: int | None = None  # None: the experiment's own (20)
    repeats: int = 3
    launcher_alphas: tuple[float, ...] = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1)
    launcher_epsilons: tuple[float, ...] = (1, 8)
    launcher_seeds: tuple[int, ...] = (0, 1, 2)
    launcher_epochs: int = 20
    joblib_processes: int = 8

    @property
    def runs(self) -> int:
        return len(self.alphas) * len(self.epsilons) * len(self.seeds)


SMALL = Sizes(
    n_train=512,
    n_test=200,
    batch_size=32,
    alphas=(0.01, 0.1),
    epsilons=(1, 8),
    seeds=(0,),
    epochs=1,
    basic_runs=(1, 2),
    stacks=(1, 4),
    quickstart_epochs=1,
    repeats=1,
    launcher_alphas=(0.01, 0.1),
    launcher_epsilons=(8,),
    launcher_seeds=(0,),
    launcher_epochs=1,
    joblib_processes=2,
)


def _csv(values) -> str:
    return ",".join(f"{v:g}" for v in values)


def _mnist_scale(sizes: Sizes) -> list[str]:
    """``aca-run`` overrides of the MNIST-scale DP sweep, common to every variant."""
    return [
        "data=synthetic",
        f"data.datamodule.n_train={sizes.n_train}",
        f"data.datamodule.n_test={sizes.n_test}",
        "data.datamodule.image_shape=[28,28]",
        f"data.datamodule.batch_size={sizes.batch_size}",
        "model=cnn",
        "collective=signal_planting",
        "firm=dpsgd",
        f"trainer.max_epochs={sizes.epochs}",
        "logger=none",
        "quiet=true",
    ]


def _trainer(device: torch.device) -> str:
    return "trainer=gpu" if device.type == "cuda" else "trainer=cpu"


def _aca_run(args: list[str], env: dict[str, str] | None = None) -> tuple[float, list[dict]]:
    """Wall seconds of one ``aca-run -m`` in a fresh process and directory, and the records it wrote."""
    with tempfile.TemporaryDirectory() as tmp:
        sweep = Path(tmp) / "sweep"
        command = [sys.executable, "-m", "lightning_aca.cli", "-m", *args, f"hydra.sweep.dir={sweep}"]
        # run directories by job number: the MNIST-scale overrides make too long a directory name
        command += ["~hydra.callbacks.report", "hydra.sweep.subdir=${hydra.job.num}"]
        full_env = {**_python_env(), "WANDB_SILENT": "true", **(env or {})}
        start = time.perf_counter()
        proc = subprocess.run(command, cwd=tmp, capture_output=True, text=True, env=full_env)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"aca-run failed ({' '.join(args)}):\n{proc.stderr[-4000:]}")
        return wall, [json.loads(p.read_text()) for p in sweep.glob("*/record.json")]


def _python_env() -> dict[str, str]:
    """This environment with the repository on PYTHONPATH: the launcher plugins are found when the package is not installed."""
    paths = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def _warm_up() -> None:
    """Import what every variant imports once, untimed, so no variant pays for compiling or caching modules."""
    code = "import lightning_aca.cli, lightning_aca.stacked, hydra_plugins.aca_stacked_launcher"
    subprocess.run([sys.executable, "-c", code], check=True, env=_python_env(), capture_output=True)


def _row(comparison: str, variant: str, size: str, times: list[float], base: float, **extra) -> Row:
    median = statistics.median(times)
    return Row(comparison, variant, size, median, min(times), max(times), median / base, len(times), None, extra)


# -- sweep throughput at MNIST scale -----------------------------------------------------------------
def sweep(sizes: Sizes, device: torch.device) -> list[Row]:
    """Runs per minute of the 5 α × 6 ε × 3 seeds DP sweep: stacked launcher vs basic launcher."""
    _warm_up()
    common = [*_mnist_scale(sizes), "firm.callbacks.dpsgd.noise_multiplier=null", _trainer(device)]
    grid = [
        f"collective.alpha={_csv(sizes.alphas)}",
        f"firm.callbacks.dpsgd.target_epsilon={_csv(sizes.epsilons)}",
        f"seed={_csv(sizes.seeds)}",
    ]
    stacked_wall, records = _aca_run([*common, *grid, "hydra/launcher=stacked", f"hydra.launcher.device={device}"])
    if len(records) != sizes.runs or any(r.get("engine") != "stacked" for r in records):
        raise RuntimeError(f"the stacked sweep wrote {len(records)} stacked records, expected {sizes.runs}")

    def subset(runs: int) -> list[str]:
        """``runs`` jobs of the grid (seed 0; the smallest and largest ε, then the next α)."""
        eps = (sizes.epsilons[0], sizes.epsilons[-1]) if runs > 1 else sizes.epsilons[:1]
        alphas = sizes.alphas[: math.ceil(runs / len(eps))]
        assert len(alphas) * len(eps) == runs, "basic subsets must be a whole number of alphas"
        return [f"collective.alpha={_csv(alphas)}", f"firm.callbacks.dpsgd.target_epsilon={_csv(eps)}", "seed=0"]

    (r1, r2), basic = sizes.basic_runs, {}
    for runs in (r1, r2):
        basic[runs], done = _aca_run([*common, *subset(runs)])
        if len(done) != runs:
            raise RuntimeError(f"the basic subset wrote {len(done)} records, expected {runs}")
    per_run = (basic[r2] - basic[r1]) / (r2 - r1)
    fixed = basic[r1] - per_run * r1
    if fixed < 0:  # timing noise: no fixed cost to spread, the larger subset's time per run instead
        fixed, per_run = 0.0, basic[r2] / r2
    basic_wall = fixed + per_run * sizes.runs
    size = (
        f"synthetic {sizes.n_train}x1x28x28, cnn, DP-SGD target ε, batch {sizes.batch_size}, "
        f"{len(sizes.alphas)} α x {len(sizes.epsilons)} ε x {len(sizes.seeds)} seeds = {sizes.runs} runs, "
        f"{sizes.epochs} epochs a run, {device}"
    )
    comparison = "sweep throughput (DP sweep at MNIST scale)"
    return [
        _row(
            comparison,
            "basic launcher (one run at a time, Opacus)",
            size,
            [basic_wall],
            basic_wall,
            runs_per_minute=round(sizes.runs / basic_wall * 60, 2),
            measured=f"{r1} runs in {basic[r1]:.1f} s and {r2} runs in {basic[r2]:.1f} s; "
            f"extrapolated T = {fixed:.1f} s + {per_run:.2f} s x runs",
        ),
        _row(
            comparison,
            "stacked launcher",
            size,
            [stacked_wall],
            basic_wall,
            runs_per_minute=round(sizes.runs / stacked_wall * 60, 2),
            speedup=round(basic_wall / stacked_wall, 1),
            measured=f"all {sizes.runs} runs",
        ),
    ]


# -- per model-step time and memory --------------------------------------------------------------------
def _configs(sizes: Sizes, k: int, private: bool, tmp: str):
    """``k`` ``aca-run`` configs of the MNIST-scale DP run (σ = 1), differing in α, C and seed."""
    import copy

    from hydra import compose, initialize_config_module

    overrides = [*_mnist_scale(sizes), "firm.callbacks.dpsgd.noise_multiplier=1.0", f"output_dir={tmp}"]
    if not private:
        overrides = [o for o in overrides if not o.startswith("firm")] + ["firm=erm"]
    with initialize_config_module("lightning_aca.conf", version_base="1.3"):
        base = compose("config", overrides=overrides)
    cfgs = []
    for i in range(k):
        cfg = copy.deepcopy(base)
        cfg.seed, cfg.output_dir = i, f"{tmp}/{i}"  # collective.seed follows seed
        cfg.collective.alpha = sizes.alphas[i % len(sizes.alphas)]
        if private:
            cfg.firm.callbacks.dpsgd.max_grad_norm = (0.5, 1.0, 2.0)[i % 3]
        cfgs.append(cfg)
    return cfgs


def _standard_fit(cfg, device: torch.device, private: bool) -> Callable[[], float]:
    """One run as ``aca-run`` trains it (Classifier, CollectiveDataModule, DPSGD callback): s per step."""
    from hydra.utils import instantiate

    from lightning_aca.experiment import RunPlan

    def run() -> float:
        torch.manual_seed(0)
        dm = RunPlan.build(cfg).datamodule()
        timer = step_timer(device)
        callbacks = [timer, instantiate(cfg.firm.callbacks.dpsgd)] if private else [timer]
        bare_trainer(device, 1, callbacks).fit(instantiate(cfg.model), dm)
        return timer.seconds_per_step

    return run


def _stacked_fit(cfgs, device: torch.device, cuda_graphs: bool = True) -> Callable[[], float]:
    """The stacked model of ``cfgs``, built and fitted 3 epochs: s per model-step over epochs 2 and 3.

    One Lightning step is one epoch of the stacked model, so epochs are timed; the first one
    (which captures the CUDA graphs) is left out, as a steady-state step time leaves out set-up.
    """
    import lightning as L

    from lightning_aca.stacked import StackedDataModule
    from lightning_aca.stacked.engine import build_stacked

    class EpochTimer(L.Callback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            self.start = time.perf_counter()

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            self.times.append(time.perf_counter() - self.start)

    cfgs = [copy.deepcopy(cfg) for cfg in cfgs]
    for cfg in cfgs:
        cfg.trainer.max_epochs = 3

    def run() -> float:
        module = build_stacked(cfgs, device=str(device))
        module.cuda_graphs = cuda_graphs
        timer = EpochTimer()
        bare_trainer(device, 3, [timer]).fit(module, StackedDataModule())
        return statistics.mean(timer.times[1:]) / module.steps_per_epoch / len(cfgs)

    return run


def step(sizes: Sizes, device: torch.device) -> list[Row]:
    """Per model-step: stacked DP-SGD (K models) against one Opacus hooks DP-SGD step; peak memory per model."""
    with tempfile.TemporaryDirectory() as tmp:
        one = _configs(sizes, 1, True, tmp)[0]
        variants = {
            "Opacus hooks DP-SGD, one model (DPSGD callback)": _standard_fit(one, device, private=True),
            "non-private, one model": _standard_fit(_configs(sizes, 1, False, tmp)[0], device, private=False),
        }
        for k in sizes.stacks:
            variants[f"stacked DP-SGD, K={k} (per model)"] = _stacked_fit(_configs(sizes, k, True, tmp), device)
        stacks = list(sizes.stacks)
        if device.type == "cuda":
            k = sizes.stacks[-1]
            eager = _stacked_fit(_configs(sizes, k, True, tmp), device, cuda_graphs=False)
            variants[f"stacked DP-SGD, K={k} (per model), without CUDA graphs"] = eager
            stacks.append(k)
        size = f"cnn, synthetic {sizes.n_train}x1x28x28, Poisson batches of expected size {sizes.batch_size}, {device}"
        rows = compare("DP-SGD overhead (s per model-step, stacked vs Opacus)", size, variants, sizes.repeats, device)
    base = rows[0].median_s
    peaks: dict[int, float] = {}
    for row, k in zip(rows, [1, 1, *stacks], strict=True):
        row.extra["speedup vs Opacus hooks"] = round(base / row.median_s, 1)
        if row.peak_mem_mb is not None:
            row.extra["peak MiB per model"] = round(row.peak_mem_mb / k, 1)
            if row.variant.startswith("stacked") and "without" not in row.variant:
                peaks[k] = row.peak_mem_mb
    if len(peaks) >= 2:
        (k1, m1), (k2, m2) = sorted(peaks.items())[-2:]
        rows[1 + len(sizes.stacks)].extra["marginal MiB per added model"] = round((m2 - m1) / (k2 - k1), 2)
    return rows


# -- the 10-run quickstart on the CPU ------------------------------------------------------------------
def quickstart(sizes: Sizes) -> list[Row]:
    """``aca-run -m experiment=quickstart`` end to end on the CPU: basic launcher vs stacked launcher."""
    _warm_up()
    epochs = [] if sizes.quickstart_epochs is None else [f"trainer.max_epochs={sizes.quickstart_epochs}"]
    common = ["experiment=quickstart", "logger=none", *epochs]
    cpu_only = {"CUDA_VISIBLE_DEVICES": ""}
    variants = {
        "basic launcher": [*common],
        "stacked launcher": [*common, "hydra/launcher=stacked", "hydra.launcher.device=cpu"],
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(sizes.repeats):
        for name, args in variants.items():
            wall, records = _aca_run(args, env=cpu_only)
            if len(records) != 10:
                raise RuntimeError(f"{name}: the quickstart wrote {len(records)} records, expected 10")
            times[name].append(wall)
    base = statistics.median(times["basic launcher"])
    size = f"digits, mlp, 5 α x 2 seeds, {sizes.quickstart_epochs or 20} epochs a run, CPU {torch.get_num_threads()} threads"
    rows = []
    for name, t in times.items():
        rows.append(
            _row(
                "sweep throughput (quickstart: 10 runs, whole command)",
                name,
                size,
                t,
                base,
                runs_per_minute=round(10 / statistics.median(t) * 60, 1),
                speedup=round(base / statistics.median(t), 2),
            )
        )
    return rows


# -- CUDA graphs against eager steps ----------------------------------------------------------------------------
def graphs(sizes: Sizes, device: torch.device) -> list[Row]:
    """The same stacked fit replayed as CUDA graphs and run eagerly: wall time and largest weight difference."""
    from hydra import compose, initialize_config_module

    from lightning_aca.stacked.engine import build_stacked, fit

    settings = {
        "ERM, Adam": ["data=mnist5k", "model.optimizer=adam", "model.lr=0.001"],
        "DP-SGD (σ = 1)": ["data=mnist5k", "firm=dpsgd", "firm.callbacks.dpsgd.noise_multiplier=1.0"],
        "group DRO": ["data=colored_mnist", "firm=gdro", "firm.callbacks.gdro.step_size=0.1"],
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp, initialize_config_module("lightning_aca.conf", version_base="1.3"):
        for name, overrides in settings.items():
            cfgs = []
            for k in range(8):
                cfg = compose("config", overrides=[*overrides, "logger=none", "quiet=true", _trainer(device)])
                cfg.trainer.max_epochs, cfg.seed, cfg.output_dir = 5, k, f"{tmp}/{k}"
                cfg.collective.alpha = (0.001, 0.01, 0.05, 0.1)[k % 4]
                cfgs.append(cfg)
            times, weights = {}, {}
            for variant, on in (("eager steps", False), ("CUDA graphs", True)):
                module = build_stacked(cfgs, device=str(device))
                module.cuda_graphs = on
                torch.cuda.synchronize(device)
                start = time.perf_counter()
                fit(module, cfgs[0], device)
                torch.cuda.synchronize(device)
                times[variant] = time.perf_counter() - start
                weights[variant] = torch.cat([p.flatten() for p in module.params.values()])
            diff = float((weights["CUDA graphs"] - weights["eager steps"]).abs().max())
            print(
                f"graphs: {name}: eager {times['eager steps']:.2f} s, graphs {times['CUDA graphs']:.2f} s, "
                f"max |dweight| {diff:.2e}",
                flush=True,
            )
            size = f"{name}: 8 models, mlp, 5 epochs, {module.steps_per_epoch} steps an epoch, {device}"
            for variant, wall in times.items():
                extra = {"max |Δweight| graphs vs eager": f"{diff:.2e}"} if variant == "CUDA graphs" else {}
                rows.append(
                    _row(
                        "stacked fit, CUDA graphs vs eager steps", variant, size, [wall], times["eager steps"], **extra
                    )
                )
    return rows


# -- against what a user would run instead ----------------------------------------------------------------------
def launcher_common(sizes: Sizes) -> list[str]:
    """``aca-run`` overrides every command of the launcher comparison shares (the trainer aside)."""
    return [
        "experiment=mnist_dp",
        "logger=none",
        f"trainer.max_epochs={sizes.launcher_epochs}",
        "firm.callbacks.dpsgd.noise_multiplier=null",
    ]


def launcher_grid(sizes: Sizes) -> list[str]:
    """The launcher comparison's sweep: α × target ε × seeds."""
    return [
        f"collective.alpha={_csv(sizes.launcher_alphas)}",
        f"firm.callbacks.dpsgd.target_epsilon={_csv(sizes.launcher_epsilons)}",
        f"seed={_csv(sizes.launcher_seeds)}",
    ]


def launchers(sizes: Sizes, device: torch.device) -> list[Row]:
    """The ``mnist_dp`` DP sweep as whole commands: stacked, joblib with several processes, one run at a time."""
    common = [*launcher_common(sizes), _trainer(device)]
    grid = launcher_grid(sizes)
    runs = len(sizes.launcher_alphas) * len(sizes.launcher_epsilons) * len(sizes.launcher_seeds)
    jobs = sizes.joblib_processes
    walls: dict[str, float] = {}
    _warm_up()
    for name, args in {
        "stacked launcher": ["hydra/launcher=stacked", f"hydra.launcher.device={device}"],
        f"joblib launcher, {jobs} processes": ["hydra/launcher=local_parallel", f"hydra.launcher.n_jobs={jobs}"],
    }.items():
        walls[name], records = _aca_run([*common, *grid, *args])
        if len(records) != runs:
            raise RuntimeError(f"{name}: the sweep wrote {len(records)} records, expected {runs}")
        print(f"launchers: {name}: {runs} runs in {walls[name]:.1f} s", flush=True)
    one, two = max(1, len(sizes.launcher_epsilons) // 2), len(sizes.launcher_epsilons)
    basic = {}
    for count in sorted({one, two}):
        eps = f"firm.callbacks.dpsgd.target_epsilon={_csv(sizes.launcher_epsilons[:count])}"
        basic[count], done = _aca_run([*common, f"collective.alpha={sizes.launcher_alphas[0]}", eps, "seed=0"])
        print(f"launchers: basic launcher: {count} run(s) in {basic[count]:.1f} s", flush=True)
        if len(done) != count:
            raise RuntimeError(f"the basic subset wrote {len(done)} records, expected {count}")
    per_run = (basic[two] - basic[one]) / (two - one) if two > one else basic[one]
    fixed = max(basic[one] - per_run * one, 0.0)
    walls["one run at a time (basic launcher)"] = fixed + per_run * runs
    base = walls[f"joblib launcher, {jobs} processes"]
    size = (
        f"real MNIST-5k, mlp, DP-SGD target ε, {len(sizes.launcher_alphas)} α x {len(sizes.launcher_epsilons)} ε x "
        f"{len(sizes.launcher_seeds)} seeds = {runs} runs, {sizes.launcher_epochs} epochs a run, {device}"
    )
    rows = []
    for name, wall in walls.items():
        extra = {
            "runs_per_minute": round(runs / wall * 60, 2),
            "stacked_speedup": round(wall / walls["stacked launcher"], 1),
        }
        if name.startswith("one run"):
            extra["measured"] = (
                ", ".join(f"{c} run(s) in {basic[c]:.1f} s" for c in sorted(basic))
                + f"; extrapolated T = {fixed:.1f} s + {per_run:.2f} s x runs"
            )
        rows.append(_row("sweep against other launchers (mnist_dp, whole commands)", name, size, [wall], base, **extra))
    return rows


# -- driver --------------------------------------------------------------------------------------------------
_SECTIONS = {
    "sweep throughput (DP": "sweep",
    "DP-SGD overhead (s per model-step": "step",
    "sweep throughput (quickstart": "quickstart",
    "sweep against other launchers": "launchers",
    "stacked fit, CUDA graphs": "graphs",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--small", action="store_true", help="a few runs of small data: checks that it runs")
    parser.add_argument("--epochs", type=int, help="epochs of each run of the MNIST-scale sweep (default 5)")
    parser.add_argument(
        "--basic-runs", type=int, nargs=2, metavar=("R1", "R2"), help="the basic launcher's two subsets (default 2 6)"
    )
    parser.add_argument("--only", nargs="*", choices=tuple(_SECTIONS.values()), help="run only these comparisons")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("benchmarks.stacked: --device cuda needs CUDA", file=sys.stderr)
        return 2
    sizes = SMALL if args.small else Sizes()
    if args.epochs is not None:
        sizes = Sizes(**{**asdict(sizes), "epochs": args.epochs})
    if args.basic_runs is not None:
        sizes = Sizes(**{**asdict(sizes), "basic_runs": tuple(args.basic_runs)})
    plan = {
        "sweep": lambda: sweep(sizes, device),
        "step": lambda: step(sizes, device),
        "quickstart": lambda: quickstart(sizes),
        "launchers": lambda: launchers(sizes, device),
        "graphs": lambda: graphs(sizes, device) if device.type == "cuda" else [],
    }
    env = _environment(device)
    tag = "stacked-" + env["device"].split(":")[0].replace(" ", "_")
    previous = args.out / f"{tag}.json"
    kept: dict[str, list[Row]] = {}
    if args.only and not args.small and previous.exists():
        for row in json.loads(previous.read_text())["rows"]:
            section = next((s for prefix, s in _SECTIONS.items() if row["comparison"].startswith(prefix)), "")
            kept.setdefault(section, []).append(Row(**row))
    rows: list[Row] = []
    for name, run in plan.items():
        rows += run() if not args.only or name in args.only else kept.get(name, [])
    text = _markdown("stacked", env, rows)
    print(text)
    if not args.small:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"{tag}.md").write_text(text)
        (args.out / f"{tag}.json").write_text(
            json.dumps({"environment": env, "rows": [asdict(r) for r in rows]}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
