"""The collective's gradient-based strategies (Hardt et al. 2023, §4–5): online, as Lightning callbacks.

A collective that sees the firm's current model rewrites its members' points at every training
step: :class:`GradientNeutralization` makes a target θ* stationary, :class:`GradientControl` steers
SGD to θ*. θ* is a :class:`Target` (:class:`LogitShift`, :class:`ParameterTarget`), a state dict or
a checkpoint path; the members' stored data stays unchanged (:class:`OnlineStrategy`). Thresholds
are derived in :mod:`lightning_aca.online.theory`.
"""

from lightning_aca.online.callbacks import GradientControl, GradientNeutralization
from lightning_aca.online.families import AutogradModel, GradientFamily, LinearSoftmax
from lightning_aca.online.functional import (
    clip_per_sample,
    control_member_sum,
    linear_softmax_gradients,
    neutralization_member_sum,
)
from lightning_aca.online.hull import hull_radius, hull_weights
from lightning_aca.online.strategy import OnlineStrategy
from lightning_aca.online.synthesis import synthesize_by_search, synthesize_from_hull
from lightning_aca.online.targets import LogitShift, ParameterTarget, Target, as_target
from lightning_aca.online.theory import linear_member_gradient_bound, neutralization_critical_alpha

__all__ = [
    "AutogradModel",
    "GradientControl",
    "GradientFamily",
    "GradientNeutralization",
    "LinearSoftmax",
    "LogitShift",
    "OnlineStrategy",
    "ParameterTarget",
    "Target",
    "as_target",
    "clip_per_sample",
    "control_member_sum",
    "hull_radius",
    "hull_weights",
    "linear_member_gradient_bound",
    "linear_softmax_gradients",
    "neutralization_critical_alpha",
    "neutralization_member_sum",
    "synthesize_by_search",
    "synthesize_from_hull",
]
