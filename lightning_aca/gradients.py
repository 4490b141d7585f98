"""Per-sample gradients and DP-SGD's per-sample clipping, for the stacked engine and the gradient strategies.

Per-sample gradients with ``torch.func`` (``vmap(grad)`` over the examples of a batch) and the
clipping of DP-SGD (Abadi et al. 2016, Algorithm 1): each example's gradient g scaled by
min(1, C / (‖g‖ + 10⁻⁶)), the factor Opacus applies, so that a member's gradient counts as the
firm's DP-SGD counts it.
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
    """‖gᵢ‖ over all parameters of each example: ``{name: (B, ...)}`` → ``(B,)``.

    Example:
        >>> per_sample_norms({"weight": torch.tensor([[3.0], [0.0]]), "bias": torch.tensor([4.0, 1.0])})
        tensor([5., 1.])
    """
    return torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(g.reshape(g.shape[0], -1), dim=1) for g in per_sample.values()]), dim=0
    )


def per_sample_gradients(
    model: nn.Module, params: Params, buffers: Params, x: Tensor, y: Tensor
) -> tuple[Params, Tensor]:
    """Per-example gradients ``{name: (B, ...)}`` and losses ``(B,)`` of softmax cross-entropy on ``(x, y)``.

    ``model`` is called with ``params`` and ``buffers`` in place of its own state
    (``torch.func.functional_call``): a stateless copy on the meta device serves, and a module's
    buffers not given are its own.
    """

    def loss(p: Params, b: Params, xs: Tensor, ys: Tensor) -> Tensor:
        return F.cross_entropy(functional_call(model, (p, b), (xs[None],)), ys[None])

    return vmap(grad_and_value(loss), in_dims=(None, None, 0, 0), randomness="different")(params, buffers, x, y)
