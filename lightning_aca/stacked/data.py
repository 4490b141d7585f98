"""In-memory training data for K stacked models: tensors on the device and per-model index streams.

Each model sees the data the standard path would give it (Hardt et al. 2023, §2: the firm learns
on α·h♯P₀ + (1 − α)·P₀): its own members (``select_members`` for its α and collective seed), and
its own shuffle stream (ERM) or Poisson samples (DP-SGD) from :mod:`lightning_aca.data.sampling`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, RandomSampler, Subset, TensorDataset

from lightning_aca.data.split import held_out_validation

_NOT_TENSOR = (
    "the stacked engine trains on in-memory tensor datasets (TensorDataset); the {split} set is a {kind}. "
    "Run this configuration with the standard launcher."
)


@dataclass
class TensorData:
    """Train and test tensors of a data source, and the training loader's batching.

    ``extras_train`` are the training items' tensors after (input, label), e.g. a group index.
    ``x_val``/``y_val`` are a validation split held out of the training data (``None`` when the
    datamodule validates on its test set).
    """

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    groups_test: Tensor | None
    batch_size: int
    batches: int
    train_dataset: Dataset
    extras_train: tuple[Tensor, ...] = ()
    x_val: Tensor | None = None
    y_val: Tensor | None = None

    @property
    def n(self) -> int:
        return len(self.y_train)


def _tensors(dataset: Dataset, split: str) -> tuple[Tensor, ...]:
    if isinstance(dataset, TensorDataset):
        return tuple(dataset.tensors)
    if isinstance(dataset, Subset) and isinstance(dataset.dataset, TensorDataset):
        index = torch.as_tensor(np.asarray(dataset.indices), dtype=torch.long)
        return tuple(t[index] for t in dataset.dataset.tensors)
    raise TypeError(_NOT_TENSOR.format(split=split, kind=type(dataset).__name__))


def _loader(datamodule: Any, hook: str) -> DataLoader:
    loader = getattr(datamodule, hook)()
    if not isinstance(loader, DataLoader):
        raise TypeError(
            f"the datamodule's {hook}() must return one DataLoader for stacking, got {type(loader).__name__}."
        )
    return loader


def tensors_of(datamodule: Any, num_groups: int | None = None) -> TensorData:
    """Set up ``datamodule`` and read its training and test sets as tensors (``TypeError`` if they are not)."""
    datamodule.prepare_data()
    datamodule.setup("fit")
    loader = _loader(datamodule, "train_dataloader")
    if loader.batch_size is None or not isinstance(loader.sampler, RandomSampler) or loader.sampler.replacement:
        raise ValueError(
            "the stacked engine reproduces shuffled mini-batches (DataLoader(batch_size=B, shuffle=True)); "
            f"this training loader has batch_size={loader.batch_size} and sampler {type(loader.sampler).__name__}."
        )
    train = _tensors(loader.dataset, "training")
    datamodule.setup("test")
    test_set = _loader(datamodule, "test_dataloader").dataset
    test = _tensors(test_set, "test")
    for split, parts in (("training", train), ("test", test)):
        if len(parts) < 2 or parts[1].dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
            raise TypeError(f"the {split} set must hold (inputs, integer labels, ...) tensors for stacking.")
    val_set = held_out_validation(datamodule)
    val = None if val_set is None else _tensors(val_set, "validation")
    groups = None
    if num_groups is not None:
        if len(test) < 3:
            raise ValueError(f"data.num_groups={num_groups} but the test set has no group tensor (third item).")
        groups = test[2].long()
    return TensorData(
        train[0].float(),
        train[1].long(),
        test[0].float(),
        test[1].long(),
        groups,
        loader.batch_size,
        len(loader),
        loader.dataset,
        tuple(train[2:]),
        None if val is None else val[0].float(),
        None if val is None else val[1].long(),
    )


def load_tensors(data_cfg: Any) -> TensorData:
    """:func:`tensors_of` the datamodule a ``data`` config group instantiates."""
    from hydra.utils import instantiate

    datamodule = instantiate(data_cfg.datamodule)
    return tensors_of(datamodule, data_cfg.get("num_groups", getattr(datamodule, "num_groups", None)))
