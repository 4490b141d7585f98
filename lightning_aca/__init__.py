"""lightning-aca: algorithmic collective action experiments as PyTorch Lightning plug-ins.

A collective of fractional size α changes its members' training data (Hardt, Mazumdar,
Mendler-Dünner, Zrnic, "Algorithmic Collective Action in Machine Learning", ICML 2023); this
package wraps any dataset or LightningDataModule with such a collective and measures its success.
"""

from __future__ import annotations

import importlib
from typing import Any

# Public names and the module defining each. Imported on first use, so that `aca-report` or a
# metric import does not pay for Lightning, Opacus or matplotlib it does not need.
_EXPORTS = {
    "BlendPattern": "lightning_aca.collective.signals",
    "CIFAR10DataModule": "lightning_aca.data.vision",
    "Classifier": "lightning_aca.models",
    "CollectiveDataModule": "lightning_aca.data.datamodule",
    "CollectiveDataset": "lightning_aca.collective.dataset",
    "CollectiveMetrics": "lightning_aca.metrics.callback",
    "CollectiveSuccess": "lightning_aca.metrics.success",
    "CriticalMass": "lightning_aca.analysis.critical_mass",
    "DPSGD": "lightning_aca.firm.dp",
    "DigitsDataModule": "lightning_aca.data.digits",
    "FeatureAssignment": "lightning_aca.collective.signals",
    "FeatureOnlyPlanting": "lightning_aca.collective.strategies",
    "GaussianDataModule": "lightning_aca.data.gaussian",
    "GradientControl": "lightning_aca.online",
    "GradientNeutralization": "lightning_aca.online",
    "GroupAccuracy": "lightning_aca.metrics.groups",
    "GroupDRO": "lightning_aca.firm.gdro",
    "LabelFlip": "lightning_aca.collective.strategies",
    "LogitShift": "lightning_aca.online",
    "MNISTDataModule": "lightning_aca.data.vision",
    "OnlineStrategy": "lightning_aca.online",
    "ParameterTarget": "lightning_aca.online",
    "PixelPatch": "lightning_aca.collective.signals",
    "Signal": "lightning_aca.collective.signals",
    "SignalErasing": "lightning_aca.collective.strategies",
    "SignalErasureSuccess": "lightning_aca.metrics.success",
    "SignalEvaluationDataset": "lightning_aca.collective.dataset",
    "SignalPlanting": "lightning_aca.collective.strategies",
    "SpuriousDigitsDataModule": "lightning_aca.data.spurious",
    "Strategy": "lightning_aca.collective.strategies",
    "SyntheticDataModule": "lightning_aca.data.synthetic",
    "TokenInsertion": "lightning_aca.collective.signals",
    "TorchvisionDataModule": "lightning_aca.data.vision",
    "WaterbirdsDataModule": "lightning_aca.data.waterbirds",
    "WorstGroupAccuracy": "lightning_aca.metrics.groups",
    "dataset_labels": "lightning_aca.collective.dataset",
    "estimate_critical_mass": "lightning_aca.analysis.critical_mass",
    "estimate_uniqueness": "lightning_aca.theory",
    "feature_label_critical_mass": "lightning_aca.theory",
    "feature_label_success_bound": "lightning_aca.theory",
    "gradient_neutralization_threshold": "lightning_aca.theory",
    "linear_member_gradient_bound": "lightning_aca.online.theory",
    "load_digits_tensors": "lightning_aca.data.digits",
    "load_records": "lightning_aca.analysis.records",
    "member_count": "lightning_aca.collective.membership",
    "neutralization_critical_alpha": "lightning_aca.online.theory",
    "observed_groups": "lightning_aca.data.spurious",
    "plot_curves": "lightning_aca.analysis.report",
    "select_members": "lightning_aca.collective.membership",
    "summarize": "lightning_aca.analysis.report",
}

__version__ = "0.1.0"
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lightning_aca' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
