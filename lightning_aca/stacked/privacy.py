"""DP-SGD for K stacked models: per-sample clipping, Gaussian noise and Opacus's accounting.

Abadi et al. 2016, Algorithm 1 (clip each example's gradient to norm C, add N(0, σ²C²) to the
sum, divide by the expected batch size), with Poisson sampling at rate q, as Opacus runs it for
the ``DPSGD`` callback (Solanki et al. 2025, arXiv 2505.05707, the setting of the DP sweeps).
Every number that decides ε is computed as Opacus computes it: q = 1/len(train loader), steps
per epoch = int(1/q), expected batch size = int(n·q), σ for a target ε as the ``DPSGD`` callback
calibrates it (:func:`lightning_aca.firm.dp.noise_multiplier_for`), and ε as the record gives it
(:func:`lightning_aca.firm.dp.privacy_fields`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.func import vmap

from lightning_aca.gradients import clip_factor, per_sample_norms


@dataclass(frozen=True)
class PoissonPlan:
    """Opacus's Poisson-sampling numbers for a training loader of ``n`` points and ``batches`` batches."""

    n: int
    sample_rate: float
    steps_per_epoch: int
    expected_batch_size: int

    @classmethod
    def for_loader(cls, n: int, batches: int) -> PoissonPlan:
        """q = 1/batches, steps = int(1/q), expected batch = int(n·q) (``PrivacyEngine.make_private``).

        Example:
            >>> PoissonPlan.for_loader(n=1347, batches=22)  # digits' training set, batch size 64
            PoissonPlan(n=1347, sample_rate=0.045454545454545456, steps_per_epoch=22, expected_batch_size=61)
        """
        sample_rate = 1 / batches
        return cls(n, sample_rate, int(1 / sample_rate), int(n * sample_rate))


def clipped_sum(per_sample: dict[str, Tensor], weights: Tensor, max_grad_norm: Tensor) -> dict[str, Tensor]:
    """Σᵢ wᵢ · gᵢ · min(1, C / (‖gᵢ‖ + 1e-6)) for each model: ``(K, B, ...)`` grads → ``(K, ...)`` sums.

    ``weights`` ``(K, B)`` is the Poisson mask (1 for sampled rows, 0 for padding); ``max_grad_norm``
    ``(K,)`` is each model's C. The norm is over all parameters of one example (Abadi et al. 2016),
    the factor :func:`lightning_aca.gradients.clip_factor`.
    """
    factor = clip_factor(vmap(per_sample_norms)(per_sample), max_grad_norm[:, None]) * weights
    return {
        name: torch.bmm(factor[:, None], g.flatten(2)).view(g.shape[:1] + g.shape[2:]) for name, g in per_sample.items()
    }


def draw_noise(summed_like: dict[str, Tensor], generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """Standard normal draws shaped like each model's summed gradient, in parameter order."""
    return {
        name: torch.randn(t.shape, generator=generator, device=t.device, dtype=t.dtype)
        for name, t in summed_like.items()
    }


def privatize(
    summed: dict[str, Tensor], noise_std: Tensor, expected_batch_size: int, noise: dict[str, Tensor]
) -> dict[str, Tensor]:
    """(Σ clipped + σₖCₖ·z) / expected batch size, per model; ``noise_std`` ``(K,)`` is σₖ·Cₖ, z ~ N(0, 1) (:func:`draw_noise`)."""
    out = {}
    for name, s in summed.items():
        std = noise_std.view(-1, *([1] * (s.dim() - 1))).to(s.dtype)
        out[name] = (s + std * noise[name]) / expected_batch_size
    return out
