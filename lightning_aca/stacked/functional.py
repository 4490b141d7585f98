"""K copies of one network as stacked tensors: forward, gradients and per-sample gradients with ``torch.func``.

The model-ensembling pattern of ``torch.func`` (``stack_module_state`` + ``vmap`` over
``functional_call``): parameters of K networks are stacked along a leading dimension and one
vectorized call computes all K forwards or gradients. The per-sample gradients of DP-SGD
(Abadi et al. 2016) are ``vmap(grad)`` over samples inside the ``vmap`` over models.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from lightning_aca import gradients

Params = gradients.Params


def stack(nets: Sequence[nn.Module]) -> tuple[Params, Params, nn.Module]:
    """(stacked parameters, stacked buffers, a stateless copy on the meta device to call them with)."""
    params, buffers = stack_module_state(list(nets))
    params = {k: v.detach().clone() for k, v in params.items()}
    buffers = {k: v.detach().clone() for k, v in buffers.items()}
    return params, buffers, copy.deepcopy(nets[0]).to("meta")


def batch_gradients(
    base: nn.Module,
    params: Params,
    buffers: Params,
    x: Tensor,
    y: Tensor,
    weigh: Callable[[Tensor], Tensor] | None = None,
) -> tuple[Params, Tensor]:
    """Gradients of each model's weighted cross-entropy on its own batch and the per-sample losses ``(K, B)``.

    ``x`` ``(K, B, ...)``; model k's objective is Σ_b w_kb · l_kb with ``weigh(losses)`` ``(K, B)``
    computed from the detached per-sample losses (Group DRO's reweighting), by default 1/B (the
    mean). A vmapped forward and one reverse pass through ordinary autograd: the K objectives are
    summed, and model k's parameters reach only objective k, so the gradient of the sum is each
    model's own (1.5–2× cheaper than ``vmap(grad)`` for small networks).
    """
    leaves = {name: p.detach().requires_grad_(True) for name, p in params.items()}
    with torch.enable_grad():
        scores = vmap(lambda p, b, xs: functional_call(base, (p, b), (xs,)), randomness="different")(leaves, buffers, x)
        losses = F.cross_entropy(scores.flatten(0, 1), y.flatten(), reduction="none").view(y.shape)
        weights = torch.full_like(losses, 1.0 / y.shape[1]) if weigh is None else weigh(losses.detach())
        grads = torch.autograd.grad((losses * weights).sum(), list(leaves.values()))
    return dict(zip(leaves, grads, strict=True)), losses.detach()


def per_sample_gradients(
    base: nn.Module, params: Params, buffers: Params, x: Tensor, y: Tensor
) -> tuple[Params, Tensor]:
    """Per-example gradients ``(K, B, ...)`` and losses ``(K, B)`` of every model on its own batch.

    :func:`lightning_aca.gradients.per_sample_gradients` of one model, vmapped over the K models.
    """
    return vmap(partial(gradients.per_sample_gradients, base), randomness="different")(params, buffers, x, y)


def logits(base: nn.Module, params: Params, buffers: Params, x: Tensor) -> Tensor:
    """``(K, N, C)`` scores of every model on the same inputs ``x`` ``(N, ...)`` (modules in eval mode)."""
    base.eval()
    try:
        return vmap(lambda p, b: functional_call(base, (p, b), (x,)))(params, buffers)
    finally:
        base.train()


def check_stackable(net: nn.Module, input_shape: Sequence[int], private: bool) -> None:
    """Raise ``ValueError`` with the reason if K copies of ``net`` cannot be trained stacked (under DP if ``private``)."""
    if private:
        from lightning_aca.firm.dp import check_private_trainable

        check_private_trainable(net, "DP-SGD")
    nets = [copy.deepcopy(net).cpu() for _ in range(2)]
    params, buffers, base = stack(nets)
    x = torch.zeros(2, 2, *input_shape)
    y = torch.zeros(2, 2, dtype=torch.long)
    try:
        batch_gradients(base, params, buffers, x, y)
        if private:
            per_sample_gradients(base, params, buffers, x, y)
        logits(base, params, buffers, x[0])
    except Exception as err:  # torch.func's own message says which operation cannot be vectorized
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"torch.func cannot train {type(net).__name__} stacked ({type(err).__name__}: {reason}); "
            "run it with the standard launcher."
        ) from err


def activation_elements(net: nn.Module, input_shape: Sequence[int]) -> int:
    """Elements of every module's output for one input: the activations one example keeps for backward."""
    total = 0

    def count(module: nn.Module, inputs: object, output: object) -> None:
        nonlocal total
        if isinstance(output, Tensor) and not list(module.children()):
            total += output.numel()

    probe = copy.deepcopy(net).cpu().eval()
    hooks = [m.register_forward_hook(count) for m in probe.modules()]
    try:
        with torch.no_grad():
            probe(torch.zeros(1, *input_shape))
    finally:
        for h in hooks:
            h.remove()
    return total + math.prod(input_shape)


def bytes_per_model(
    net: nn.Module, input_shape: Sequence[int], batch_size: int, eval_batch_size: int, private: bool
) -> int:
    """A conservative float32 estimate of one stacked model's training memory.

    Parameters, gradients and optimizer state (Adam's two moments: 4·P), the batch's activations kept for backward and their
    gradients (2·A·B), under DP-SGD also the per-sample gradients (P·B) and the clipped copies
    the einsum reads (P·B), and the evaluation batch's activations (A·B_eval); doubled for the
    allocator's slack.
    """
    p = sum(t.numel() for t in net.parameters())
    a = activation_elements(net, input_shape)
    elements = 4 * p + 2 * a * batch_size + a * eval_batch_size
    if private:
        elements += 2 * p * batch_size
    return 2 * 4 * elements
