"""``GradientStrategy``: the data strategy of a collective that acts through a gradient callback.

Hardt et al. 2023, §4–5: in gradient neutralization and gradient control the collective does not
fix its points in advance; it rewrites them at every training step, seeing the current model. The
stored training data therefore stays as it is (this strategy changes nothing), and
:class:`~lightning_aca.gradient_strategies.GradientNeutralization` /
:class:`~lightning_aca.gradient_strategies.GradientControl` rewrite the members' points in each
batch (use ``return_membership=True`` so batches say who the members are).
"""

from __future__ import annotations

from typing import Any

from lightning_aca.collective.strategies import Strategy
from lightning_aca.validation import non_negative_int


class GradientStrategy(Strategy):
    """Members keep their stored points; a gradient callback rewrites them at every step.

    Every training point is eligible, so members are a uniform sample of the data (their own points
    then estimate the clean data's gradient, as ``rest_gradient="estimate"`` assumes).

    Evaluation (what :class:`~lightning_aca.CollectiveMetrics` reports as ``aca/success``):

    - with ``target_class=y*`` (a classification goal, e.g. θ* = ``LogitShift(target_class=y*)``):
      the held-out inputs whose true label is not y*, shown unchanged; success is predicting y*.
    - with ``target_class=None`` (θ* given directly, no class goal): every held-out input with its
      true label, so ``aca/success`` is plain held-out accuracy and measures no goal of the
      collective; read ``aca/param_distance`` instead.

    Args:
        target_class: y*, the class the collective wants predicted, or ``None``.

    Example:
        >>> import torch
        >>> h = GradientStrategy(target_class=1)
        >>> h.modify(torch.ones(2), 0)[1], h.evaluation_mask(torch.tensor([0, 1, 2])).tolist()
        (0, [True, False, True])
    """

    def __init__(self, target_class: int | None = None) -> None:
        self.target_class = None if target_class is None else non_negative_int("target_class", target_class)

    def member_input(self, x: Any) -> Any:
        return x

    def member_label(self, y: Any) -> Any:
        return y

    def evaluation_input(self, x: Any) -> Any:
        return x

    def success_label(self, y: Any) -> Any:
        return y if self.target_class is None else super().success_label(y)

    def __repr__(self) -> str:
        return f"GradientStrategy(target_class={self.target_class})"
