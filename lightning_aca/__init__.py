"""lightning-aca: algorithmic collective action experiments as PyTorch Lightning plug-ins.

A collective of fractional size α changes its members' training data (Hardt, Mazumdar,
Mendler-Dünner, Zrnic, "Algorithmic Collective Action in Machine Learning", ICML 2023); this
package wraps any dataset or LightningDataModule with such a collective and measures its success.
"""

from lightning_aca.analysis.critical_mass import CriticalMass, estimate_critical_mass
from lightning_aca.analysis.records import load_records
from lightning_aca.analysis.report import plot_curves, summarize
from lightning_aca.collective.dataset import CollectiveDataset, SignalEvaluationDataset, dataset_labels
from lightning_aca.collective.membership import member_count, select_members
from lightning_aca.collective.signals import BlendPattern, FeatureAssignment, PixelPatch, Signal, TokenInsertion
from lightning_aca.collective.strategies import (
    FeatureOnlyPlanting,
    LabelFlip,
    SignalErasing,
    SignalPlanting,
    Strategy,
)
from lightning_aca.data.datamodule import CollectiveDataModule
from lightning_aca.data.digits import DigitsDataModule, load_digits_tensors
from lightning_aca.data.spurious import SpuriousDigitsDataModule, observed_groups
from lightning_aca.data.synthetic import SyntheticDataModule
from lightning_aca.data.vision import CIFAR10DataModule, MNISTDataModule, TorchvisionDataModule
from lightning_aca.firm.dp import DPSGD
from lightning_aca.firm.gdro import GroupDRO
from lightning_aca.metrics.callback import CollectiveMetrics
from lightning_aca.metrics.groups import GroupAccuracy, WorstGroupAccuracy
from lightning_aca.metrics.success import CollectiveSuccess, SignalErasureSuccess
from lightning_aca.models import Classifier
from lightning_aca.theory import (
    estimate_uniqueness,
    feature_label_critical_mass,
    feature_label_success_bound,
    gradient_neutralization_threshold,
)

__version__ = "0.1.0"

__all__ = [
    "DPSGD",
    "BlendPattern",
    "CIFAR10DataModule",
    "Classifier",
    "CollectiveDataModule",
    "CollectiveDataset",
    "CollectiveMetrics",
    "CollectiveSuccess",
    "CriticalMass",
    "DigitsDataModule",
    "FeatureAssignment",
    "FeatureOnlyPlanting",
    "GroupAccuracy",
    "GroupDRO",
    "LabelFlip",
    "MNISTDataModule",
    "PixelPatch",
    "Signal",
    "SignalErasing",
    "SignalErasureSuccess",
    "SignalEvaluationDataset",
    "SignalPlanting",
    "SpuriousDigitsDataModule",
    "Strategy",
    "SyntheticDataModule",
    "TokenInsertion",
    "TorchvisionDataModule",
    "WorstGroupAccuracy",
    "dataset_labels",
    "estimate_critical_mass",
    "estimate_uniqueness",
    "feature_label_critical_mass",
    "feature_label_success_bound",
    "gradient_neutralization_threshold",
    "load_digits_tensors",
    "load_records",
    "member_count",
    "observed_groups",
    "plot_curves",
    "select_members",
    "summarize",
]
