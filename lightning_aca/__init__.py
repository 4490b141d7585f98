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

if TYPE_CHECKING:  # the names __getattr__ gives, for type checkers and IDEs
    from lightning_aca.analysis.critical_mass import estimate_alpha_star  # noqa: F401
    from lightning_aca.analysis.summary import summarize  # noqa: F401
    from lightning_aca.collective.collectives import Collective  # noqa: F401
    from lightning_aca.collective.dataset import CollectiveDataset  # noqa: F401
    from lightning_aca.collective.membership import select_disjoint_members, select_members  # noqa: F401
    from lightning_aca.collective.signals import BlendPattern, FeatureAssignment, PixelPatch, TokenInsertion  # noqa: F401
    from lightning_aca.collective.strategies import FeatureOnlyPlanting, LabelFlip, SignalErasing, SignalPlanting  # noqa: F401
    from lightning_aca.data.adult import AdultDataModule  # noqa: F401
    from lightning_aca.data.colored_mnist import ColoredMNISTDataModule  # noqa: F401
    from lightning_aca.data.csv import CSVDataModule  # noqa: F401
    from lightning_aca.data.datamodule import CollectiveDataModule  # noqa: F401
    from lightning_aca.data.digits import DigitsDataModule  # noqa: F401
    from lightning_aca.data.gaussian import GaussianDataModule  # noqa: F401
    from lightning_aca.data.mnist import MNISTDataModule  # noqa: F401
    from lightning_aca.data.mnist5k import MNIST5kDataModule  # noqa: F401
    from lightning_aca.data.reviews import RottenTomatoesDataModule  # noqa: F401
    from lightning_aca.data.spurious import SpuriousDigitsDataModule  # noqa: F401
    from lightning_aca.data.synthetic import SyntheticDataModule  # noqa: F401
    from lightning_aca.data.text import TextCSVDataModule  # noqa: F401
    from lightning_aca.data.vision import CIFAR10DataModule  # noqa: F401
    from lightning_aca.data.waterbirds import WaterbirdsDataModule  # noqa: F401
    from lightning_aca.firm.dp import DPSGD  # noqa: F401
    from lightning_aca.firm.gdro import GroupDRO  # noqa: F401
    from lightning_aca.gradient_strategies import GradientControl, GradientNeutralization  # noqa: F401
    from lightning_aca.metrics.callback import CollectiveMetrics  # noqa: F401
    from lightning_aca.metrics.success import CollectiveSuccess  # noqa: F401
    from lightning_aca.models import Classifier, TextClassifier  # noqa: F401
    from lightning_aca.runs.records import load_records  # noqa: F401
    from lightning_aca.theory import estimate_uniqueness, feature_label_success_bound  # noqa: F401

# Public names by the module defining each (keep in step with the TYPE_CHECKING block above).
_MODULES = {
    "lightning_aca.collective.signals": ("BlendPattern", "FeatureAssignment", "PixelPatch", "TokenInsertion"),
    "lightning_aca.collective.strategies": ("FeatureOnlyPlanting", "LabelFlip", "SignalErasing", "SignalPlanting"),
    "lightning_aca.collective.membership": ("select_members", "select_disjoint_members"),
    "lightning_aca.collective.collectives": ("Collective",),
    "lightning_aca.collective.dataset": ("CollectiveDataset",),
    "lightning_aca.data.datamodule": ("CollectiveDataModule",),
    "lightning_aca.data.digits": ("DigitsDataModule",),
    "lightning_aca.data.mnist": ("MNISTDataModule",),
    "lightning_aca.data.mnist5k": ("MNIST5kDataModule",),
    "lightning_aca.data.colored_mnist": ("ColoredMNISTDataModule",),
    "lightning_aca.data.adult": ("AdultDataModule",),
    "lightning_aca.data.csv": ("CSVDataModule",),
    "lightning_aca.data.spurious": ("SpuriousDigitsDataModule",),
    "lightning_aca.data.synthetic": ("SyntheticDataModule",),
    "lightning_aca.data.gaussian": ("GaussianDataModule",),
    "lightning_aca.data.vision": ("CIFAR10DataModule",),
    "lightning_aca.data.waterbirds": ("WaterbirdsDataModule",),
    "lightning_aca.data.reviews": ("RottenTomatoesDataModule",),
    "lightning_aca.data.text": ("TextCSVDataModule",),
    "lightning_aca.models": ("Classifier", "TextClassifier"),
    "lightning_aca.firm.dp": ("DPSGD",),
    "lightning_aca.firm.gdro": ("GroupDRO",),
    "lightning_aca.gradient_strategies": ("GradientControl", "GradientNeutralization"),
    "lightning_aca.metrics.callback": ("CollectiveMetrics",),
    "lightning_aca.metrics.success": ("CollectiveSuccess",),
    "lightning_aca.analysis.critical_mass": ("estimate_alpha_star",),
    "lightning_aca.runs.records": ("load_records",),
    "lightning_aca.analysis.summary": ("summarize",),
    "lightning_aca.theory": ("estimate_uniqueness", "feature_label_success_bound"),
}
_EXPORTS = {name: module for module, names in _MODULES.items() for name in names}
__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lightning_aca' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
