"""Several collectives on one training set: named (strategy, α) pairs with disjoint memberships.

Karan, Vincent, Karahalios, Sundaram (FAccT 2025) study collectives with different goals acting
on one platform: each plants its own signal or target, and a user joins at most one. A
:class:`Collective` names one of them; :func:`select_disjoint_members` decides who joins which.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from lightning_aca.collective.strategies import Strategy, check_strategy
from lightning_aca.validation import fraction

# the name of the one collective given as strategy=..., alpha=... (its metric and record keys carry no name)
_ONE_COLLECTIVE = "collective"

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
    #: the largest α this collective takes in the sweep; given to every collective of a run, it sizes
    #: their disjoint pools (:func:`~lightning_aca.collective.membership.select_disjoint_members`)
    max_alpha: float | None = None

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
        if self.max_alpha is not None:
            top = fraction(f"collective {self.name!r}'s max_alpha", self.max_alpha)
            if self.alpha > top:
                raise ValueError(
                    f"collective {self.name!r}: alpha={self.alpha} is above max_alpha={top}; max_alpha must bound "
                    "every alpha of the sweep: raise it."
                )
            object.__setattr__(self, "max_alpha", top)


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


def given_collectives(
    owner: str, strategy: Any, alpha: Any, collectives: Iterable[Collective] | None
) -> list[Collective]:
    """The collectives an ``owner`` was given: one as ``strategy=``/``alpha=``, or several as ``collectives=``.

    One collective keeps the checks and messages of the one-collective API; ``collectives`` holding a
    single :class:`Collective` is the same one collective.
    """
    if collectives is not None:
        if strategy is not None or alpha is not None:
            raise ValueError(
                f"{owner} takes either strategy=/alpha= (one collective) or collectives=[Collective(...), ...] "
                "(several), not both; put every collective in collectives."
            )
        return check_collectives(collectives)
    if strategy is None or alpha is None:
        missing = " and ".join(k for k, v in (("strategy", strategy), ("alpha", alpha)) if v is None)
        raise TypeError(
            f"{owner} needs {missing}: give strategy=<a Strategy> and alpha=<its fractional size> for one "
            "collective, or collectives=[Collective(name, strategy, alpha), ...] for several."
        )
    strategy = check_strategy(strategy)
    return [Collective(_ONE_COLLECTIVE, strategy, fraction("alpha (the collective's fractional size)", alpha))]


class OneCollective:
    """The one-collective attributes ``strategy`` and ``alpha`` of a holder of ``collectives``; several: a clear error."""

    collectives: list[Collective]

    @property
    def strategy(self) -> Strategy:
        """The collective's strategy (one collective; with several, see :attr:`collectives`)."""
        return self._only("strategy").strategy

    @property
    def alpha(self) -> float:
        """The collective's α (one collective; with several, see :attr:`collectives`)."""
        return self._only("alpha").alpha

    def _only(self, attribute: str) -> Collective:
        if len(self.collectives) == 1:
            return self.collectives[0]
        names = ", ".join(repr(c.name) for c in self.collectives)
        raise AttributeError(
            f"{type(self).__name__} has {len(self.collectives)} collectives ({names}), so no single {attribute}: "
            f"use .collectives[i].{attribute} (or the per-collective methods with collective=<name>)."
        )


def collective_position(collectives: list[Collective], name: str | None, where: str) -> int:
    """The position of collective ``name`` (None: the only one); an unknown or missing name is a clear error."""
    names = [c.name for c in collectives]
    if name is None:
        if len(names) == 1:
            return 0
        raise ValueError(f"{where}: there are {len(names)} collectives {names}; pass collective=<one of them>.")
    if name not in names:
        raise KeyError(f"{where}: no collective named {name!r}; the collectives are {names}.")
    return names.index(name)
