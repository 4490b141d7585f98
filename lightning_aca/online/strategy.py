"""``OnlineStrategy``: the data strategy of a collective that acts online, through a gradient callback.

Hardt et al. 2023, §4–5: in gradient neutralization and gradient control the collective does not
fix its points in advance; it rewrites them at every training step, seeing the current model. The
stored training data therefore stays as it is (this strategy changes nothing), and
:class:`~lightning_aca.online.GradientNeutralization` / :class:`~lightning_aca.online.GradientControl`
rewrite the members' points in each batch (use ``return_membership=True`` so batches say who the
members are).
"""

from __future__ import annotations

from typing import Any

from lightning_aca.collective.strategies import Strategy


class OnlineStrategy(Strategy):
    """Members keep their stored points; a gradient callback rewrites them online.

    Every training point is eligible, so members are a uniform sample of the data (their own points
    then estimate the clean data's gradient, as ``rest_gradient="estimate"`` assumes).

    Evaluation (what :class:`~lightning_aca.CollectiveMetrics` reports as ``aca/success``):

    - with ``target=y*`` (a classification goal, e.g. the target rule ``LogitShift(target_class=y*)``):
      the held-out inputs whose true label is not y*, shown unchanged; success is predicting y*.
    - with ``target=None`` (θ* given directly, no class goal): every held-out input with its true
      label, so ``aca/success`` is plain held-out accuracy and measures no goal of the collective;
      read ``aca/param_distance`` instead.

    Example:
        >>> import torch
        >>> h = OnlineStrategy(target=1)
        >>> h.modify(torch.ones(2), 0)[1], h.evaluation_mask(torch.tensor([0, 1, 2])).tolist()
        (0, [True, False, True])
    """

    def __init__(self, target: int | None = None) -> None:
        if target is not None and (isinstance(target, bool) or not isinstance(target, int) or target < 0):
            raise ValueError(f"OnlineStrategy target must be None or a class index y* >= 0, got {target!r}.")
        self.target = target

    def member_input(self, x: Any) -> Any:
        return x

    def member_label(self, y: Any) -> Any:
        return y

    def evaluation_input(self, x: Any) -> Any:
        return x

    def success_label(self, y: Any) -> Any:
        return y if self.target is None else super().success_label(y)

    def __repr__(self) -> str:
        return f"OnlineStrategy(target={self.target})"
