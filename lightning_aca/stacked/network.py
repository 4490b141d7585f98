"""Which LightningModules the stacked engine trains: the network protocol.

A LightningModule is trained stacked when

1. it keeps its network as ``self.net``, a plain ``nn.Module`` that maps a batch of inputs to
   class scores (as lightning-hydra-template's ``MNISTLitModule`` keeps its ``SimpleDenseNet``);
2. its ``training_step`` on an ``(x, y)`` batch returns the cross-entropy of ``net(x)`` against
   ``y``: the mean, or the per-sample losses (what ``GroupDRO`` reduces), alone or as a dict's
   ``"loss"``;
3. its ``configure_optimizers`` returns one SGD, Adam or AdamW optimizer, with at most one
   learning-rate scheduler that needs no monitored metric
   (:func:`lightning_aca.stacked.optim.optimizer_reason`).

Each condition is checked on the module itself (2 by running ``training_step`` once on a probe
batch), and :func:`network_reason` says in one line which one fails and what to do instead.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: the attribute that holds a module's network
NETWORK_ATTRIBUTE = "net"
_STANDARD = "run it with hydra/launcher=basic (or joblib)"


def network_of(module: Any) -> nn.Module:
    """The module's network (``module.net``); ``ValueError`` naming the protocol if it has none."""
    net = getattr(module, NETWORK_ATTRIBUTE, None)
    if not isinstance(net, nn.Module):
        raise ValueError(
            f"{type(module).__name__} keeps no network as self.{NETWORK_ATTRIBUTE} (an nn.Module mapping inputs to "
            f"class scores), which the stacked engine trains; keep it there, or {_STANDARD}"
        )
    return net


def _loss_reason(module: Any, net: nn.Module, input_shape: Sequence[int]) -> str | None:
    """None if ``training_step`` returns cross-entropy of ``net`` on a probe batch, else why not."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(4, *input_shape, generator=generator)
    probe = copy.deepcopy(module).cpu().eval()  # no dropout: the same scores twice
    probe_net = network_of(probe)
    with torch.no_grad():
        scores = probe_net(x)
    y = torch.arange(4) % scores.shape[-1]
    expected = F.cross_entropy(scores, y, reduction="none")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # self.log outside a Trainer
        try:
            out = probe.training_step((x, y), 0)
        except Exception as err:
            return f"{type(module).__name__}.training_step fails on an (x, y) batch ({type(err).__name__}: {err})"
    loss = out.get("loss") if isinstance(out, Mapping) else out
    if isinstance(loss, Tensor) and (
        (loss.dim() == 0 and torch.allclose(loss, expected.mean(), atol=1e-5))
        or (loss.shape == expected.shape and torch.allclose(loss, expected, atol=1e-5))
    ):
        return None
    return (
        f"{type(module).__name__}.training_step does not return the cross-entropy of self.{NETWORK_ATTRIBUTE}(x) "
        f"(mean or per sample), the objective the stacked engine trains; {_STANDARD}"
    )


def network_reason(module: Any, input_shape: Sequence[int], private: bool) -> str | None:
    """None if the stacked engine can train ``module`` (under DP-SGD if ``private``), else a one-line reason."""
    from lightning.pytorch.utilities.model_helpers import is_overridden

    from lightning_aca.stacked.functional import check_stackable
    from lightning_aca.stacked.optim import optimizer_reason

    try:
        net = network_of(module)
    except ValueError as err:
        return str(err)
    if is_overridden("lr_scheduler_step", module):
        return (
            f"{type(module).__name__} overrides lr_scheduler_step, which the stacked schedule does not run; {_STANDARD}"
        )
    reason = optimizer_reason(module.configure_optimizers()) or _loss_reason(module, net, input_shape)
    if reason is not None:
        return reason
    try:
        check_stackable(net, input_shape, private)
    except ValueError as err:
        return str(err).splitlines()[0]
    return None
