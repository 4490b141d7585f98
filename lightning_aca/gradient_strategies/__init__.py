"""The collective's gradient strategies (Hardt et al. 2023, §4–5), as Lightning callbacks.

A collective that sees the firm's current model rewrites its members' points at every training
step: :class:`GradientNeutralization` makes θ* stationary, :class:`GradientControl` steers SGD to
θ*. θ* is a :class:`ThetaStar` (:class:`LogitShift`, :class:`ParameterTarget`), a state dict or a
checkpoint path; the members' stored data stays unchanged (:class:`GradientStrategy`). When a
collective is large enough is computed in :mod:`lightning_aca.gradient_strategies.theory`.
"""

from lightning_aca.gradient_strategies.callbacks import GradientControl, GradientNeutralization
from lightning_aca.gradient_strategies.families import AutogradModel, GradientFamily, LinearSoftmax
from lightning_aca.gradient_strategies.functional import (
    clip_per_sample,
    control_member_sum,
    linear_softmax_gradients,
    neutralization_member_sum,
)
from lightning_aca.gradient_strategies.hull import hull_radius, hull_weights
from lightning_aca.gradient_strategies.strategy import GradientStrategy
from lightning_aca.gradient_strategies.synthesis import synthesize_by_search, synthesize_from_hull
from lightning_aca.gradient_strategies.theory import linear_member_gradient_bound, neutralization_alpha_star
from lightning_aca.gradient_strategies.theta_star import LogitShift, ParameterTarget, ThetaStar, as_theta_star

__all__ = [
    "AutogradModel",
    "GradientControl",
    "GradientFamily",
    "GradientNeutralization",
    "GradientStrategy",
    "LinearSoftmax",
    "LogitShift",
    "ParameterTarget",
    "ThetaStar",
    "as_theta_star",
    "clip_per_sample",
    "control_member_sum",
    "hull_radius",
    "hull_weights",
    "linear_member_gradient_bound",
    "linear_softmax_gradients",
    "neutralization_alpha_star",
    "neutralization_member_sum",
    "synthesize_by_search",
    "synthesize_from_hull",
]
