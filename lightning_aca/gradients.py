"""Per-sample gradients (``torch.func``) and DP-SGD's per-sample clipping (Abadi et al. 2016, Algorithm 1).

Shared by the stacked engine and the gradient strategies, so both clip as the firm's Opacus does.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad_and_value, vmap

Params = dict[str, Tensor]


def clip_factor(norms: Tensor, max_norm: float | Tensor) -> Tensor:
    """min(1, C / (‖g‖ + 10⁻⁶)) for per-sample norms ‖g‖: Opacus's clip factor (10⁻⁶ guards a zero gradient).

    Example:
        >>> clip_factor(torch.tensor([5.0, 0.5]), max_norm=1.0)
        tensor([0.2000, 1.0000])
    """
    return (max_norm / (norms + 1e-6)).clamp(max=1.0)


def per_sample_norms(per_sample: Mapping[str, Tensor]) -> Tensor:
    """‖gᵢ‖ over all parameters of each example: ``{name: (B, ...)}`` → ``(B,)``."""
    return torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(g.reshape(g.shape[0], -1), dim=1) for g in per_sample.values()]), dim=0
    )


def per_sample_gradients(
    model: nn.Module, params: Params, buffers: Params, x: Tensor, y: Tensor
) -> tuple[Params, Tensor]:
    """Per-example gradients ``{name: (B, ...)}`` and losses ``(B,)`` of softmax cross-entropy on ``(x, y)``.

    ``model`` runs with ``params`` and ``buffers`` for its state (``functional_call``); what they omit is its own.
    """

    def loss(p: Params, b: Params, xs: Tensor, ys: Tensor) -> Tensor:
        return F.cross_entropy(functional_call(model, (p, b), (xs[None],)), ys[None])

    return vmap(grad_and_value(loss), in_dims=(None, None, 0, 0), randomness="different")(params, buffers, x, y)
