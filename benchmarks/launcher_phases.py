"""Where a stacked sweep's wall time goes: ``python -m benchmarks.launcher_phases [aca-run overrides]``.

Runs one ``aca-run -m ... hydra/launcher=stacked`` sweep in this process (default: the ``mnist_dp``
DP sweep of ``benchmarks.stacked``'s launcher comparison, 36 runs) with a timer around each phase:
the imports, and then, per call, the launcher's composing, sorting and laying out of each job, the
calibration of σ and the accounting of ε, and the stacked fit. Prints one table (seconds in all,
calls) and the whole time; ``--out FILE`` also writes it. A phase's time includes the phases it
calls (the fit is inside the launcher's training).
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

_START = time.perf_counter()
SECONDS: defaultdict[str, float] = defaultdict(float)
CALLS: Counter[str] = Counter()


def _timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            SECONDS[name] += time.perf_counter() - start
            CALLS[name] += 1

    return wrapper


def _instrument() -> None:
    """Import what a stacked sweep imports, timing it, and wrap its phases with timers."""
    start = time.perf_counter()
    import lightning_aca.cli  # noqa: F401  (torch, hydra, the run plan)

    SECONDS["import lightning_aca.cli"] = time.perf_counter() - start
    CALLS["import lightning_aca.cli"] = 1
    start = time.perf_counter()
    import lightning_aca.stacked.engine as engine  # lightning, torchmetrics, opacus

    SECONDS["import lightning_aca.stacked"] = time.perf_counter() - start
    CALLS["import lightning_aca.stacked"] = 1
    import lightning_aca.firm.dp as dp
    from hydra_plugins.aca_stacked_launcher import _core

    for name in ("_compose", "_sort", "_lay_out", "_train"):
        setattr(_core, name, _timed(f"launcher {name.strip('_')}", getattr(_core, name)))
    engine._fit_or_explain = _timed("stacked fit (Trainer.fit)", engine._fit_or_explain)
    engine._Group.__init__ = _timed("stack set-up (data, members, σ)", engine._Group.__init__)
    dp.noise_multiplier_for = _timed("σ calibration (Opacus)", dp.noise_multiplier_for)
    dp.epsilon_spent = _timed("ε accounting (Opacus)", dp.epsilon_spent)


def _sweep_overrides(out: str) -> list[str]:
    from benchmarks.stacked import Sizes, launcher_common, launcher_grid

    sizes = Sizes()
    run_dirs = [f"hydra.sweep.dir={out}", "hydra.sweep.subdir=${hydra.job.num}", "~hydra.callbacks.report"]
    return [*launcher_common(sizes), *launcher_grid(sizes), *run_dirs]


def table(total: float) -> str:
    """The phases, largest first, as a Markdown table."""
    lines = ["| phase | seconds | calls |", "|---|---:|---:|"]
    for name, seconds in sorted(SECONDS.items(), key=lambda item: -item[1]):
        lines.append(f"| {name} | {seconds:.2f} | {CALLS[name]} |")
    lines.append(f"| **whole process** | **{total:.2f}** | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--device", default=None, help="hydra.launcher.device (default: cuda if there is one, else cpu)"
    )
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    parser.add_argument("overrides", nargs="*", help="aca-run overrides instead of the default sweep")
    args = parser.parse_args(argv)
    _instrument()
    import torch

    from benchmarks.stacked import _trainer
    from lightning_aca import cli

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    trainer = _trainer(torch.device(device))
    with tempfile.TemporaryDirectory() as tmp:
        overrides = args.overrides or _sweep_overrides(str(Path(tmp) / "sweep"))
        sys.argv = ["aca-run", "-m", *overrides, trainer, "hydra/launcher=stacked", f"hydra.launcher.device={device}"]
        try:
            cli.main()
        except SystemExit as exit_:
            if exit_.code:
                raise
    text = table(time.perf_counter() - _START)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
