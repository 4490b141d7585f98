"""Where DP-SGD's time goes: torch.profiler over training steps with and without ``DPSGD``.

``python -m benchmarks.profile_dp [--batch-size 256] [--steps 30]`` prints the top operators by
self CPU time and by device time for a non-private and a private (Opacus hooks) epoch slice.
``--stacked K`` profiles the stacked engine instead: K runs of the ``mnist_dp`` recipe (real
MNIST-5k, MLP, DP-SGD σ = 1) trained together for 3 epochs, with eager steps and with each step
replayed as a CUDA graph.
"""

from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks.run import bare_trainer, cnn_module
from lightning_aca import DPSGD, SyntheticDataModule


def _profile(batch_size: int, steps: int, private: bool) -> str:
    data = SyntheticDataModule(n_train=batch_size * steps, n_test=100, image_shape=(28, 28), batch_size=batch_size)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    trainer = bare_trainer(device, 1, [DPSGD(noise_multiplier=1.0)] if private else [])
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities) as prof:
        trainer.fit(cnn_module(), data)
    sort = "self_cuda_time_total" if torch.cuda.is_available() else "self_cpu_time_total"
    title = f"== {'DPSGD (hooks)' if private else 'non-private'}, batch {batch_size}, {steps} steps"
    by_cpu = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)
    by_device = prof.key_averages().table(sort_by=sort, row_limit=12) if torch.cuda.is_available() else ""
    return f"{title}\n-- by self CPU time\n{by_cpu}\n-- by device time\n{by_device}"


def _profile_stacked(k: int, cuda_graphs: bool) -> str:
    """torch.profiler over a 3-epoch fit of ``k`` stacked ``mnist_dp`` runs (the first epoch left in)."""
    import tempfile

    from hydra import compose, initialize_config_module

    from lightning_aca.stacked.engine import build_stacked, fit

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    overrides = ["experiment=mnist_dp", "logger=none", "quiet=true", "trainer.max_epochs=3"]
    overrides.append("trainer=gpu" if device.type == "cuda" else "trainer=cpu")
    with tempfile.TemporaryDirectory() as tmp, initialize_config_module("lightning_aca.conf", version_base="1.3"):
        cfgs = []
        for i in range(k):
            cfg = compose("config", overrides=overrides)
            cfg.seed, cfg.output_dir = i, f"{tmp}/{i}"
            cfg.collective.alpha = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1)[i % 6]
            cfgs.append(cfg)
        module = build_stacked(cfgs, device=str(device))
        module.cuda_graphs = cuda_graphs
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with profile(activities=activities) as prof:
            fit(module, cfgs[0], device)
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    steps = module.steps_per_epoch
    title = f"== stacked DP-SGD, K={k}, {steps} steps an epoch, 3 epochs, {'CUDA graphs' if cuda_graphs else 'eager'}"
    by_cpu = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)
    by_device = prof.key_averages().table(sort_by=sort, row_limit=12) if device.type == "cuda" else ""
    return f"{title}\n-- by self CPU time\n{by_cpu}\n-- by device time\n{by_device}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--stacked", type=int, metavar="K", help="profile K stacked mnist_dp runs instead")
    args = parser.parse_args()
    if args.stacked:
        for cuda_graphs in (False, True) if torch.cuda.is_available() else (False,):
            print(_profile_stacked(args.stacked, cuda_graphs))
        return
    for private in (False, True):
        print(_profile(args.batch_size, args.steps, private))


if __name__ == "__main__":
    main()
