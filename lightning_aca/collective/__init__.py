"""What a collective does to data: signals g, strategies h, membership and wrapped datasets."""

from lightning_aca.collective.dataset import CollectiveDataset, SignalEvaluationDataset, dataset_labels
from lightning_aca.collective.membership import member_count, select_members
from lightning_aca.collective.signals import BlendPattern, FeatureAssignment, PixelPatch, Signal, TokenInsertion
from lightning_aca.collective.strategies import (
    FeatureOnlyPlanting,
    LabelFlip,
    SignalErasing,
    SignalPlanting,
    SignalStrategy,
    Strategy,
)

__all__ = [
    "BlendPattern",
    "CollectiveDataset",
    "FeatureAssignment",
    "FeatureOnlyPlanting",
    "LabelFlip",
    "PixelPatch",
    "Signal",
    "SignalErasing",
    "SignalEvaluationDataset",
    "SignalPlanting",
    "SignalStrategy",
    "Strategy",
    "TokenInsertion",
    "dataset_labels",
    "member_count",
    "select_members",
]
