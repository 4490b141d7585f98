"""CollectiveDataModule: put a collective into any LightningDataModule or pair of datasets.

The firm's training set becomes a :class:`CollectiveDataset` (Hardt et al. 2023, §2: the firm
learns on α·h♯P₀ + (1 − α)·P₀); validation and test loaders are left as they are; a
``signal_test_dataloader()`` serves the held-out set the collective is judged on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import lightning as L
from torch.utils.data import BatchSampler, DataLoader, Dataset, IterableDataset, RandomSampler, Sampler
from torch.utils.data._utils.collate import default_collate

from lightning_aca.collective.collectives import Collective, OneCollective, collective_position, given_collectives
from lightning_aca.collective.dataset import (
    CollectiveDataset,
    SignalEvaluationDataset,
    check_injection,
    collates_to_tensors,
)
from lightning_aca.collective.strategies import Strategy
from lightning_aca.data.sampling import SeededShuffle
from lightning_aca.validation import non_negative_int, positive_int


def _loader_like(
    loader: DataLoader, dataset: Dataset, collate_fn: Any = None, shuffle_seed: int | None = None
) -> DataLoader:
    """A DataLoader over ``dataset`` (same length as ``loader.dataset``) with ``loader``'s settings.

    The sampler or batch sampler object is reused: it only draws indices, and the wrapped
    dataset has the same indices, so shuffling, weighting and batching are unchanged. A given
    ``collate_fn`` replaces the loader's. With ``shuffle_seed``, a plain shuffle (``shuffle=True``)
    becomes :class:`~lightning_aca.data.sampling.SeededShuffle`, the order every engine gives that seed.
    """
    kwargs: dict[str, Any] = dict(
        num_workers=loader.num_workers,
        collate_fn=collate_fn or loader.collate_fn,
        pin_memory=loader.pin_memory,
        timeout=loader.timeout,
        worker_init_fn=loader.worker_init_fn,
        multiprocessing_context=loader.multiprocessing_context,
        generator=loader.generator,
        persistent_workers=loader.persistent_workers,
    )
    if loader.num_workers > 0:
        kwargs["prefetch_factor"] = loader.prefetch_factor
    batches = loader.batch_sampler
    if batches is None:
        return DataLoader(dataset, batch_size=None, sampler=loader.sampler, **kwargs)
    if type(batches) is BatchSampler:
        sampler = batches.sampler
        if shuffle_seed is not None and type(sampler) is RandomSampler and not sampler.replacement:
            sampler = SeededShuffle(len(dataset), shuffle_seed)
            kwargs["generator"] = None
        # Plain batching stays visible as batch_size/drop_last, which Lightning and Opacus read.
        return DataLoader(
            dataset, batch_size=batches.batch_size, drop_last=batches.drop_last, sampler=sampler, **kwargs
        )
    return DataLoader(dataset, batch_sampler=batches, **kwargs)


def _dataset_of(loader: Any, hook: str) -> Dataset:
    if not isinstance(loader, DataLoader):
        raise TypeError(
            f"the wrapped datamodule's {hook}() must return one torch DataLoader, got {type(loader).__name__}; "
            "wrap datasets directly with CollectiveDataModule(train_dataset=..., test_dataset=...)."
        )
    if isinstance(loader.dataset, IterableDataset):
        raise TypeError(
            f"the wrapped datamodule's {hook}() serves an IterableDataset; a collective needs a map-style "
            "dataset (with __getitem__ and __len__) so that membership is a fixed set of indices."
        )
    return loader.dataset


class CollectiveDataModule(OneCollective, L.LightningDataModule):
    """A LightningDataModule whose training set contains a collective of fractional size α.

    Give either ``datamodule`` (any LightningDataModule, written without this package: its
    training set is wrapped, its validation and test loaders are kept) or ``train_dataset`` and
    ``test_dataset`` (plus optional ``val_dataset``; without it validation uses the test set).

    Several collectives (Karan, Vincent, Karahalios, Sundaram, FAccT 2025) share the training set
    when given as ``collectives=[Collective(name, strategy, alpha), ...]`` instead of ``strategy``
    and ``alpha``: disjoint memberships, and one signal evaluation set per collective
    (``signal_test_datasets[name]``, ``signal_test_dataloader(collective=name)``).

    Args:
        strategy: what members do, e.g. ``SignalPlanting(PixelPatch(2), target_class=0)``.
        alpha: fraction of eligible training points in the collective, in [0, 1].
        seed: membership seed (members are nested across α for a seed).
        collectives: several collectives instead of ``strategy`` and ``alpha``.
        shuffle_seed: draw the shuffled training order from this seed
            (:class:`~lightning_aca.data.sampling.SeededShuffle`), as every engine of ``aca-run``
            does with the run's seed; ``None`` keeps the loader's own shuffling.
        datamodule: a LightningDataModule to wrap.
        train_dataset, val_dataset, test_dataset: map-style datasets, when no datamodule.
        batch_size, num_workers: loader settings for datasets given directly.
        eval_batch_size: batch size of the signal and clean test loaders (evaluation only; large
            batches cut per-batch overhead).
        input_key, label_key: positions (tuple items) or keys (dict items) of input and label
            (default 0 and 1).
        return_membership: append a membership flag to every training item.
        injection: ``"item"`` or ``"collate"`` (see :class:`CollectiveDataset`), or ``"auto"``:
            ``"collate"`` where it applies (every strategy's inputs batch, the training items'
            input is a tensor, and the training loader collates with ``default_collate``), else ``"item"``.
        num_classes: number of classes, to validate the strategy's target class.
        collate_fn: how batches are collated in the loaders this module builds: over datasets
            given directly, and the signal and clean test loaders (e.g. a
            :class:`~lightning_aca.data.text.TextCollate` tokenizing raw text). Default: the wrapped
            datamodule's test loader's ``collate_fn``, else ``default_collate``. A collate function
            with a ``check_signal(signal)`` method is shown each strategy's signal at setup.

    Example:
        >>> from lightning_aca import DigitsDataModule, PixelPatch, SignalPlanting
        >>> dm = CollectiveDataModule(SignalPlanting(PixelPatch(2), target_class=0), alpha=0.05,
        ...                           datamodule=DigitsDataModule())
        >>> dm.setup("fit")
        >>> len(dm.train_dataset.members), len(dm.signal_test_dataset), dm.train_dataset.injection
        (67, 405, 'collate')
    """

    def __init__(
        self,
        strategy: Strategy | None = None,
        alpha: float | None = None,
        seed: int = 0,
        datamodule: L.LightningDataModule | None = None,
        train_dataset: Dataset | None = None,
        val_dataset: Dataset | None = None,
        test_dataset: Dataset | None = None,
        batch_size: int = 64,
        num_workers: int = 0,
        eval_batch_size: int = 512,
        input_key: str | int = 0,
        label_key: str | int = 1,
        return_membership: bool = False,
        num_classes: int | None = None,
        injection: str = "auto",
        collate_fn: Callable[[list[Any]], Any] | None = None,
        *,
        collectives: Iterable[Collective] | None = None,
        shuffle_seed: int | None = None,
    ) -> None:
        super().__init__()
        self._collectives = given_collectives("CollectiveDataModule", strategy, alpha, collectives)
        if datamodule is not None and (train_dataset is not None or test_dataset is not None):
            raise ValueError("give either datamodule=... or train_dataset=/test_dataset=..., not both.")
        if datamodule is None and (train_dataset is None or test_dataset is None):
            raise ValueError(
                "CollectiveDataModule needs datamodule=<a LightningDataModule> "
                "or both train_dataset= and test_dataset=."
            )
        if datamodule is not None and not isinstance(datamodule, L.LightningDataModule):
            raise TypeError(f"datamodule must be a LightningDataModule, got {type(datamodule).__name__}.")
        self.seed = non_negative_int("seed", seed)
        self.shuffle_seed = None if shuffle_seed is None else non_negative_int("shuffle_seed", shuffle_seed)
        self.datamodule = datamodule
        self._train_base, self._val_base, self._test_base = train_dataset, val_dataset, test_dataset
        self.batch_size = positive_int("batch_size", batch_size)
        self.eval_batch_size = positive_int("eval_batch_size", eval_batch_size)
        self.num_workers = non_negative_int("num_workers", num_workers)
        self._keys = dict(input_key=input_key, label_key=label_key)
        self.return_membership = return_membership
        self.injection = check_injection(injection, ("auto", "item", "collate"))
        if collate_fn is not None and not callable(collate_fn):
            raise TypeError(f"collate_fn must be callable (items -> batch), got {type(collate_fn).__name__}.")
        self._collate_fn = collate_fn
        if num_classes is None:
            num_classes = getattr(datamodule, "num_classes", None)
        self.num_classes = None if num_classes is None else positive_int("num_classes", num_classes)
        self.train_dataset: CollectiveDataset | None = None
        self._signal_test_datasets: dict[str, SignalEvaluationDataset] = {}
        self._inner_stages: set[str] = set()

    @property
    def collectives(self) -> list[Collective]:
        """The collectives on the training set, in order (one for ``strategy=``/``alpha=``)."""
        return list(self._collectives)

    def prepare_data(self) -> None:
        if self.datamodule is not None:
            self.datamodule.prepare_data()

    def _setup_inner(self, stage: str) -> None:
        if self.datamodule is not None and stage not in self._inner_stages:
            self.datamodule.setup(stage)
            self._inner_stages.add(stage)

    def setup(self, stage: str | None = None) -> None:
        stage = stage or "fit"
        self._setup_inner(stage)
        if stage == "fit" and self.train_dataset is None:
            base, collate_fn = self._train_base, self._collate_fn or default_collate
            if self.datamodule is not None:
                inner = self._inner_train_loader()
                base, collate_fn = _dataset_of(inner, "train_dataloader"), inner.collate_fn
            self.train_dataset = CollectiveDataset(
                base,
                seed=self.seed,
                return_membership=self.return_membership,
                num_classes=self.num_classes,
                injection=self._injection_for(base, collate_fn),
                collectives=self._collectives,
                **self._keys,
            )
            check_signal = getattr(collate_fn, "check_signal", None)
            for collective in self._collectives:
                if check_signal is not None and collective.strategy.signal is not None:
                    check_signal(collective.strategy.signal)

    def _inner_train_loader(self) -> Any:
        try:
            return self.datamodule.train_dataloader()
        except ValueError as err:
            if "num_samples=0" in str(err):  # torch's RandomSampler over an empty dataset
                raise ValueError(
                    f"the training set is empty: {type(self.datamodule).__name__}.train_dataloader() serves "
                    "a dataset of length 0; give it data points."
                ) from err
            raise

    def _injection_for(self, base: Dataset, collate_fn: Any) -> str:
        """The injection mode ``self.injection`` asks for on this training set (``"auto"`` resolved)."""
        if self.injection != "auto":
            return self.injection
        batches = all(c.strategy.batched_inputs for c in self._collectives) and collate_fn is default_collate
        return "collate" if batches and collates_to_tensors(base, **self._keys) else "item"

    def _loader(
        self,
        dataset: Dataset,
        shuffle: bool = False,
        evaluation: bool = False,
        collate_fn: Any = None,
        sampler: Sampler | None = None,
    ) -> DataLoader:
        batch_size = self.eval_batch_size if evaluation else self.batch_size
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=collate_fn or self.dataset_collate_fn,
        )

    @property
    def dataset_collate_fn(self) -> Callable[[list[Any]], Any]:
        """The collate function of the loaders this module builds (see ``collate_fn``)."""
        if self._collate_fn is not None:
            return self._collate_fn
        if self.datamodule is None:
            return default_collate
        self._setup_inner("test")
        loader = self.datamodule.test_dataloader()
        _dataset_of(loader, "test_dataloader")
        return loader.collate_fn

    def train_dataloader(self) -> DataLoader:
        if self.train_dataset is None:
            self.setup("fit")
        if self.datamodule is not None:
            inner = self.datamodule.train_dataloader()
            return _loader_like(inner, self.train_dataset, self._collate(inner.collate_fn), self.shuffle_seed)
        sampler = None if self.shuffle_seed is None else SeededShuffle(len(self.train_dataset), self.shuffle_seed)
        return self._loader(
            self.train_dataset,
            shuffle=sampler is None,
            sampler=sampler,
            collate_fn=self._collate(self.dataset_collate_fn),
        )

    def _collate(self, inner: Any) -> Any:
        """With collate injection, the dataset's collate function around ``inner``; otherwise None (keep the loader's)."""
        return self.train_dataset.collate_fn(inner) if self.train_dataset.injection == "collate" else None

    def val_dataloader(self) -> Any:
        if self.datamodule is not None:
            return self.datamodule.val_dataloader() if self._inner_has("val_dataloader") else []
        return self._loader(self._val_base if self._val_base is not None else self._test_base)

    def test_dataloader(self) -> Any:
        if self.datamodule is not None:
            self._setup_inner("test")
            return self.datamodule.test_dataloader()
        return self._loader(self._test_base)

    def _inner_has(self, hook: str) -> bool:
        from lightning.pytorch.utilities.model_helpers import is_overridden

        return is_overridden(hook, self.datamodule, L.LightningDataModule)

    @property
    def test_base_dataset(self) -> Dataset:
        """The clean held-out test set the signal evaluation set is drawn from."""
        if self.datamodule is None:
            return self._test_base
        self._setup_inner("test")
        return _dataset_of(self.datamodule.test_dataloader(), "test_dataloader")

    @property
    def signal_test_datasets(self) -> dict[str, SignalEvaluationDataset]:
        """Each collective's signal evaluation set, by name: held-out points with true label ≠ its y*, carrying its g."""
        for collective in self._collectives:
            if collective.name not in self._signal_test_datasets:
                self._signal_test_datasets[collective.name] = self._signal_set(collective.strategy)
        return dict(self._signal_test_datasets)

    @property
    def signal_test_dataset(self) -> SignalEvaluationDataset:
        """Held-out points shown as the strategy's evaluation input, labelled with its success label.

        One collective; with several, :attr:`signal_test_datasets` holds one set per collective.
        """
        if len(self._collectives) > 1:
            names = [c.name for c in self._collectives]
            raise ValueError(
                f"CollectiveDataModule has {len(names)} collectives {names}, each with its own signal evaluation set: "
                "use signal_test_datasets[name] or signal_test_dataloader(collective=name)."
            )
        return self.signal_test_datasets[self._collectives[0].name]

    def signal_test_dataloader(self, return_clean: bool = False, collective: str | None = None) -> DataLoader:
        """Loader over collective ``collective``'s signal evaluation set: S(α) is the fraction predicted as its labels.

        ``collective`` names one of :attr:`collectives` (default: the only one). With
        ``return_clean=True`` batches also carry the clean inputs and true labels, for metrics
        comparing f(g(x)) with f(x).
        """
        found = self._collectives[collective_position(self._collectives, collective, "signal_test_dataloader")]
        if not return_clean:
            return self._loader(self.signal_test_datasets[found.name], evaluation=True)
        return self._loader(self._signal_set(found.strategy, return_clean=True), evaluation=True)

    def _signal_set(self, strategy: Strategy, return_clean: bool = False) -> SignalEvaluationDataset:
        return SignalEvaluationDataset(
            self.test_base_dataset, strategy, return_clean=return_clean, num_classes=self.num_classes, **self._keys
        )

    def clean_test_dataloader(self) -> DataLoader:
        """Loader over the clean held-out test set (for clean accuracy)."""
        return self._loader(self.test_base_dataset, evaluation=True)
