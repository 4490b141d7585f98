import logging
import warnings

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from lightning_aca import Classifier, CollectiveDataModule
from lightning_aca.data.gaussian import GaussianDataModule
from lightning_aca.gradient_strategies import GradientStrategy


class LinearModule(L.LightningModule):
    """Logistic regression written without lightning_aca: one nn.Linear, mean cross-entropy, plain SGD."""

    def __init__(self, d=1, k=2, lr=0.1, scale=1.0):
        super().__init__()
        self.net = nn.Linear(d, k)
        self.lr, self.scale = lr, scale

    def forward(self, x):
        return self.scale * self.net(x.flatten(1))

    def training_step(self, batch, batch_idx):
        return nn.functional.cross_entropy(self(batch[0]), batch[1])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


class RecordBatches(L.Callback):
    """Keeps a copy of every training batch as it arrives (before later callbacks rewrite it) and as trained on."""

    def __init__(self):
        self.before, self.after = [], []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.before.append([t.clone() for t in batch])

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.after.append([t.clone() for t in batch])


@pytest.fixture
def linear_module():
    return LinearModule


@pytest.fixture
def record_batches():
    return RecordBatches


@pytest.fixture
def gaussian_dm():
    return gaussian_datamodule


@pytest.fixture
def classifier():
    return linear_classifier


@pytest.fixture
def fit_model():
    return fit


@pytest.fixture
def tiny_dm():
    return tiny_datamodule


def gaussian_datamodule(alpha, n_train=600, batch_size=60, target_class=0, seed=0):
    data = GaussianDataModule(n_train=n_train, n_test=200, batch_size=batch_size, seed=seed)
    return CollectiveDataModule(
        GradientStrategy(target_class=target_class), alpha, seed=seed, datamodule=data, return_membership=True
    )


def linear_classifier(lr=0.1):
    return Classifier(arch="linear", input_shape=(2,), num_classes=2, lr=lr, momentum=0.0)


def fit(make_model, datamodule, callbacks, max_epochs=None, max_steps=-1):
    """Seed, build the model (so every run starts from the same weights), train; return (trainer, model)."""
    L.seed_everything(0, verbose=False)
    model = make_model()
    trainer = L.Trainer(
        max_epochs=max_epochs,
        max_steps=max_steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=callbacks,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r".*(does not have many workers|Secure RNG|Full backward hook|no `validation_step`).*"
        )
        trainer.fit(model, datamodule)
    return trainer, model


def tiny_datamodule(alpha, inputs, labels, batch_size=None):
    dataset = TensorDataset(inputs, labels)
    return CollectiveDataModule(
        GradientStrategy(),
        alpha,
        train_dataset=dataset,
        test_dataset=dataset,
        batch_size=batch_size or len(inputs),
        return_membership=True,
    )


@pytest.fixture(autouse=True)
def _quiet_lightning():
    logger = logging.getLogger("lightning.pytorch")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)
