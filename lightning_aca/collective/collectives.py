"""Several collectives on one training set: named (strategy, α) pairs with disjoint memberships.

Karan, Vincent, Karahalios, Sundaram (FAccT 2025) study collectives with different goals acting
on one platform: each plants its own signal or target, and a user joins at most one. A
:class:`Collective` names one of them; :func:`select_disjoint_members` decides who joins which.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from lightning_aca.collective.strategies import Strategy
from lightning_aca.validation import fraction

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Collective:
    """One collective: its name (used in metric keys ``aca/success/<name>`` and records), strategy and α.

    Example:
        >>> from lightning_aca import PixelPatch, SignalPlanting
        >>> Collective("first", SignalPlanting(PixelPatch(2), target_class=0), 0.02).alpha
        0.02
    """

    name: str
    strategy: Strategy
    alpha: float

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(
                f"a collective's name must be a letter followed by letters, digits or '_' (it becomes a metric key "
                f"aca/success/<name>), got {self.name!r}."
            )
        if not isinstance(self.strategy, Strategy):
            raise TypeError(
                f"collective {self.name!r}: strategy must be a Strategy (e.g. SignalPlanting), "
                f"got {type(self.strategy).__name__}."
            )
        object.__setattr__(self, "alpha", fraction(f"collective {self.name!r}'s alpha", self.alpha))


def check_collectives(collectives: Iterable[Collective]) -> list[Collective]:
    """``collectives`` as a list: at least one, each a :class:`Collective`, names unique."""
    out = list(collectives)
    if not out:
        raise ValueError("collectives is empty: give at least one Collective(name, strategy, alpha).")
    for item in out:
        if not isinstance(item, Collective):
            raise TypeError(
                f"collectives must hold Collective(name, strategy, alpha) items, got {type(item).__name__}."
            )
    names = [c.name for c in out]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"collective names must be unique (they key metrics and records); repeated: {repeated}.")
    return out
