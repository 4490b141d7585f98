import json
import logging
import warnings

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from lightning_aca import Classifier, CollectiveDataModule
from lightning_aca.cli import run_experiment
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
def fit_model(make_trainer):
    """``fit_model(make_model, datamodule, callbacks, max_epochs=None, max_steps=-1) -> (trainer, model)``."""

    def fit(make_model, datamodule, callbacks, max_epochs=None, max_steps=-1):
        """Seed, build the model (so every run starts from the same weights), train."""
        L.seed_everything(0, verbose=False)
        model = make_model()
        trainer = make_trainer(max_epochs, callbacks, max_steps=max_steps, num_sanity_val_steps=0, limit_val_batches=0)
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=r".*(does not have many workers|Secure RNG|Full backward hook|no `validation_step`).*"
            )
            trainer.fit(model, datamodule)
        return trainer, model

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


TINY = [
    "model=linear",
    "data=gaussian",
    "quiet=true",
    "trainer.max_epochs=2",
    "trainer.log_every_n_steps=1",
    "data.datamodule.n_train=300",
    "data.datamodule.n_test=100",
]


@pytest.fixture(scope="session")
def compose_gaussian(compose_config):
    """``compose_gaussian(*overrides)``: aca-run's configuration for a linear model on small Gaussian data."""
    return lambda *overrides: compose_config(*TINY, *overrides)


@pytest.fixture(scope="session")
def gradient_control_sweep(compose_gaussian, tmp_path_factory):
    """Two aca-run runs of collective=gradient_control (α below and above α*), as a sweep folder."""
    root = tmp_path_factory.mktemp("sweep")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a session fixture runs before the suite's one-thread fixture
    start = "collective.callbacks.gradient_control.start_step=5"
    for alpha in (0.05, 0.5):
        out = root / f"alpha_{alpha}"
        run_experiment(
            compose_gaussian("collective=gradient_control", f"collective.alpha={alpha}", start, f"output_dir={out}")
        )
        record = json.loads((out / "record.json").read_text())
        record["sweep"] = {"collective.alpha": alpha}  # what a multirun records
        (out / "record.json").write_text(json.dumps(record))
    torch.set_num_threads(threads)
    return root


@pytest.fixture(autouse=True)
def _quiet_lightning():
    logger = logging.getLogger("lightning.pytorch")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)
