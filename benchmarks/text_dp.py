"""DP-SGD on a transformer: step time and peak memory of Opacus's hooks vs ghost clipping, and of ERM.

Opacus's ``grad_sample_mode="hooks"`` materialises every parameter's per-sample gradient
(batch × 22.7M floats for MiniLM-L6); ``"ghost"`` (ghost clipping, Li et al. 2022; Bu et al. 2023)
computes per-sample gradient norms without them, at the price of a second backward pass and a
loss computed through Opacus's wrapped criterion. Both clip each example to C and add the same
noise, so they train the same private model; this measures which is cheaper at the text
experiment's sizes. Plain Opacus, no Lightning: the numbers are the engines', not the callback's.

``python -m benchmarks.text_dp --model PATH --device cuda [--batch-sizes 32,64] [--seq-len 128]``
prints one table row per (mode, batch size) and writes it to ``benchmarks/results/text_dp-<device>.md``.
Without ``--model`` it uses the shipped MiniLM-L6.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lightning_aca.models.text import load_sequence_classifier

RESULTS = Path(__file__).parent / "results"


class _Encoder(nn.Module):
    """``input_ids -> logits`` with position ids expanded to the batch (as ``TextClassifier`` passes them)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids).contiguous()
        return self.model(input_ids=input_ids, position_ids=positions).logits


def _loader(batch_size: int, seq_len: int, vocab: int, steps: int) -> torch.utils.data.DataLoader:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(
        min(1000, vocab - 1), vocab, (batch_size * steps, seq_len), generator=generator
    )  # past the special tokens
    labels = torch.randint(0, 2, (batch_size * steps,), generator=generator)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(ids, labels), batch_size=batch_size)


def measure(
    model_path: str | None, device: str, mode: str, batch_size: int, seq_len: int, steps: int
) -> dict[str, Any]:
    """Seconds per step (after 3 warm-up steps) and peak device memory of ``steps`` training steps."""
    from opacus import PrivacyEngine

    torch.manual_seed(0)
    module = _Encoder(load_sequence_classifier(model_path, 2).train()).to(device)
    optimizer = torch.optim.AdamW(module.parameters(), lr=5e-5)
    criterion = nn.CrossEntropyLoss()
    loader = _loader(batch_size, seq_len, module.model.config.vocab_size, steps + 3)
    if mode != "erm":
        made = PrivacyEngine().make_private(
            module=module,
            optimizer=optimizer,
            data_loader=loader,
            criterion=criterion,
            noise_multiplier=1.0,
            max_grad_norm=1.0,
            poisson_sampling=False,  # equal batch sizes: the comparison is per step
            grad_sample_mode=mode,
        )
        module, optimizer = made[0], made[1]
        criterion = made[2] if mode == "ghost" else criterion
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for ids, labels in loader:
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        loss = criterion(module(ids.to(device)), labels.to(device))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.startswith("cuda") else float("nan")
    step = sum(times[3:]) / len(times[3:])
    return {"mode": mode, "batch_size": batch_size, "seq_len": seq_len, "step_s": step, "peak_gib": peak}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="Hugging Face model directory or name (default: shipped MiniLM)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-sizes", default="32,64")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--modes", default="erm,hooks,ghost")
    args = parser.parse_args(argv)
    name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "CPU"
    lines = [
        f"# DP-SGD on {args.model or 'MiniLM-L6 (shipped)'}: hooks vs ghost clipping ({name}, seq len {args.seq_len})",
        "",
        "| mode | batch | s/step | peak GiB |",
        "|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    for batch_size in (int(b) for b in args.batch_sizes.split(",")):
        for mode in args.modes.split(","):
            row = measure(args.model, args.device, mode, batch_size, args.seq_len, args.steps)
            lines.append(f"| {mode} | {batch_size} | {row['step_s']:.4f} | {row['peak_gib']:.2f} |")
            print(lines[-1], flush=True)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"text_dp-{name.replace(' ', '_')}.md"
    out.write_text("\n".join(lines) + "\n")
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
