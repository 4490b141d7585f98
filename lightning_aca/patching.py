"""Patch attributes of the user's objects for one fit and always put them back.

The firm's callbacks (``DPSGD``, ``GroupDRO``) change the user's LightningModule and datamodule
while they train: a wrapped ``training_step``, a private ``configure_optimizers``, a private
training loader, hooks on the layers. :class:`Patcher` records each change and undoes all of them
in reverse order; :class:`PatchingCallback` calls it when fit ends, normally (``teardown``) or by an
exception (``on_exception``: Lightning skips ``teardown`` hooks when fit fails), so a failed fit
leaves the user's objects as they were.

Example:
    >>> class Model:
    ...     def step(self):
    ...         return "own"
    >>> model, patcher = Model(), Patcher()
    >>> patcher.patch(model, "step", lambda: "patched")
    >>> model.step()
    'patched'
    >>> patcher.restore()
    >>> model.step(), "step" in vars(model)
    ('own', False)
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import lightning as L
from torch import nn
from typing_extensions import override

__all__ = ["Patcher", "PatchingCallback"]

_ABSENT = object()


class Patcher:
    """Sets attributes on objects for a while and restores each exactly.

    An attribute the instance held before gets its value back (``None`` included); one that came
    from the class is deleted from the instance again. Restoring runs in reverse order of patching, so patching one attribute twice restores the
    first value. Cleanup functions registered with :meth:`defer` run in the same order. A
    :class:`Patcher` can be used again after :meth:`restore`.
    """

    def __init__(self) -> None:
        self._undo = ExitStack()

    def patch(self, owner: Any, name: str, value: Any) -> None:
        """Set ``owner.name = value`` until :meth:`restore`."""
        if isinstance(owner, nn.Module) and any(
            name in held for held in (owner._parameters, owner._buffers, owner._modules)
        ):
            raise ValueError(
                f"{type(owner).__name__}.{name} is a parameter, buffer or submodule; Patcher only patches "
                "plain attributes such as methods."
            )
        previous = vars(owner).get(name, _ABSENT)
        self._undo.callback(self._put_back, owner, name, previous)
        setattr(owner, name, value)

    def defer(self, cleanup: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Call ``cleanup(*args, **kwargs)`` at :meth:`restore`, in order with the patches."""
        self._undo.callback(cleanup, *args, **kwargs)

    def restore(self) -> None:
        """Undo every patch and run every deferred cleanup, newest first; a no-op when there are none.

        Every step runs even if an earlier one raises; the error is raised afterwards.
        """
        self._undo.close()

    @staticmethod
    def _put_back(owner: Any, name: str, previous: Any) -> None:
        if previous is not _ABSENT:
            setattr(owner, name, previous)
        elif name in vars(owner):
            delattr(owner, name)


class PatchingCallback(L.Callback):
    """A callback whose :attr:`patcher` is restored when fit ends or fails.

    Subclasses patch in ``setup`` (or later hooks); they must call ``super().__init__()``, and
    ``super().teardown(...)``/``super().on_exception(...)`` if they override those hooks.
    """

    def __init__(self) -> None:
        self.patcher = Patcher()

    @override
    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.patcher.restore()

    @override
    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self.patcher.restore()
