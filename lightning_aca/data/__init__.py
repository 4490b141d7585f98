"""Data modules: the collective wrapper and the sources (embedded digits, shipped MNIST and MNIST-5k, UCI Adult and
Rotten Tomatoes reviews, local CSV and text files, offline synthetic sets, torchvision, Waterbirds)."""

from lightning_aca.data.adult import AdultDataModule, load_adult_tables
from lightning_aca.data.colored_mnist import ColoredMNISTDataModule
from lightning_aca.data.csv import CSVDataModule
from lightning_aca.data.datamodule import CollectiveDataModule
from lightning_aca.data.digits import DigitsDataModule, load_digits_tensors
from lightning_aca.data.gaussian import GaussianDataModule
from lightning_aca.data.in_memory import InMemoryDataModule
from lightning_aca.data.mnist import MNISTDataModule, load_mnist_tensors
from lightning_aca.data.mnist5k import MNIST5kDataModule, load_mnist5k_tensors
from lightning_aca.data.reviews import RottenTomatoesDataModule
from lightning_aca.data.split import stratified_split
from lightning_aca.data.spurious import SpuriousDataModule, SpuriousDigitsDataModule, observed_groups
from lightning_aca.data.synthetic import SyntheticDataModule
from lightning_aca.data.tabular import TabularDataModule, TabularEncoder
from lightning_aca.data.text import TextCollate, TextCSVDataModule, TextDataModule, TextDataset
from lightning_aca.data.vision import CIFAR10DataModule, TorchvisionDataModule
from lightning_aca.data.waterbirds import WaterbirdsDataModule

__all__ = [
    "AdultDataModule",
    "CIFAR10DataModule",
    "CSVDataModule",
    "CollectiveDataModule",
    "ColoredMNISTDataModule",
    "DigitsDataModule",
    "GaussianDataModule",
    "InMemoryDataModule",
    "MNIST5kDataModule",
    "MNISTDataModule",
    "RottenTomatoesDataModule",
    "SpuriousDataModule",
    "SpuriousDigitsDataModule",
    "SyntheticDataModule",
    "TabularDataModule",
    "TabularEncoder",
    "TextCSVDataModule",
    "TextCollate",
    "TextDataModule",
    "TextDataset",
    "TorchvisionDataModule",
    "WaterbirdsDataModule",
    "load_adult_tables",
    "load_digits_tensors",
    "load_mnist5k_tensors",
    "load_mnist_tensors",
    "observed_groups",
    "stratified_split",
]
