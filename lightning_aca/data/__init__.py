"""Data modules: the collective wrapper and the sources (embedded digits, offline synthetic sets, torchvision, Waterbirds, text)."""

from lightning_aca.data.datamodule import CollectiveDataModule
from lightning_aca.data.digits import DigitsDataModule, load_digits_tensors
from lightning_aca.data.gaussian import GaussianDataModule
from lightning_aca.data.in_memory import InMemoryDataModule
from lightning_aca.data.reviews import RottenTomatoesDataModule
from lightning_aca.data.spurious import SpuriousDigitsDataModule, observed_groups
from lightning_aca.data.synthetic import SyntheticDataModule
from lightning_aca.data.text import TextCollate, TextCSVDataModule, TextDataModule, TextDataset
from lightning_aca.data.vision import CIFAR10DataModule, MNISTDataModule, TorchvisionDataModule
from lightning_aca.data.waterbirds import WaterbirdsDataModule

__all__ = [
    "CIFAR10DataModule",
    "CollectiveDataModule",
    "DigitsDataModule",
    "GaussianDataModule",
    "InMemoryDataModule",
    "MNISTDataModule",
    "RottenTomatoesDataModule",
    "SpuriousDigitsDataModule",
    "SyntheticDataModule",
    "TextCSVDataModule",
    "TextCollate",
    "TextDataModule",
    "TextDataset",
    "TorchvisionDataModule",
    "WaterbirdsDataModule",
    "load_digits_tensors",
    "observed_groups",
]
