"""lightning-aca: algorithmic collective action experiments as PyTorch Lightning plug-ins.

A collective of fractional size α changes its members' training data (Hardt, Mazumdar,
Mendler-Dünner, Zrnic, "Algorithmic Collective Action in Machine Learning", ICML 2023); this
package wraps any dataset or LightningDataModule with such a collective and measures its success.

The names below are the user-facing API; everything else lives in its subpackage
(``lightning_aca.collective``, ``.data``, ``.metrics``, ``.firm``, ``.gradient_strategies``,
``.analysis``, ``.theory``). Names are imported on first use, so that ``aca-report`` or a metric
import does not pay for Lightning, Opacus or matplotlib it does not need.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("lightning-aca")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0"

if TYPE_CHECKING:
    from lightning_aca.analysis.critical_mass import estimate_alpha_star
    from lightning_aca.analysis.summary import summarize
    from lightning_aca.collective.collectives import Collective
    from lightning_aca.collective.dataset import CollectiveDataset
    from lightning_aca.collective.membership import select_disjoint_members, select_members
    from lightning_aca.collective.signals import BlendPattern, FeatureAssignment, PixelPatch, TokenInsertion
    from lightning_aca.collective.strategies import FeatureOnlyPlanting, LabelFlip, SignalErasing, SignalPlanting
    from lightning_aca.data.adult import AdultDataModule
    from lightning_aca.data.colored_mnist import ColoredMNISTDataModule
    from lightning_aca.data.csv import CSVDataModule
    from lightning_aca.data.datamodule import CollectiveDataModule
    from lightning_aca.data.digits import DigitsDataModule
    from lightning_aca.data.gaussian import GaussianDataModule
    from lightning_aca.data.mnist5k import MNIST5kDataModule
    from lightning_aca.data.reviews import RottenTomatoesDataModule
    from lightning_aca.data.spurious import SpuriousDigitsDataModule
    from lightning_aca.data.synthetic import SyntheticDataModule
    from lightning_aca.data.text import TextCSVDataModule
    from lightning_aca.data.vision import CIFAR10DataModule, MNISTDataModule
    from lightning_aca.data.waterbirds import WaterbirdsDataModule
    from lightning_aca.firm.dp import DPSGD
    from lightning_aca.firm.gdro import GroupDRO
    from lightning_aca.gradient_strategies import GradientControl, GradientNeutralization
    from lightning_aca.metrics.callback import CollectiveMetrics
    from lightning_aca.metrics.success import CollectiveSuccess
    from lightning_aca.models import Classifier, TextClassifier
    from lightning_aca.runs.records import load_records
    from lightning_aca.theory import estimate_uniqueness, feature_label_success_bound

# Public names and the module defining each (keep in step with the TYPE_CHECKING block above).
_EXPORTS = {
    # the collective: signals g, strategies h, membership, the wrapped data
    "BlendPattern": "lightning_aca.collective.signals",
    "FeatureAssignment": "lightning_aca.collective.signals",
    "PixelPatch": "lightning_aca.collective.signals",
    "TokenInsertion": "lightning_aca.collective.signals",
    "FeatureOnlyPlanting": "lightning_aca.collective.strategies",
    "LabelFlip": "lightning_aca.collective.strategies",
    "SignalErasing": "lightning_aca.collective.strategies",
    "SignalPlanting": "lightning_aca.collective.strategies",
    "select_members": "lightning_aca.collective.membership",
    "select_disjoint_members": "lightning_aca.collective.membership",
    "Collective": "lightning_aca.collective.collectives",
    "CollectiveDataset": "lightning_aca.collective.dataset",
    "CollectiveDataModule": "lightning_aca.data.datamodule",
    # data sources
    "DigitsDataModule": "lightning_aca.data.digits",
    "MNIST5kDataModule": "lightning_aca.data.mnist5k",
    "ColoredMNISTDataModule": "lightning_aca.data.colored_mnist",
    "AdultDataModule": "lightning_aca.data.adult",
    "CSVDataModule": "lightning_aca.data.csv",
    "SpuriousDigitsDataModule": "lightning_aca.data.spurious",
    "SyntheticDataModule": "lightning_aca.data.synthetic",
    "GaussianDataModule": "lightning_aca.data.gaussian",
    "MNISTDataModule": "lightning_aca.data.vision",
    "CIFAR10DataModule": "lightning_aca.data.vision",
    "WaterbirdsDataModule": "lightning_aca.data.waterbirds",
    "RottenTomatoesDataModule": "lightning_aca.data.reviews",
    "TextCSVDataModule": "lightning_aca.data.text",
    # the firm's model and algorithm
    "Classifier": "lightning_aca.models",
    "TextClassifier": "lightning_aca.models",
    "DPSGD": "lightning_aca.firm.dp",
    "GroupDRO": "lightning_aca.firm.gdro",
    # the collective's gradient strategies
    "GradientControl": "lightning_aca.gradient_strategies",
    "GradientNeutralization": "lightning_aca.gradient_strategies",
    # measurement, analysis, theory
    "CollectiveMetrics": "lightning_aca.metrics.callback",
    "CollectiveSuccess": "lightning_aca.metrics.success",
    "estimate_alpha_star": "lightning_aca.analysis.critical_mass",
    "load_records": "lightning_aca.runs.records",
    "summarize": "lightning_aca.analysis.summary",
    "estimate_uniqueness": "lightning_aca.theory",
    "feature_label_success_bound": "lightning_aca.theory",
}

__all__ = [
    "DPSGD",
    "AdultDataModule",
    "BlendPattern",
    "CIFAR10DataModule",
    "CSVDataModule",
    "Classifier",
    "Collective",
    "CollectiveDataModule",
    "CollectiveDataset",
    "CollectiveMetrics",
    "CollectiveSuccess",
    "ColoredMNISTDataModule",
    "DigitsDataModule",
    "FeatureAssignment",
    "FeatureOnlyPlanting",
    "GaussianDataModule",
    "GradientControl",
    "GradientNeutralization",
    "GroupDRO",
    "LabelFlip",
    "MNIST5kDataModule",
    "MNISTDataModule",
    "PixelPatch",
    "RottenTomatoesDataModule",
    "SignalErasing",
    "SignalPlanting",
    "SpuriousDigitsDataModule",
    "SyntheticDataModule",
    "TextCSVDataModule",
    "TextClassifier",
    "TokenInsertion",
    "WaterbirdsDataModule",
    "__version__",
    "estimate_alpha_star",
    "estimate_uniqueness",
    "feature_label_success_bound",
    "load_records",
    "select_disjoint_members",
    "select_members",
    "summarize",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lightning_aca' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
