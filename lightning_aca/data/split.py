"""The fixed stratified train/validation/test split every in-memory source uses."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def stratified_split(
    labels: Tensor, test_fraction: float, val_fraction: float = 0.0, seed: int = 0
) -> tuple[Tensor, Tensor | None, Tensor]:
    """Sorted index tensors ``(train, val, test)``; each class keeps its share in every part.

    ``test_fraction`` of all points is held out for testing, then ``val_fraction`` of the rest
    for validation (``val`` is ``None`` when ``val_fraction`` is 0). The same ``seed`` gives the
    same split (scikit-learn's ``train_test_split`` with ``stratify``).

    Example:
        >>> train, val, test = stratified_split(torch.tensor([0, 0, 0, 0, 1, 1, 1, 1]), 0.5)
        >>> len(train), val, len(test), torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])[test].tolist()
        (4, None, 4, [0, 0, 1, 1])
    """
    from sklearn.model_selection import train_test_split

    labels_np = labels.numpy()
    try:
        train_idx, test_idx = train_test_split(
            torch.arange(len(labels)).numpy(), test_size=test_fraction, stratify=labels_np, random_state=seed
        )
        val_idx = None
        if val_fraction > 0:
            train_idx, val_idx = train_test_split(
                train_idx, test_size=val_fraction, stratify=labels_np[train_idx], random_state=seed
            )
    except ValueError as err:  # scikit-learn's message names neither the data's classes nor our arguments
        counts = torch.bincount(labels - labels.min()) if len(labels) else labels
        smallest = int(counts[counts > 0].min()) if len(labels) else 0
        raise ValueError(
            f"a stratified split of {len(labels)} points (smallest class: {smallest} points) with "
            f"test_fraction={test_fraction} and val_fraction={val_fraction} leaves a part without every class "
            f"({err}); drop classes with few points, or choose fractions that give each part one point a class."
        ) from None
    train, test = torch.as_tensor(sorted(train_idx)), torch.as_tensor(sorted(test_idx))
    return train, None if val_idx is None else torch.as_tensor(sorted(val_idx)), test


def held_out_validation(datamodule: Any) -> Any:
    """The datamodule's validation dataset when it is held out apart from its test set, else ``None``.

    Datamodules that validate on their test set (no ``val_fraction``) have none: their validation
    accuracy is the test accuracy, not a split to tune on.
    """
    val_set = getattr(datamodule, "val_dataset", None)
    return None if val_set is None or val_set is getattr(datamodule, "test_dataset", None) else val_set
