"""Waterbirds (Sagawa et al. 2020) from a local copy: the real spurious-correlation benchmark.

Reads the released folder layout (``metadata.csv`` with ``img_filename``, ``y``, ``split`` (0
train, 1 val, 2 test) and ``place``, beside the image files); nothing is downloaded. Items are
``(x, y, group)`` with x a float ``3×S×S`` image in [0, 1], y the bird type (0 land, 1 water) and
group = 2·y + place, as in :class:`SpuriousDigitsDataModule`, so the same Group DRO and metric
configuration applies.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from lightning_aca.data.in_memory import InMemoryDataModule
from lightning_aca.validation import one_of, positive_int

_SPLITS = {"train": 0, "val": 1, "test": 2}


class WaterbirdsDataset(Dataset):
    """One split of a local Waterbirds copy; images are loaded with Pillow and resized on access."""

    def __init__(self, root: str | Path, split: str = "train", image_size: int = 64) -> None:
        root = Path(root)
        metadata = root / "metadata.csv"
        if not metadata.is_file():
            raise FileNotFoundError(
                f"no Waterbirds metadata.csv under root={str(root)!r}; download the Waterbirds dataset "
                "(Sagawa et al. 2020, 'waterbird_complete95_forest2water2') and pass its folder as root."
            )
        one_of("split", split, sorted(_SPLITS))
        image_size = positive_int("image_size", image_size)
        with metadata.open(newline="") as handle:
            rows = [row for row in csv.DictReader(handle) if int(row["split"]) == _SPLITS[split]]
        self.root, self.image_size = root, image_size
        self.files = [row["img_filename"] for row in rows]
        self.targets = torch.as_tensor([int(row["y"]) for row in rows], dtype=torch.long)
        self.groups = 2 * self.targets + torch.as_tensor([int(row["place"]) for row in rows], dtype=torch.long)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        from PIL import Image

        with Image.open(self.root / self.files[index]) as image:
            image = image.convert("RGB").resize((self.image_size, self.image_size))
            x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
        return x, self.targets[index], self.groups[index]


class WaterbirdsDataModule(InMemoryDataModule):
    """Waterbirds train/val/test splits as a LightningDataModule (val loader: the val split)."""

    num_classes = 2
    num_groups = 4

    def __init__(self, root: str | Path, image_size: int = 64, batch_size: int = 64, num_workers: int = 0) -> None:
        super().__init__(batch_size, num_workers)
        self.root, self.image_size = root, positive_int("image_size", image_size)
        self.input_shape = (3, self.image_size, self.image_size)

    def build(self) -> tuple[WaterbirdsDataset, WaterbirdsDataset, WaterbirdsDataset]:
        return tuple(WaterbirdsDataset(self.root, split, self.image_size) for split in _SPLITS)  # train, val, test
