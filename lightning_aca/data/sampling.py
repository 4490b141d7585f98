"""Seeded batch orders shared by every engine: one shuffle and one Poisson stream per (seed, epoch).

A run's batches depend on its seed and the epoch alone, never on the global random state or on
which other runs train beside it, so the standard engine (one Trainer per run) and the stacked
engine (K runs as one model) draw the same shuffled mini-batches for the same seed, and a resumed
epoch draws the batches it drew before. Poisson sampling (each point joins a step's batch with
probability q independently) is the sampling DP-SGD's accounting assumes (Abadi et al. 2016;
Opacus's ``UniformWithReplacementSampler``).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Sampler

from lightning_aca.validation import non_negative_int


def epoch_generator(seed: int, epoch: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator on ``device`` determined by (seed, epoch) alone."""
    state = int(np.random.SeedSequence([int(seed), int(epoch)]).generate_state(1, dtype=np.uint64)[0] >> 1)
    return torch.Generator(device=device).manual_seed(state)


def shuffled_indices(seeds: list[int], epoch: int, n: int, device: torch.device | str = "cpu") -> Tensor:
    """``(K, n)``: one random permutation of the training set per seed, drawn on the CPU from its (seed, epoch).

    Drawn on the CPU whatever ``device`` is (then moved), so that every engine and every device
    gives a seed the same order.

    Example:
        >>> order = shuffled_indices([0, 1], epoch=0, n=5)
        >>> order.shape, sorted(order[0].tolist()), torch.equal(order[0], shuffled_indices([0], 0, 5)[0])
        (torch.Size([2, 5]), [0, 1, 2, 3, 4], True)
    """
    return torch.stack([torch.randperm(n, generator=epoch_generator(s, epoch)) for s in seeds]).to(device)


class SeededShuffle(Sampler[int]):
    """The training order of one run: a permutation of ``range(n)`` per epoch from (seed, epoch).

    Lightning calls :meth:`set_epoch` at the start of every training epoch, so epoch e draws
    ``shuffled_indices([seed], e, n)[0]`` — the order the stacked engine gives the same seed.

    Example:
        >>> sampler = SeededShuffle(5, seed=0)
        >>> sampler.set_epoch(1)
        >>> list(sampler) == shuffled_indices([0], epoch=1, n=5)[0].tolist()
        True
    """

    def __init__(self, n: int, seed: int) -> None:
        self.n = non_negative_int("n", n)
        self.seed = non_negative_int("seed", seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        return iter(shuffled_indices([self.seed], self.epoch, self.n)[0].tolist())

    def __len__(self) -> int:
        return self.n


def poisson_indices(
    seeds: list[int], epoch: int, n: int, sample_rate: float, steps: int, device: torch.device, multiple: int = 8
) -> tuple[Tensor, Tensor]:
    """Poisson samples of one epoch: indices ``(K, steps, B)`` and a mask ``(K, steps, B)`` of the real rows.

    Every point joins each step's batch with probability ``sample_rate`` independently (Opacus's
    ``UniformWithReplacementSampler``); B is the largest batch of the epoch over all models,
    rounded up to ``multiple``, and rows past a batch's size are padding.
    """

    def sample(seed: int) -> Tensor:
        return torch.rand(steps, n, generator=epoch_generator(seed, epoch, device), device=device) < sample_rate

    # each model's (steps, n) mask is drawn twice (count, then index) rather than held for all K at once
    counts = torch.stack([sample(s).sum(1) for s in seeds])
    width = max(int(counts.max()), 1)  # one host sync per epoch
    width = min(-(-width // multiple) * multiple, max(n, 1))
    positions = torch.arange(n, device=device).expand(steps, n)
    index = torch.zeros(len(seeds), steps, width + 1, dtype=torch.long, device=device)
    for k, seed in enumerate(seeds):
        mask = sample(seed)
        # the j-th sampled point of a step goes to column j; unsampled points to the spare last column
        column = torch.where(mask, mask.cumsum(1) - 1, width)
        index[k].scatter_(1, column, positions)
    valid = torch.arange(width, device=device) < counts[..., None]
    return index[..., :width].contiguous(), valid
