"""Deprecated: the gradient strategies moved to :mod:`lightning_aca.gradient_strategies`.

Kept for one release. Importing it warns; the old names below still work, and so do imports of
the old submodules (``lightning_aca.online.callbacks`` …), which are the new modules.
"""

import importlib
import sys
import warnings

from lightning_aca.gradient_strategies import *  # noqa: F403
from lightning_aca.gradient_strategies import __all__ as _new_names
from lightning_aca.gradient_strategies.strategy import OnlineStrategy
from lightning_aca.gradient_strategies.theory import neutralization_critical_alpha
from lightning_aca.gradient_strategies.theta_star import Target, as_target

warnings.warn(
    "lightning_aca.online is deprecated; import from lightning_aca.gradient_strategies "
    "(OnlineStrategy is GradientStrategy, Target is ThetaStar, as_target is as_theta_star, "
    "neutralization_critical_alpha is neutralization_alpha_star).",
    FutureWarning,
    stacklevel=2,
)

_MOVED = {name: name for name in ("callbacks", "families", "functional", "hull", "strategy", "synthesis", "theory")}
_MOVED["targets"] = "theta_star"
for _old, _new in _MOVED.items():
    sys.modules[f"{__name__}.{_old}"] = importlib.import_module(f"lightning_aca.gradient_strategies.{_new}")
del _old, _new

__all__ = [*_new_names, "OnlineStrategy", "Target", "as_target", "neutralization_critical_alpha"]
