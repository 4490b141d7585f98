"""The gradient arithmetic of the gradient strategies, as plain tensor functions.

Hardt, Mazumdar, Mendler-Dünner, Zrnic, "Algorithmic Collective Action in Machine Learning",
ICML 2023 (arXiv 2302.04262), §4–5: when the firm trains by gradient descent, the collective
chooses its members' points so that their share of the gradient steers the model. The firm's
step on a batch of n points, m of them members, is

    θ_{t+1} = θ_t − (η / n)·(S_mem + S_rest),    S = Σ_i ∇ℓ(θ_t; z_i) over the group,

so everything the collective controls is S_mem. Derived here, not quoted; derivations and
provenance: ``docs/theory.md``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lightning_aca.gradients import clip_factor
from lightning_aca.validation import real


def check_feature_bounds(feature_bounds: tuple[float, float]) -> tuple[float, float]:
    """``(low, high)`` as floats: a pair of finite numbers with low < high (``TypeError`` if not a pair)."""
    try:
        low, high = feature_bounds
    except (TypeError, ValueError):
        raise TypeError(
            f"feature_bounds must be a pair (low, high), the box every input entry of a member's point stays in "
            f"(e.g. (0, 1) for images in [0, 1]); got {feature_bounds!r}."
        ) from None
    low = real("feature_bounds low", low)
    high = real("feature_bounds high", high, low=low, low_open=True)
    return low, high


def linear_softmax_gradients(weight: Tensor, bias: Tensor, inputs: Tensor, labels: Tensor) -> Tensor:
    """Per-sample gradients of softmax cross-entropy for logits ``W·x + b``, flattened as ``[vec(W), b]``.

    For ℓ(θ; x, y) = −log softmax(Wx + b)_y with p = softmax(Wx + b): ∂ℓ/∂W = (p − e_y)·xᵀ and
    ∂ℓ/∂b = p − e_y. Each gradient is the rank-one matrix (p − e_y)·[x, 1]ᵀ, so
    ‖∇ℓ‖ = ‖p − e_y‖·‖[x, 1]‖ ≤ √2·‖[x, 1]‖ (‖p − e_y‖² = (1 − p_y)² + Σ_{k≠y} p_k² ≤ 2(1 − p_y)²).

    Args:
        weight: ``(K, d)``.
        bias: ``(K,)``.
        inputs: ``(n, ...)``, flattened to ``(n, d)``.
        labels: ``(n,)`` class indices.

    Returns:
        ``(n, K·d + K)``: per point, the weight gradient row-major then the bias gradient (the order
        of ``nn.Linear.parameters()``).

    Example:
        >>> g = linear_softmax_gradients(torch.zeros(2, 1), torch.zeros(2), torch.tensor([[2.0]]), torch.tensor([0]))
        >>> g.tolist()  # p = (½, ½), p − e_0 = (−½, ½), x = 2
        [[-1.0, 1.0, -0.5, 0.5]]
    """
    x = inputs.reshape(len(inputs), -1)
    residual = torch.softmax(x @ weight.T + bias, dim=-1) - F.one_hot(labels, weight.shape[0]).to(x.dtype)
    return torch.cat([(residual[:, :, None] * x[:, None, :]).flatten(1), residual], dim=1)


def clip_per_sample(gradients: Tensor, max_norm: float | None) -> Tensor:
    """Each row scaled by min(1, C / (‖row‖ + 10⁻⁶)) (:func:`lightning_aca.gradients.clip_factor`), DP-SGD's clipping.

    ``max_norm=None`` returns the gradients unchanged.

    Example:
        >>> clip_per_sample(torch.tensor([[3.0, 4.0], [0.3, 0.4]]), max_norm=1.0).norm(dim=1)
        tensor([1.0000, 0.5000])
    """
    if max_norm is None:
        return gradients
    return gradients * clip_factor(gradients.norm(dim=1, keepdim=True), max_norm)


def neutralization_member_sum(rest_sum: Tensor) -> Tensor:
    """S_mem that makes θ* stationary for the batch: S_mem = −S_rest(θ*).

    Gradient neutralization (Hardt et al. 2023, §4): the batch gradient at θ* is
    (S_mem + S_rest)/n, which vanishes iff S_mem = −S_rest. Over the population this reads
    α·E_{P*}[∇ℓ(θ*)] = −(1 − α)·∇L_{P₀}(θ*).
    """
    return -rest_sum


def control_member_sum(gap: Tensor, rest_sum: Tensor, normalizer: float, lr: float, rate: float) -> Tensor:
    """S_mem that makes one SGD step close a fraction ``rate`` of the gap θ_t − θ* (``gap``).

    Gradient control (Hardt et al. 2023, §5), derived for plain SGD: the collective wants
    θ_{t+1} − θ* = (1 − κ)(θ_t − θ*), i.e. (η/n)(S_mem + S_rest) = κ(θ_t − θ*), so

        S_mem = n·(κ/η)·(θ_t − θ*) − S_rest(θ_t).

    If the members realize it at every step, ‖θ_t − θ*‖ = (1 − κ)^t·‖θ_0 − θ*‖. ``normalizer`` is
    the n the firm divides the summed gradient by (the batch size, or DP-SGD's expected batch size).

    Example:
        >>> control_member_sum(torch.tensor([1.0]), torch.tensor([2.0]), normalizer=4, lr=0.5, rate=0.5).tolist()
        [2.0]
    """
    return normalizer * (rate / lr) * gap - rest_sum
