"""Where DP-SGD's time goes: torch.profiler over training steps with and without ``DPSGD``.

``python -m benchmarks.profile_dp [--batch-size 256] [--steps 30]`` prints the top operators by
self CPU time and by device time for a non-private and a private (Opacus hooks) epoch slice.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    for private in (False, True):
        print(_profile(args.batch_size, args.steps, private))


if __name__ == "__main__":
    main()
