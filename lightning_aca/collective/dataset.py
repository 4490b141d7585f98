"""Datasets seen through a collective: the firm's training set and the collective's test set.

``CollectiveDataset`` wraps any map-style dataset whose items are ``(x, y, ...)`` tuples or
dicts and yields items of the same structure, with the members' points replaced by h(x, y)
(Hardt et al. 2023, §2: the firm trains on α·h♯P₀ + (1 − α)·P₀). Members are modified lazily on
access, so nothing is copied and random augmentations of the base dataset still apply.
``SignalEvaluationDataset`` is the held-out set S(α) is measured on.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset, TensorDataset
from torch.utils.data._utils.collate import default_collate

from lightning_aca.collective.collectives import Collective, OneCollective, collective_position, given_collectives
from lightning_aca.collective.membership import select_disjoint_members
from lightning_aca.collective.strategies import Strategy, check_strategy
from lightning_aca.validation import non_negative_int, one_of, positive_int


class _ItemCodec:
    """Reads (x, y) out of a dataset item and writes them back in the same structure."""

    def __init__(self, input_key: str | int = 0, label_key: str | int = 1) -> None:
        self.input_key = input_key
        self.label_key = label_key
        # the common (x, y, ...) tuple layout, handled without the generic checks (data-loading hot path)
        self._plain = input_key == 0 and label_key == 1

    def split(self, item: Any) -> tuple[Any, Any]:
        if self._plain and type(item) is tuple and len(item) >= 2:
            return item[0], item[1]
        if isinstance(item, Mapping):
            missing = [k for k in (self.input_key, self.label_key) if k not in item]
            if missing:
                raise KeyError(
                    f"dataset items are dicts with keys {sorted(item)}, missing {missing}; pass "
                    "input_key=... and label_key=... naming the input and label keys."
                )
            return item[self.input_key], item[self.label_key]
        if isinstance(item, Sequence) and not isinstance(item, str) and len(item) >= 2:
            return item[self._pos(self.input_key)], item[self._pos(self.label_key)]
        raise TypeError(
            f"dataset items must be (x, y, ...) tuples or dicts, got {type(item).__name__}; wrap the dataset so "
            "it returns (input, label)."
        )

    def _pos(self, key: str | int) -> int:
        if not isinstance(key, int):
            raise TypeError(f"dataset items are tuples, so input_key/label_key must be positions, got {key!r}.")
        return key

    def join(self, item: Any, x: Any, y: Any) -> Any:
        if self._plain and type(item) is tuple:
            return (x, y, *item[2:])
        if isinstance(item, Mapping):
            out = dict(item)
            out[self.input_key], out[self.label_key] = x, y
            return type(item)(out) if type(item) is not dict else out
        out = list(item)
        out[self._pos(self.input_key)], out[self._pos(self.label_key)] = x, y
        return tuple(out) if isinstance(item, tuple) else out

    @staticmethod
    def add_flag(item: Any, flag: bool) -> Any:
        if isinstance(item, Mapping):
            return {**item, "is_member": flag}
        return (*item, flag)


def dataset_labels(dataset: Dataset, label_key: str | int = 1) -> Tensor:
    """All labels of a map-style dataset as an int64 tensor.

    Reads them without loading inputs where the dataset exposes them (``TensorDataset``,
    ``Subset``, torchvision-style ``.targets``/``.labels``); otherwise iterates once, taking
    ``item[label_key]`` of every item (default: position 1).
    """
    if isinstance(dataset, CollectiveDataset):
        return dataset.labels
    if isinstance(dataset, Subset):
        return dataset_labels(dataset.dataset, label_key)[torch.as_tensor(dataset.indices, dtype=torch.long)]
    if isinstance(dataset, TensorDataset) and label_key == 1 and len(dataset.tensors) >= 2:
        return dataset.tensors[1].long().reshape(-1)
    for attr in ("targets", "labels"):
        labels = getattr(dataset, attr, None)
        if labels is not None and len(labels) == len(dataset):
            return torch.as_tensor(np.asarray(labels)).long().reshape(-1)
    try:
        return torch.as_tensor([int(dataset[i][label_key]) for i in range(len(dataset))], dtype=torch.long)
    except (KeyError, IndexError, TypeError) as err:
        raise type(err)(
            f"could not read labels as item[{label_key!r}] of {type(dataset).__name__}; pass label_key=... "
            "naming the label's position or key."
        ) from err


def _check_target_known(strategy: Strategy, labels: Tensor, num_classes: int | None, where: str) -> None:
    target_class = strategy.target_class
    if target_class is None:
        return
    known = range(num_classes) if num_classes is not None else sorted(set(labels.tolist()))
    if target_class not in known:
        raise ValueError(
            f"{type(strategy).__name__} target_class={target_class} is not a class of the {where} "
            f"(classes: {list(known)}); choose one of them."
        )


def _check_not_empty(dataset: Dataset, where: str) -> int:
    """``len(dataset)``, or a ``ValueError`` saying the ``where`` set is empty."""
    n = len(dataset)
    if n == 0:
        raise ValueError(f"the {where} set is empty ({type(dataset).__name__} of length 0); give it data points.")
    return n


def _check_signal(strategy: Strategy, x: Any) -> None:
    """The strategy's signal (if any) checked against one input of the data."""
    if strategy.signal is not None:
        strategy.signal.check(x)


def check_injection(injection: Any, options: tuple[str, ...]) -> str:
    if injection == "batch":
        raise ValueError(
            "injection='batch' was removed: use injection='collate' (the same batches, with the members' rows "
            "modified when each batch is collated) or injection='item'."
        )
    return one_of("injection", injection, options)


def collates_to_tensors(dataset: Dataset, input_key: str | int = 0, label_key: str | int = 1) -> bool:
    """Whether the first item's input is a tensor and its label a tensor or an integer (``default_collate`` stacks both)."""
    if len(dataset) == 0:
        return False
    x, y = _ItemCodec(input_key, label_key).split(dataset[0])
    integer_label = isinstance(y, numbers.Integral) and not isinstance(y, bool)
    return isinstance(x, Tensor) and (isinstance(y, Tensor) or integer_label)


def _same_shape_tensors(values: list[Any]) -> bool:
    first = values[0]
    return isinstance(first, Tensor) and all(isinstance(v, Tensor) and v.shape == first.shape for v in values)


def _each(fn: Callable[[Any], Any], values: list[Any], batched: bool = True) -> Sequence[Any]:
    """``fn`` of every value: one call on the stacked values where ``fn`` batches and they stack, else one each."""
    if batched and _same_shape_tensors(values):
        return fn(torch.stack(values)).unbind(0)
    return [fn(v) for v in values]


_COLLATE_HINT = (
    "CollectiveDataset(injection='collate') modifies its members when a batch is collated: build the "
    "DataLoader with collate_fn=dataset.collate_fn() (CollectiveDataModule does), or use injection='item'."
)


class _FetchedBatch:
    """The base items of one batch and their dataset indices, unmodified until :func:`_collate_members`.

    Not a sequence on purpose: a DataLoader without the dataset's collate function fails on it with
    :data:`_COLLATE_HINT` instead of silently training on unmodified members.
    """

    __slots__ = ("indices", "items")

    def __init__(self, items: list[Any], indices: list[int]) -> None:
        self.items, self.indices = items, indices

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: Any) -> Any:
        raise TypeError(_COLLATE_HINT)

    def __iter__(self) -> Any:
        raise TypeError(_COLLATE_HINT)


def _collate_members(dataset: CollectiveDataset, collate_fn: Callable[[list[Any]], Any], batch: Any) -> Any:
    """``collate_fn`` over the batch's items, then each collective's h applied to its members' rows."""
    if not isinstance(batch, _FetchedBatch):  # items read one at a time were modified by __getitem__
        return collate_fn(batch)
    owners = torch.from_numpy(dataset._owner[np.asarray(batch.indices, dtype=np.int64)])
    # default_collate stacks into fresh tensors, so h may write into them; another collate may return views
    return dataset._modify_collated(collate_fn(batch.items), owners, in_place=collate_fn is default_collate)


class CollectiveDataset(OneCollective, Dataset):
    """A training set in which a collective of fractional size α applies its strategy.

    Hardt et al. 2023, §2: the firm observes P = α·P* + (1 − α)·P₀ with P* = h♯P₀. Membership
    follows :func:`select_members` over the strategy's eligible points (nested across α for a
    seed). Items keep the base dataset's structure: ``(x, y, ...)`` tuples stay tuples and dicts
    stay dicts; with ``return_membership=True`` a boolean flag is appended (key ``is_member``).

    Several collectives (Karan, Vincent, Karahalios, Sundaram, FAccT 2025), given as ``collectives=``,
    have disjoint memberships, each nested in its own α (:func:`select_disjoint_members`); each
    member submits its own collective's h(x, y) (see :meth:`members_of`).

    Args:
        dataset: any non-empty map-style dataset of ``(x, y, ...)`` tuples or dicts.
        strategy: what members do, e.g. ``SignalPlanting(PixelPatch(2), target_class=0)``.
        alpha: fraction of eligible training points in the collective, in [0, 1].
        seed: membership seed.
        input_key, label_key: positions (tuples) or keys (dicts) of input and label (default 0 and 1).
        return_membership: append the membership flag to every item (a member of any collective).
        num_classes: number of classes, to validate the strategies' target classes; by default
            each must be a label present in the dataset.
        injection: ``"item"`` modifies members as items are read (any dataset, any
            DataLoader); ``"collate"`` modifies the members' rows of each collated batch in one
            call per collective inside :meth:`collate_fn` (in the loader's workers), which the
            DataLoader must use (``CollectiveDataModule`` does). Both give the same batches.
        collectives: several :class:`~lightning_aca.collective.collectives.Collective` instead of
            ``strategy`` and ``alpha``.

    Example:
        >>> from lightning_aca.collective.collectives import Collective
        >>> from lightning_aca.collective.signals import PixelPatch
        >>> from lightning_aca.collective.strategies import SignalPlanting
        >>> base = TensorDataset(torch.zeros(10, 1, 4, 4), torch.arange(10) % 2)
        >>> ds = CollectiveDataset(base, SignalPlanting(PixelPatch(2), target_class=1), alpha=0.2, seed=0)
        >>> ds.members.tolist(), ds[int(ds.members[0])][1].item()
        ([4, 6], 1)
        >>> two = CollectiveDataset(base, collectives=[
        ...     Collective("first", SignalPlanting(PixelPatch(2), target_class=1), 0.2),
        ...     Collective("second", SignalPlanting(PixelPatch(2, location="top_left"), target_class=0), 0.1)])
        >>> two.members_of("first").tolist(), two.members_of("second").tolist(), two.labels[two.members].tolist()
        ([1, 8], [2], [1, 0, 1])
    """

    def __init__(
        self,
        dataset: Dataset,
        strategy: Strategy | None = None,
        alpha: float | None = None,
        seed: int = 0,
        input_key: str | int = 0,
        label_key: str | int = 1,
        return_membership: bool = False,
        num_classes: int | None = None,
        injection: str = "item",
        *,
        collectives: Iterable[Collective] | None = None,
    ) -> None:
        self.collectives = given_collectives("CollectiveDataset", strategy, alpha, collectives)
        strategies = [c.strategy for c in self.collectives]
        injection = check_injection(injection, ("item", "collate"))
        for item in strategies:
            if injection == "collate" and not item.batched_inputs:
                raise ValueError(
                    f"injection='collate' applies {item!r} to whole batches, but its signal does not declare "
                    "supports_batches=True; use injection='item'."
                )
        if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
            raise TypeError(
                f"dataset must be a map-style Dataset with __getitem__ and __len__, got {type(dataset).__name__}."
            )
        n = _check_not_empty(dataset, "training")
        self.dataset = dataset
        self.seed = non_negative_int("seed", seed)
        self.return_membership = return_membership
        self.injection = injection
        self._strategies = strategies
        self._codec = _ItemCodec(input_key, label_key)
        num_classes = None if num_classes is None else positive_int("num_classes", num_classes)
        needs_labels = any(s.uses_labels or s.target_class is not None for s in strategies)
        self._labels = dataset_labels(dataset, label_key) if needs_labels else None
        for item in strategies:
            if self._labels is not None:
                _check_target_known(item, self._labels, num_classes, "training set")
        eligible = [s.eligible(self._labels).numpy() if s.uses_labels else None for s in strategies]
        self._members = collective_members(n, self.collectives, self.seed, eligible)
        self.members = self._members[0] if len(self._members) == 1 else np.sort(np.concatenate(self._members))
        # which collective each training point belongs to (-1: none); is_member is its ">= 0"
        self._owner = np.full(n, -1, dtype=np.int32)
        for j, members in enumerate(self._members):
            self._owner[members] = j
        self._is_member = self._owner >= 0
        for item, members in zip(strategies, self._members, strict=True):
            if members.size:
                # Apply h once now so a signal that does not fit the data fails here, not in a worker.
                x, y = self._codec.split(dataset[int(members[0])])
                _check_signal(item, x)
                item.modify(x, y)

    def members_of(self, name: str | None = None) -> np.ndarray:
        """Sorted indices of collective ``name``'s members (default: the only collective)."""
        return self._members[collective_position(self.collectives, name, "CollectiveDataset.members_of")]

    @property
    def labels(self) -> Tensor:
        """The labels the firm sees (each member's label after its collective's strategy)."""
        if self._labels is None:
            self._labels = dataset_labels(self.dataset, self._codec.label_key)
        labels = self._labels.clone()
        for strategy, members in zip(self._strategies, self._members, strict=True):
            if members.size:
                idx = torch.as_tensor(members)
                labels[idx] = torch.as_tensor([int(strategy.member_label(int(y))) for y in labels[idx]])
        return labels

    @property
    def is_member(self) -> np.ndarray:
        """Boolean membership mask over the training set, a member of any collective (read-only view)."""
        view = self._is_member.view()
        view.flags.writeable = False
        return view

    @property
    def population_alpha(self) -> float:
        """Members as a fraction of the whole training set (differs from α when not all are eligible)."""
        return self.members.size / len(self)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        item = self.dataset[index]
        owner = self._owner[index]
        if owner >= 0:
            item = self._codec.join(item, *self._strategies[owner].modify(*self._codec.split(item)))
        if self.return_membership:
            item = self._codec.add_flag(item, bool(owner >= 0))
        return item

    def __getitems__(self, indices: list[int]) -> list[Any]:
        """A batch of items, as ``[self[i] for i in indices]``, with each collective's member inputs modified at once.

        DataLoader fetches through this method, so each signal runs once per batch on the stacked
        member inputs instead of once per member.
        """
        fetch = getattr(self.dataset, "__getitems__", None)
        items = list(fetch(indices)) if fetch is not None else [self.dataset[i] for i in indices]
        if self.injection == "collate":
            return _FetchedBatch(items, indices)  # type: ignore[return-value]
        owners = self._owner[np.asarray(indices, dtype=np.int64)]
        for j, strategy in enumerate(self._strategies):
            positions = np.flatnonzero(owners == j).tolist()
            if positions:
                self._modify(items, positions, strategy)
        if self.return_membership:
            items = [self._codec.add_flag(item, bool(o >= 0)) for item, o in zip(items, owners.tolist(), strict=True)]
        return items

    def collate_fn(self, collate_fn: Callable[[list[Any]], Any] = default_collate) -> Callable[[Any], Any]:
        """The DataLoader ``collate_fn`` for ``injection="collate"``: ``collate_fn`` (e.g. your own), then h on members.

        The members' rows of the collated batch get their collective's h in one call per
        collective, out of place; with ``return_membership=True`` the flags are added as a bool
        tensor (last element, or key ``is_member``), as ``injection="item"`` collates them.
        Picklable, for worker processes.
        """
        if self.injection != "collate":
            raise ValueError("collate_fn() is for datasets built with injection='collate'.")
        return partial(_collate_members, self, collate_fn)

    def _modify_collated(self, batch: Any, owners: Tensor, in_place: bool = False) -> Any:
        is_dict = isinstance(batch, Mapping)
        x, y = self._codec.split(batch if is_dict else tuple(batch))
        if not isinstance(x, Tensor) or not isinstance(y, Tensor) or len(x) != len(owners):
            raise TypeError(
                f"injection='collate' needs batches whose input and label are tensors with one row per item; "
                f"the collate function gave {type(x).__name__} and {type(y).__name__}. Use injection='item'."
            )
        for j, strategy in enumerate(self._strategies):
            rows = (owners == j).nonzero().squeeze(1)
            if rows.numel():
                if not in_place:
                    x, y, in_place = x.clone(), y.clone(), True
                strategy.member_input_rows_(x, rows)
                y[rows] = strategy.member_label(y[rows])
        return self._rejoin(batch if is_dict else tuple(batch), x, y, owners >= 0)

    def _rejoin(self, body: Any, x: Tensor, y: Tensor, flags: Tensor) -> Any:
        """A collated batch with ``x`` and ``y`` (and the flags, when requested), laid out as ``injection="item"`` gives it."""
        out = self._codec.join(body, x, y)
        if isinstance(body, Mapping):
            if self.return_membership:
                out["is_member"] = flags
            return out
        out = list(out)
        return [*out, flags] if self.return_membership else out

    def _modify(self, items: list[Any], positions: list[int], strategy: Strategy) -> None:
        pairs = [self._codec.split(items[k]) for k in positions]
        xs = _each(strategy.member_input, [x for x, _ in pairs], strategy.batched_inputs)
        # labels are elementwise (y* or y itself), so one call on the stacked labels is exact
        ys = _each(strategy.member_label, [y for _, y in pairs])
        for k, x, y in zip(positions, xs, ys, strict=True):
            items[k] = self._codec.join(items[k], x, y)

    def __repr__(self) -> str:
        if len(self.collectives) == 1:
            return (
                f"CollectiveDataset(n={len(self)}, alpha={self.alpha}, members={self.members.size}, "
                f"seed={self.seed}, strategy={self.strategy!r})"
            )
        parts = ", ".join(
            f"{c.name}: alpha={c.alpha}, members={m.size}, strategy={c.strategy!r}"
            for c, m in zip(self.collectives, self._members, strict=True)
        )
        return f"CollectiveDataset(n={len(self)}, seed={self.seed}, collectives=[{parts}])"


def collective_members(
    n: int, collectives: Sequence[Collective], seed: int, eligible: Sequence[np.ndarray | None]
) -> list[np.ndarray]:
    """:func:`select_disjoint_members` for ``collectives`` (their α and ``max_alpha``), its errors naming them.

    ``max_alpha`` is given to every collective or to none (``ValueError`` naming those without it).
    """
    tops = [c.max_alpha for c in collectives]
    missing = [c.name for c in collectives if c.max_alpha is None]
    if missing and len(missing) < len(collectives):
        raise ValueError(
            f"max_alpha sizes the pools of all collectives together: give it to every collective, not only some "
            f"(missing for {missing})."
        )
    try:
        return select_disjoint_members(n, [c.alpha for c in collectives], seed, eligible, None if missing else tops)
    except ValueError as err:
        if len(collectives) == 1:
            raise
        names = ", ".join(f"alphas[{j}] is collective {c.name!r}" for j, c in enumerate(collectives))
        raise ValueError(f"{err} ({names})") from None


class SignalEvaluationDataset(Dataset):
    """The held-out points a strategy is judged on, shown as the strategy's evaluation input.

    For planting: the test points whose true label is not y*, carrying the signal g(x), labelled
    with y* (success = the model predicts the item's label). For erasing: every test point with
    the signal, labelled with its true label. Items keep the base dataset's structure; with
    ``return_clean=True`` the clean input and the true label are appended (keys ``clean_input``,
    ``true_label``) for metrics that compare f(g(x)) with f(x).
    """

    def __init__(
        self,
        dataset: Dataset,
        strategy: Strategy,
        input_key: str | int = 0,
        label_key: str | int = 1,
        return_clean: bool = False,
        num_classes: int | None = None,
    ) -> None:
        check_strategy(strategy)
        _check_not_empty(dataset, "test")
        num_classes = None if num_classes is None else positive_int("num_classes", num_classes)
        self.dataset = dataset
        self.strategy = strategy
        self.return_clean = return_clean
        self._codec = _ItemCodec(input_key, label_key)
        labels = dataset_labels(dataset, label_key)
        _check_target_known(strategy, labels, num_classes, "test set")
        self.indices = torch.nonzero(strategy.evaluation_mask(labels)).flatten().numpy()
        if self.indices.size == 0:
            raise ValueError(
                f"the test set has no point to evaluate {strategy!r} on (every label equals the target class); "
                "use a test set with other classes."
            )
        x = self._codec.split(dataset[int(self.indices[0])])[0]
        _check_signal(strategy, x)
        strategy.evaluation_input(x)

    def __len__(self) -> int:
        return int(self.indices.size)

    def __getitem__(self, index: int) -> Any:
        item = self.dataset[int(self.indices[index])]
        x, y = self._codec.split(item)
        return self._join(item, x, y, self.strategy.evaluation_input(x))

    def __getitems__(self, indices: list[int]) -> list[Any]:
        """A batch of items, as ``[self[i] for i in indices]``, with the signal applied in one call per batch."""
        positions = [int(self.indices[i]) for i in indices]
        fetch = getattr(self.dataset, "__getitems__", None)
        items = list(fetch(positions)) if fetch is not None else [self.dataset[i] for i in positions]
        pairs = [self._codec.split(item) for item in items]
        shown = _each(self.strategy.evaluation_input, [x for x, _ in pairs], self.strategy.batched_inputs)
        return [self._join(item, x, y, g) for item, (x, y), g in zip(items, pairs, shown, strict=True)]

    def _join(self, item: Any, x: Any, y: Any, shown: Any) -> Any:
        out = self._codec.join(item, shown, self.strategy.success_label(y))
        if self.return_clean:
            if isinstance(out, Mapping):
                return {**out, "clean_input": x, "true_label": y}
            return (*out, x, y)
        return out
