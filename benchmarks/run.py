"""Side-by-side speed and memory comparisons: ``python -m benchmarks.run --suite cpu|gpu|smoke``.

Each comparison runs its variants in one process, alternating them over several repetitions, and
reports median, spread (min–max) and the ratio to the comparison's baseline. Results go to
``benchmarks/results/<suite>-<device>.md`` and ``.json`` with the device, versions and sizes.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

RESULTS = Path(__file__).parent / "results"


@dataclass
class Row:
    comparison: str
    variant: str
    size: str
    median_s: float
    min_s: float
    max_s: float
    ratio: float
    repeats: int
    peak_mem_mb: float | None = None
    extra: dict = field(default_factory=dict)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def compare(
    comparison: str, size: str, variants: dict[str, Callable[[], float | None]], repeats: int, device: torch.device
) -> list[Row]:
    """Time each variant ``repeats`` times (interleaved, after one warm-up each); first is the baseline.

    A variant returning a float reports that time instead of its wall time (steady-state step time).
    """
    times: dict[str, list[float]] = {name: [] for name in variants}
    peaks: dict[str, float | None] = {}
    for fn in variants.values():
        fn()
    for name, fn in variants.items():
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            fn()
            peaks[name] = torch.cuda.max_memory_allocated(device) / 2**20
        else:
            peaks[name] = None
    for _ in range(repeats):
        for name, fn in variants.items():
            _sync(device)
            start = time.perf_counter()
            measured = fn()
            _sync(device)
            # a variant may time its own steady state (e.g. seconds per training step) and return it
            times[name].append(measured if isinstance(measured, float) else time.perf_counter() - start)
    base = statistics.median(next(iter(times.values())))
    return [
        Row(
            comparison,
            name,
            size,
            statistics.median(t),
            min(t),
            max(t),
            statistics.median(t) / base,
            repeats,
            peaks[name],
        )
        for name, t in times.items()
    ]


# -- 1. collective injection ------------------------------------------------------------------------
def _epoch(dataset, device: torch.device, batch_size: int = 256) -> Callable[[], None]:
    """One epoch of batches moved to ``device`` (collate-injection datasets modify members in their collate)."""
    mode = getattr(dataset, "injection", "item")
    collate = {"collate_fn": dataset.collate_fn()} if mode == "collate" else {}
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, pin_memory=device.type == "cuda", **collate)

    def run() -> None:
        for batch in loader:
            for tensor in batch:
                tensor.to(device, non_blocking=True)

    return run


def injection(repeats: int, n_large: int, device: torch.device) -> list[Row]:
    from lightning_aca import CollectiveDataset, PixelPatch, SignalPlanting
    from lightning_aca.data.digits import load_digits_tensors

    per_item = type("PerItemCollectiveDataset", (CollectiveDataset,), {"__getitems__": None})
    digits = TensorDataset(*load_digits_tensors())
    g = torch.Generator().manual_seed(0)
    large = TensorDataset(torch.rand(n_large, 1, 28, 28, generator=g), torch.randint(0, 10, (n_large,), generator=g))
    rows = []
    for label, base, patch in (("digits 1797x1x8x8", digits, 2), (f"synthetic {n_large}x1x28x28", large, 3)):
        for alpha in (0.01, 0.5):
            strategy = SignalPlanting(PixelPatch(patch), target_class=0)
            rows += compare(
                "collective injection (DataLoader epoch to device, batch 256)",
                f"{label}, alpha={alpha}",
                {
                    "bare dataset": _epoch(base, device),
                    "CollectiveDataset, injection='item' (batched __getitems__)": _epoch(
                        CollectiveDataset(base, strategy, alpha), device
                    ),
                    "CollectiveDataset, injection='item', per-item reads": _epoch(
                        per_item(base, strategy, alpha), device
                    ),
                    "CollectiveDataset, injection='collate' (collated rows)": _epoch(
                        CollectiveDataset(base, strategy, alpha, injection="collate"), device
                    ),
                },
                repeats,
                device,
            )
    return rows


# -- 2. trainer overhead -------------------------------------------------------------------------------
def _raw_loop(
    make_model, loader: DataLoader, epochs: int, device: torch.device, evaluate_on: tuple[DataLoader, ...] = ()
) -> Callable[[], None]:
    """A plain training loop; with ``evaluate_on``, also the accuracy on each loader every epoch (CollectiveMetrics's work)."""

    def run() -> None:
        torch.manual_seed(0)
        model = make_model().to(device)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        for _ in range(epochs):
            for x, y in loader:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                opt.zero_grad(set_to_none=True)
                nn.functional.cross_entropy(model(x), y).backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                accuracies = []
                for eval_loader in evaluate_on:
                    correct = torch.zeros((), device=device)
                    for x, y in eval_loader:
                        correct += (model(x.to(device)).argmax(-1) == y.to(device)).sum()
                    accuracies.append(float(correct) / len(eval_loader.dataset))
            model.train()

    return run


def _lightning(make_model, dm, epochs: int, device: torch.device, metrics: bool) -> Callable[[], None]:

    from lightning_aca import CollectiveMetrics

    def run() -> None:
        torch.manual_seed(0)
        trainer = bare_trainer(device, epochs, [CollectiveMetrics()] if metrics else [])
        trainer.fit(plain_module(make_model(), momentum=0.9), dm)

    return run


def trainer_overhead(repeats: int, n: int, epochs: int, device: torch.device) -> list[Row]:
    from lightning_aca import CollectiveDataModule, PixelPatch, SignalPlanting, SyntheticDataModule
    from lightning_aca.models import mlp, small_cnn

    if device.type == "cuda":
        size = f"small CNN, synthetic {n}x1x28x28, batch 256, {epochs} epochs, {device}"
        data = SyntheticDataModule(n_train=n, n_test=2000, image_shape=(28, 28), batch_size=256)

        def make():
            return small_cnn((1, 28, 28), 10)
    else:
        size = f"MLP, digits, batch 64, {epochs} epochs, cpu"
        from lightning_aca import DigitsDataModule

        data = DigitsDataModule(batch_size=64)

        def make():
            return mlp((1, 8, 8), 10)

    dm = CollectiveDataModule(SignalPlanting(PixelPatch(2), target_class=0), 0.01, datamodule=data)
    dm.setup("fit")
    raw_loader = dm.train_dataloader()
    dm.setup("test")
    eval_loaders = (dm.signal_test_dataloader(), dm.clean_test_dataloader())

    def variants(n_epochs: int) -> dict[str, Callable[[], None]]:
        return {
            "raw PyTorch loop": _raw_loop(make, raw_loader, n_epochs, device),
            "raw PyTorch loop + the same evaluation": _raw_loop(make, raw_loader, n_epochs, device, eval_loaders),
            "Lightning Trainer": _lightning(make, dm, n_epochs, device, metrics=False),
            "Lightning Trainer + CollectiveMetrics": _lightning(make, dm, n_epochs, device, metrics=True),
        }

    whole = compare("trainer overhead (whole fit)", size, variants(epochs), repeats, device)
    if epochs < 2:
        return whole
    # Per epoch, set-up excluded: (T(epochs) - T(1)) / (epochs - 1), from medians.
    single = compare("trainer overhead (whole fit, 1 epoch)", size, variants(1), repeats, device)
    marginal = {a.variant: (a.median_s - b.median_s) / (epochs - 1) for a, b in zip(whole, single, strict=True)}
    base = marginal["raw PyTorch loop"]
    per_epoch = [
        Row(
            "trainer overhead (per epoch, set-up excluded)",
            name,
            size,
            t,
            t,
            t,
            t / base,
            repeats,
            None,
            {"derived from": "medians"},
        )
        for name, t in marginal.items()
    ]
    return whole + single + per_epoch


# -- 3. DP-SGD overhead --------------------------------------------------------------------------------
def plain_module(net: nn.Module, momentum: float = 0.0):
    """A plain LightningModule around ``net``: cross-entropy, SGD with lr 0.05 (what the raw loops do)."""
    import lightning as L

    class Plain(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            return nn.functional.cross_entropy(self(batch[0]), batch[1])

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05, momentum=momentum)

    return Plain()


def cnn_module():
    """``plain_module`` around ``small_cnn`` for 1×28×28 inputs (SGD, lr 0.05, no momentum)."""
    from lightning_aca.models import small_cnn

    return plain_module(small_cnn((1, 28, 28), 10))


def bare_trainer(device: torch.device, epochs: int, callbacks: list):
    """A Trainer on one ``device`` with no logger, checkpoints, progress bar, summary or validation."""
    import lightning as L

    return L.Trainer(
        max_epochs=epochs,
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=1,
        callbacks=callbacks,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )


def step_timer(device: torch.device, warmup: int = 3):
    """A Lightning callback timing the training steps after ``warmup``: seconds per step, set-up excluded."""
    import lightning as L

    class StepTimer(L.Callback):
        def __init__(self) -> None:
            self.start: float | None = None
            self.steps = 0
            self.seconds_per_step = math.nan

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            if batch_idx == warmup:
                _sync(device)
                self.start = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            if self.start is not None:
                self.steps += 1

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            if self.start is None or not self.steps:
                raise RuntimeError(f"the epoch needs more than {warmup} steps to time its steady state")
            _sync(device)
            self.seconds_per_step = (time.perf_counter() - self.start) / self.steps

    return StepTimer()


def dp_overhead(repeats: int, n: int, batch_sizes: tuple[int, ...], device: torch.device) -> list[Row]:
    """Seconds per training step (one epoch, after 3 warm-up steps; Trainer and Opacus set-up excluded)."""
    from lightning_aca import DPSGD, SyntheticDataModule

    def fit(batch_size: int, dp_mode: str | None) -> Callable[[], float]:
        data = SyntheticDataModule(n_train=n, n_test=100, image_shape=(28, 28), batch_size=batch_size)

        def run() -> float:
            torch.manual_seed(0)
            timer = step_timer(device)
            callbacks = [timer] if dp_mode is None else [timer, DPSGD(noise_multiplier=1.0, grad_sample_mode=dp_mode)]
            bare_trainer(device, 1, callbacks).fit(cnn_module(), data)
            return timer.seconds_per_step

        return run

    rows = []
    for batch_size in batch_sizes:
        rows += compare(
            "DP-SGD overhead (s per step, small CNN)",
            f"synthetic {n}x1x28x28, batch {batch_size}, {device}",
            {
                "non-private": fit(batch_size, None),
                "DPSGD hooks": fit(batch_size, "hooks"),
                "DPSGD functorch": fit(batch_size, "functorch"),
            },
            repeats,
            device,
        )
    return rows


# -- 4. sweep throughput ---------------------------------------------------------------------------------
def sweep_throughput(repeats: int, epochs: int) -> list[Row]:
    def sweep(launcher: list[str]) -> Callable[[], None]:
        def run() -> None:
            with tempfile.TemporaryDirectory() as tmp:
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "lightning_aca.cli",
                        "experiment=quickstart",
                        f"trainer.max_epochs={epochs}",
                        "logger=none",
                        f"hydra.sweep.dir={tmp}/sweep",
                        "~hydra.callbacks.report",
                        *launcher,
                    ],
                    check=True,
                    capture_output=True,
                    cwd=tmp,
                )

        return run

    def imports() -> None:
        subprocess.run([sys.executable, "-c", "import lightning_aca.cli"], check=True)

    cpu = torch.device("cpu")
    rows = compare(
        "sweep throughput (quickstart: 10 runs)",
        f"digits, {epochs} epochs a run",
        {
            "basic launcher (one process)": sweep([]),
            "joblib launcher, 2 processes": sweep(["hydra/launcher=local_parallel"]),
            "joblib launcher, 2 processes, torch_threads=1": sweep(
                ["hydra/launcher=local_parallel", "torch_threads=1"]
            ),
        },
        repeats,
        cpu,
    )
    for row in rows:
        row.extra["runs_per_minute"] = round(10 / row.median_s * 60, 1)
    rows += compare("fixed cost per process", "python -c 'import lightning_aca.cli'", {"import": imports}, repeats, cpu)
    return rows


# -- driver ------------------------------------------------------------------------------------------------
def _environment(device: torch.device) -> dict:
    env = {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads()}
    # whether imports read cached bytecode: with no cache and PYTHONDONTWRITEBYTECODE set, every process of every
    # launcher compiles torch, lightning and their imports from source
    cached = Path(importlib.util.cache_from_source(torch.__file__)).is_file()
    env["bytecode"] = "cached" if cached else "compiled per process" if sys.flags.dont_write_bytecode else "cached once"
    try:
        import lightning
        import opacus

        env |= {"lightning": lightning.__version__, "opacus": opacus.__version__}
    except ImportError:
        pass
    if device.type == "cuda":
        env["device"] = torch.cuda.get_device_name(device)
        env["driver"] = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True, text=True
        ).stdout.strip()
    else:
        env["device"] = f"CPU: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    return env


def _markdown(suite: str, env: dict, rows: list[Row]) -> str:
    lines = [f"# Benchmarks: `{suite}` suite", "", "Environment: " + ", ".join(f"{k} {v}" for k, v in env.items()), ""]
    current = None
    for row in rows:
        if (row.comparison, row.size) != current:
            current = (row.comparison, row.size)
            lines += [
                "",
                f"## {row.comparison} — {row.size}",
                "",
                "| variant | median s | min–max s | ratio | peak GPU MiB | extra |",
                "|---|---:|---:|---:|---:|---|",
            ]
        peak = f"{row.peak_mem_mb:.0f}" if row.peak_mem_mb is not None else "–"
        extra = ", ".join(f"{k} {v}" for k, v in row.extra.items())
        lines.append(
            f"| {row.variant} | {row.median_s:.4f} | {row.min_s:.4f}–{row.max_s:.4f} | {row.ratio:.2f}× | {peak} | {extra} |"
        )
    return "\n".join(lines) + "\n"


_SECTIONS = {
    "collective injection": "injection",
    "trainer overhead": "trainer",
    "DP-SGD overhead": "dp",
    "sweep throughput": "sweep",
    "fixed cost": "sweep",
}


def _section(comparison: str) -> str:
    """The plan entry (``injection``, ``trainer``, ``dp``, ``sweep``) a results row belongs to."""
    return next((key for prefix, key in _SECTIONS.items() if comparison.startswith(prefix)), "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", choices=("smoke", "cpu", "gpu"), default="cpu")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--only", nargs="*", help="run only these comparisons: injection trainer dp sweep")
    args = parser.parse_args(argv)
    if args.suite == "gpu" and not torch.cuda.is_available():
        print("benchmarks: the gpu suite needs CUDA", file=sys.stderr)
        return 2
    device = torch.device("cuda" if args.suite == "gpu" else "cpu")
    smoke = args.suite == "smoke"
    plan = {
        "injection": lambda: injection(1 if smoke else 9, 2000 if smoke else 60000, device),
        "trainer": lambda: trainer_overhead(1 if smoke else 5, 2000 if smoke else 60000, 1 if smoke else 3, device),
        "dp": lambda: dp_overhead(
            1 if smoke else 5,
            2048 if smoke else (60000 if device.type == "cuda" else 6000),
            (256,) if smoke else (256, 1024),
            device,
        ),
        "sweep": lambda: sweep_throughput(1 if smoke else 3, 1 if smoke else 20),
    }
    if args.suite == "gpu":
        plan.pop("sweep")
    env = _environment(device)
    tag = f"{args.suite}-{env['device'].split(':')[0].replace(' ', '_')}" if args.suite == "gpu" else args.suite
    # --only reruns some sections: the others keep their rows from the existing results file
    previous = args.out / f"{tag}.json"
    kept = {}
    if args.only and not smoke and previous.exists():
        for row in json.loads(previous.read_text())["rows"]:
            kept.setdefault(_section(row["comparison"]), []).append(Row(**row))
    rows: list[Row] = []
    for name, run in plan.items():
        rows += run() if not args.only or name in args.only else kept.get(name, [])
    if smoke:
        print(_markdown(args.suite, env, rows))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{tag}.md").write_text(_markdown(args.suite, env, rows))
    (args.out / f"{tag}.json").write_text(json.dumps({"environment": env, "rows": [asdict(r) for r in rows]}, indent=2))
    print(_markdown(args.suite, env, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
