"""Reference models: plain LightningModules, nothing ACA-specific.

:class:`Classifier` (linear, MLP, small CNN over tensors) and :class:`TextClassifier` (a Hugging
Face encoder over tokenized text); :func:`write_compact_copy` writes a half-precision copy of a
Hugging Face model for shipping.
"""

from lightning_aca.models.classifier import Classifier, linear, mlp, small_cnn
from lightning_aca.models.compact import write_compact_copy
from lightning_aca.models.text import TextClassifier, load_sequence_classifier

__all__ = [
    "Classifier",
    "TextClassifier",
    "linear",
    "load_sequence_classifier",
    "mlp",
    "small_cnn",
    "write_compact_copy",
]
