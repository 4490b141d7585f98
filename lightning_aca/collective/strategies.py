"""Strategies h: (x, y) ↦ (x', y'): what a collective's members do to their own data.

Hardt, Mazumdar, Mendler-Dünner, Zrnic, "Algorithmic Collective Action in Machine Learning",
ICML 2023, §3. A collective of fractional size α applies h to its members' points, so the firm
learns on P = α·h♯P₀ + (1 − α)·P₀. Each strategy also says how it is judged: which held-out
test points count (``evaluation_mask``), what input the model sees (``evaluation_input``) and
which label is a success (``success_label``).

Success is measured only on held-out inputs whose true label is not already the target class y*
(for planting and label flipping), so that success is not confounded with clean accuracy.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import Tensor

from lightning_aca.collective.signals import Signal
from lightning_aca.validation import integer


def _target_class(owner: str, value: Any) -> int:
    """The class index y* given as ``target_class=``."""
    if value is None:
        raise TypeError(f"{owner} needs target_class=<the class index y* the collective steers towards>.")
    return integer(f"{owner} target_class", value, low=0, kind="a non-negative class index y*")


def _classes(owner: str, value: Any) -> tuple[int, ...]:
    """The class indices given as ``member_classes=``: a non-empty list of distinct non-negative ints."""
    if isinstance(value, int | str) or not hasattr(value, "__iter__"):
        raise TypeError(f"{owner} member_classes must be a list of class indices (e.g. [1]), got {value!r}.")
    classes = tuple(integer(f"{owner} member_classes", c, low=0, kind="a non-negative class index") for c in value)
    if not classes or len(set(classes)) != len(classes):
        raise ValueError(
            f"{owner} member_classes must list distinct class indices, got {list(classes)}; "
            "leave it unset (null) to let every training point join."
        )
    return classes


def _like(label: Any, value: int) -> Any:
    """``value`` as a label of the same type (int or tensor dtype/device) as ``label``."""
    if isinstance(label, Tensor):
        return torch.full_like(label, value)
    return type(label)(value) if isinstance(label, int) else value


class Strategy(ABC):
    """A collective's strategy h (Hardt et al. 2023, §3) and how its success is evaluated."""

    #: the class y* the collective steers towards, or ``None`` when it has no target class.
    target_class: int | None = None
    #: the signal g the strategy plants or erases, or ``None`` when it carries no signal.
    signal: Signal | None = None

    def eligible(self, labels: Tensor) -> Tensor:
        """Boolean mask over training points that may join the collective (default: all)."""
        return torch.ones_like(labels, dtype=torch.bool)

    def modify(self, x: Any, y: Any) -> tuple[Any, Any]:
        """h(x, y): the point a member submits instead of (x, y)."""
        return self.member_input(x), self.member_label(y)

    @abstractmethod
    def member_input(self, x: Any) -> Any:
        """The input part of h(x, y)."""

    def member_input_rows_(self, x: Tensor, rows: Tensor) -> None:
        """Replace rows ``rows`` of the collated batch ``x`` by their member inputs, in place."""
        x[rows] = self.member_input(x[rows])

    @abstractmethod
    def member_label(self, y: Any) -> Any:
        """The label part of h(x, y) (of the same type as ``y``)."""

    def evaluation_mask(self, labels: Tensor) -> Tensor:
        """Held-out points on which success is measured (default: true label ≠ y*)."""
        if self.target_class is None:
            return torch.ones_like(labels, dtype=torch.bool)
        return labels != self.target_class

    @abstractmethod
    def evaluation_input(self, x: Any) -> Any:
        """The input the trained model is shown at evaluation (g(x) for signal strategies)."""

    def success_label(self, y: Any) -> Any:
        """The label whose prediction counts as success (default: y*)."""
        return _like(y, self.target_class)

    @property
    def uses_labels(self) -> bool:
        """Whether eligibility depends on the training labels (they must then be read)."""
        return False

    @property
    def batched_inputs(self) -> bool:
        """Whether :meth:`member_input` and :meth:`evaluation_input` may be applied to a stacked batch at once."""
        return True


def check_strategy(strategy: Any) -> Strategy:
    """``strategy`` if it is a :class:`Strategy`, else a ``TypeError`` naming what was given."""
    if not isinstance(strategy, Strategy):
        raise TypeError(f"strategy must be a Strategy (e.g. SignalPlanting), got {type(strategy).__name__}.")
    return strategy


class SignalStrategy(Strategy):
    """A strategy whose members carry a signal g (Hardt et al. 2023, §3): inputs become g(x).

    Owns the signal: members submit g(x), the model is evaluated on g(x) for held-out x;
    subclasses set only the label rules (:meth:`member_label`, :meth:`success_label`,
    eligibility).
    """

    def __init__(self, signal: Signal) -> None:
        if not isinstance(signal, Signal):
            raise TypeError(
                f"{type(self).__name__} signal must be a Signal (e.g. PixelPatch), got {type(signal).__name__}."
            )
        self.signal = signal

    def member_input(self, x: Any) -> Any:
        return self.signal(x)

    def member_input_rows_(self, x: Tensor, rows: Tensor) -> None:
        self.signal.apply_rows_(x, rows)

    def evaluation_input(self, x: Any) -> Any:
        return self.signal(x)

    @property
    def batched_inputs(self) -> bool:
        return self.signal.supports_batches


class SignalPlanting(SignalStrategy):
    """Feature-label signal planting: h(x, y) = (g(x), y*).

    Hardt et al. 2023, §3 (the feature-label strategy; success S(α) = Pr_{x∼P₀}[f(g(x)) = y*]).
    Every training point is eligible, or with ``member_classes`` only the points whose true label
    is one of them: the collective is drawn from those classes, α is the fraction of *their*
    points that join (:attr:`CollectiveDataset.population_alpha` gives the whole set's fraction).

    Example:
        >>> from lightning_aca.collective.signals import FeatureAssignment
        >>> h = SignalPlanting(FeatureAssignment([0], [1.0]), target_class=3)
        >>> x, y = h.modify(torch.zeros(2), 7)
        >>> x.tolist(), y
        ([1.0, 0.0], 3)
        >>> SignalPlanting(FeatureAssignment([0], [1.0]), 0, member_classes=[1]).eligible(torch.tensor([0, 1, 1])).tolist()
        [False, True, True]
    """

    def __init__(self, signal: Signal, target_class: int | None = None, member_classes: Any = None) -> None:
        super().__init__(signal)
        self.target_class = _target_class(type(self).__name__, target_class)
        self.member_classes = None if member_classes is None else _classes(type(self).__name__, member_classes)

    def eligible(self, labels: Tensor) -> Tensor:
        if self.member_classes is None:
            return super().eligible(labels)
        return torch.isin(labels, torch.tensor(self.member_classes, dtype=labels.dtype, device=labels.device))

    @property
    def uses_labels(self) -> bool:
        return self.member_classes is not None

    def member_label(self, y: Any) -> Any:
        return _like(y, self.target_class)

    def __repr__(self) -> str:
        classes = "" if self.member_classes is None else f", member_classes={list(self.member_classes)}"
        return f"{type(self).__name__}(signal={self.signal!r}, target_class={self.target_class}{classes})"


class FeatureOnlyPlanting(SignalPlanting):
    """Feature-only planting: members whose label already is y* submit (g(x), y*).

    Hardt et al. 2023, §3 (the feature-only strategy, for collectives that cannot change
    labels). Only training points with y = y* are eligible, so α is the fraction of *those*
    points that join; :attr:`CollectiveDataset.population_alpha` gives the fraction of the whole
    training set. Success is measured as for :class:`SignalPlanting`.
    """

    def eligible(self, labels: Tensor) -> Tensor:
        return (labels == self.target_class) & super().eligible(labels)

    def member_label(self, y: Any) -> Any:
        return y

    @property
    def uses_labels(self) -> bool:
        return True


class SignalErasing(SignalStrategy):
    """Signal erasing: h(x, y) = (g(x), y), teaching the firm that g carries no information.

    Hardt et al. 2023, §3: the collective wants the classifier to ignore the signal,
    f(g(x)) = f(x). Members submit their own points with the signal added and their *true*
    label, tying the signal to unmodified labels. Success is measured on every held-out point,
    shown with the signal, and counts when the prediction equals the true label
    (``CollectiveMetrics`` also reports agreement with the prediction on the clean input).
    """

    def member_label(self, y: Any) -> Any:
        return y

    def success_label(self, y: Any) -> Any:
        return y

    def __repr__(self) -> str:
        return f"SignalErasing(signal={self.signal!r})"


class LabelFlip(Strategy):
    """Label-only baseline: h(x, y) = (x, y*), no signal.

    Without a signal the collective can only shift the firm's decision on clean inputs; success
    is the fraction of held-out clean inputs with true label ≠ y* predicted as y*.
    """

    def __init__(self, target_class: int | None = None) -> None:
        self.target_class = _target_class("LabelFlip", target_class)

    def member_input(self, x: Any) -> Any:
        return x

    def member_input_rows_(self, x: Tensor, rows: Tensor) -> None:
        pass  # h leaves inputs unchanged

    def member_label(self, y: Any) -> Any:
        return _like(y, self.target_class)

    def evaluation_input(self, x: Any) -> Any:
        return x

    def __repr__(self) -> str:
        return f"LabelFlip(target_class={self.target_class})"
