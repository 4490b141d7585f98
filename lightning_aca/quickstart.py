"""The embedded quickstart: signal planting on scikit-learn's digits over a grid of α.

Hardt et al. 2023, §3 on real handwritten digits: a collective plants a 2×2 white patch in the
bottom-right corner with target y* = 0; S(α) is the fraction of held-out patched digits of other
classes that the trained MLP labels 0. Runs on a CPU in well under a minute.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import warnings

import lightning as L

from lightning_aca.collective.signals import PixelPatch
from lightning_aca.collective.strategies import SignalPlanting
from lightning_aca.data.datamodule import CollectiveDataModule
from lightning_aca.data.digits import DigitsDataModule
from lightning_aca.metrics.callback import CollectiveMetrics
from lightning_aca.models import Classifier


def run_once(alpha: float, seed: int, epochs: int) -> tuple[float, float]:
    """Train one model with a collective of size ``alpha``; return (success, clean accuracy)."""
    L.seed_everything(seed, verbose=False)
    dm = CollectiveDataModule(SignalPlanting(PixelPatch(2), target=0), alpha, seed, datamodule=DigitsDataModule())
    model = Classifier(arch="mlp", input_shape=(1, 8, 8), num_classes=10, lr=0.05)
    metrics = CollectiveMetrics()
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        callbacks=[metrics],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(model, dm)
    trainer.test(model, datamodule=dm, verbose=False)
    return metrics.results["test"]["aca/success"], metrics.results["test"]["aca/clean_acc"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.0, 0.0025, 0.005, 0.01, 0.02, 0.05])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", module="lightning")
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    print(f"{'alpha':>7}  {'S(alpha) mean ± std':>20}  {'clean acc':>9}")
    for alpha in args.alphas:
        runs = [run_once(alpha, seed, args.epochs) for seed in range(args.seeds)]
        s = [r[0] for r in runs]
        acc = statistics.mean(r[1] for r in runs)
        spread = statistics.stdev(s) if len(s) > 1 else 0.0
        print(f"{alpha:>7.4f}  {statistics.mean(s):>12.3f} ± {spread:.3f}  {acc:>9.3f}", flush=True)


if __name__ == "__main__":
    main()
