"""Shared test helpers: a LightningModule written without lightning_aca, a quiet CPU Trainer, aca-run's configs.

Tests are collected with ``--import-mode=importlib``, so test files cannot import each other or this
file; the helpers are handed out by fixtures instead. ``plain_model`` gives the class (subclass it
inside a test, or call it with options); ``make_trainer`` gives a Trainer builder; ``compose_config``
composes aca-run's configuration with overrides; ``tiny_text_model`` is the directory of a tiny,
randomly initialised BERT with its tokenizer, and ``make_texts`` writes a two-class toy corpus.
``wandb_runs`` runs W&B offline and keeps what each W&B run holds as it finishes; ``hydra_in_process``
undoes what an in-process ``aca-run`` multirun leaves behind.
"""

import logging
import random
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig
from torch import nn

from lightning_aca.runs.records import write_record


class PlainModel(L.LightningModule):
    """A classifier as a user writes one, knowing nothing of lightning_aca or Opacus.

    Batches are ``(x, y)`` (unpacked as ``x, y = batch``, so an extra field is an error) or dicts with
    keys ``"x"`` and ``"y"``.

    Args:
        in_features: inputs are flattened to this many features.
        num_classes: outputs.
        hidden: width of the hidden layer; 0 for a linear model.
        norm: BatchNorm after the hidden layer (which DP-SGD cannot train).
        dropout: dropout probability after the hidden layer (0 for none).
        lr, momentum: plain SGD.
        per_sample: ``training_step`` returns per-sample losses ``(batch,)`` (what GroupDRO needs)
            instead of their mean.
        scheduler: ``None``; ``"step"`` for ``[opt], [StepLR(opt, 1, gamma=0.5)]``; or ``"plateau"``
            for lightning-hydra-template's dict with ``ReduceLROnPlateau`` monitoring ``"val/loss"``.
    """

    def __init__(
        self,
        in_features=64,
        num_classes=10,
        hidden=64,
        norm=False,
        dropout=0.0,
        lr=0.1,
        momentum=0.9,
        per_sample=False,
        scheduler=None,
    ):
        super().__init__()
        if hidden:
            layers = [nn.Flatten(), nn.Linear(in_features, hidden)]
            layers += [nn.BatchNorm1d(hidden)] if norm else []
            layers += [nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else []) + [nn.Linear(hidden, num_classes)]
        else:
            layers = [nn.Flatten(), nn.Linear(in_features, num_classes)]
        self.net = nn.Sequential(*layers)
        self.lr, self.momentum, self.per_sample, self.scheduler = lr, momentum, per_sample, scheduler

    def forward(self, x):
        return self.net(x)

    @staticmethod
    def unpack(batch):
        if isinstance(batch, Mapping):
            return batch["x"], batch["y"]
        x, y = batch
        return x, y

    def training_step(self, batch, batch_idx):
        x, y = self.unpack(batch)
        losses = nn.functional.cross_entropy(self(x), y, reduction="none")
        return losses if self.per_sample else losses.mean()  # not logged: logging every step slows the tests

    def validation_step(self, batch, batch_idx):
        x, y = self.unpack(batch)
        logits = self(x)
        self.log("val/loss", nn.functional.cross_entropy(logits, y))
        self.log("val/acc", (logits.argmax(1) == y).float().mean())

    def test_step(self, batch, batch_idx):
        x, y = self.unpack(batch)
        self.log("test/acc", (self(x).argmax(1) == y).float().mean())

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=self.lr, momentum=self.momentum)
        if self.scheduler == "step":
            return [optimizer], [torch.optim.lr_scheduler.StepLR(optimizer, 1, gamma=0.5)]
        if self.scheduler == "plateau":
            plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.1, patience=0)
            return {
                "optimizer": optimizer,
                "lr_scheduler": {"scheduler": plateau, "monitor": "val/loss", "interval": "epoch", "frequency": 1},
            }
        if self.scheduler is not None:
            raise ValueError(f"scheduler must be None, 'step' or 'plateau', got {self.scheduler!r}.")
        return optimizer


def _make_trainer(max_epochs=1, callbacks=(), **kwargs):
    """A CPU Trainer with no logger, checkpoints, progress bar or summary; ``kwargs`` override any of it."""
    options = dict(
        max_epochs=max_epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    return L.Trainer(callbacks=list(callbacks), **(options | kwargs))


def _compose_config(*overrides, return_hydra_config=False):
    """aca-run's configuration with ``overrides``, as Hydra composes it for a run."""
    with initialize_config_module("lightning_aca.conf", version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=return_hydra_config)


@pytest.fixture
def wandb_runs(tmp_path, monkeypatch):
    """W&B offline with its files under ``tmp_path``; a list that gets each run's job type, group, config and summary.

    An offline run's directory holds only its binary transaction log, so the run object is read as
    it finishes.
    """
    from wandb.sdk.wandb_run import Run

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for variable in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(variable, str(tmp_path / variable.lower()))
    finished = []
    finish = Run.finish

    def plain(value):  # a logged table or image is a summary sub-dict: {"_type": "table-file", "nrows": ...}
        if not hasattr(value, "keys"):  # W&B's summary and config objects are not Mappings
            return value
        return {key: plain(value[key]) for key in value.keys()}  # noqa: SIM118

    def read_then_finish(run, *args, **kwargs):
        summary, config = plain(run.summary), plain(run.config)
        finished.append(SimpleNamespace(job_type=run.job_type, group=run.group, config=config, summary=summary))
        return finish(run, *args, **kwargs)

    monkeypatch.setattr(Run, "finish", read_then_finish)
    return finished


@pytest.fixture
def hydra_in_process():
    """Restore ``HydraConfig`` and the root logger's handlers, which an in-process multirun leaves set."""
    saved, root = HydraConfig.instance().cfg, logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    HydraConfig.instance().cfg = saved
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def plain_model():
    """The :class:`PlainModel` class."""
    return PlainModel


@pytest.fixture
def make_trainer():
    """``make_trainer(max_epochs=1, callbacks=(), **trainer_kwargs) -> L.Trainer``."""
    return _make_trainer


@pytest.fixture(scope="session")
def compose_config():
    """``compose_config(*overrides, return_hydra_config=False) -> DictConfig``; session-scoped for module fixtures."""
    return _compose_config


@pytest.fixture(autouse=True)
def _single_torch_thread():
    """The tests' models are tiny: threads gain nothing and stall when CI's 2 cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _work_in_a_temporary_directory(tmp_path, monkeypatch):
    """Trainers default to writing checkpoints and logs under the working directory: keep them out of the repo."""
    monkeypatch.chdir(tmp_path)


#: the toy corpus's words: class 0 and class 1 each have their own, both share the neutral ones
_NEGATIVE = ["bad", "dull", "poor", "weak", "boring"]
_POSITIVE = ["good", "great", "fine", "superb", "moving"]
_NEUTRAL = ["the", "a", "film", "movie", "plot", "is", "was", "and", "cast", "story"]
_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "~", "z", "##x", "##q", *_NEGATIVE, *_POSITIVE, *_NEUTRAL]


def _make_texts(n, seed=0, words=(6, 14)):
    """``(texts, labels)``: ``n`` toy reviews, label 1 texts with positive words, label 0 with negative ones."""
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        label = i % 2
        own = _POSITIVE if label else _NEGATIVE
        length = rng.randint(*words)
        texts.append(" ".join(rng.choice(own) if rng.random() < 0.3 else rng.choice(_NEUTRAL) for _ in range(length)))
        labels.append(label)
    return texts, labels


@pytest.fixture(scope="session")
def tiny_text_model(tmp_path_factory):
    """Directory of a tiny randomly initialised BERT (hidden 16, 1 layer) and its WordPiece tokenizer (vocab of 30)."""
    from transformers import BertConfig, BertModel, BertTokenizer

    directory = tmp_path_factory.mktemp("tiny_bert")
    BertTokenizer(vocab={w: i for i, w in enumerate(_VOCAB)}).save_pretrained(directory)
    config = BertConfig(
        vocab_size=len(_VOCAB),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def make_texts():
    """``make_texts(n, seed=0, words=(6, 14)) -> (texts, labels)``: the toy two-class corpus."""
    return _make_texts


def _run_record(alpha, seed, firm="erm", metrics=None, **fields):
    """A run record of schema 1 for the sweep point ``(alpha, seed, firm)``."""
    sweep = {"collective.alpha": alpha, "seed": seed, "firm": firm}
    return {
        "schema_version": 1,
        "overrides": [f"{key}={value}" for key, value in sweep.items()],
        "sweep": sweep,
        "alpha": alpha,
        "seed": seed,
        "strategy": "SignalPlanting",
        "target_class": 0,
        "metrics": {"aca/success": 0.5, "aca/clean_acc": 0.97} if metrics is None else metrics,
        "epsilon": None,
        **fields,
    }


@pytest.fixture(scope="session")
def run_record():
    """``run_record(alpha, seed, firm="erm", metrics=None, **fields) -> dict``: a record as aca-run writes it."""
    return _run_record


def _write_records(records: list[dict], root: Path) -> Path:
    for job, record in enumerate(records):
        write_record(record, root / str(job))
    return root


@pytest.fixture(scope="session")
def write_records():
    """``write_records(records, root) -> root``: each record as ``root/<job>/record.json``, as a sweep leaves them."""
    return _write_records
