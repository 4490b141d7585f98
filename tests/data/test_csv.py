"""CSVDataModule: any local CSV (here written by the test), its split, labels, encoding and errors."""

import pytest
import torch

from lightning_aca.cli import run_experiment
from lightning_aca.data.csv import CSVDataModule
from lightning_aca.experiment import ConfigError, validate
from lightning_aca.stacked.data import tensors_of

JOBS = ("admin.", "blue-collar", "technician")


@pytest.fixture
def bank(tmp_path):
    """A Bank-Marketing-like file: ';'-separated, quoted strings, a numeric-looking zip code, label "y"."""
    lines = ['"age";"job";"zip";"balance";"y"']
    for i in range(60):
        lines.append(
            f'{20 + i};"{JOBS[i % 3]}";{1000 + i % 2};{(i * 37) % 500 - 100};"{"yes" if i % 4 == 0 else "no"}"'
        )
    path = tmp_path / "bank.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_sep_semicolon_auto_detected_categories_sorted_classes_and_a_stratified_split(bank):
    dm = CSVDataModule(str(bank), label_column="y", sep=";", test_fraction=0.25)
    dm.setup()
    assert dm.classes == ["no", "yes"] and dm.num_classes == 2
    assert dm.feature_names == ["age", "zip", "balance", "job=admin.", "job=blue-collar", "job=technician"]
    assert dm.num_features == 6 and dm.input_shape == (6,)
    (x_train, y_train), y_test = dm.train_dataset.tensors, dm.test_dataset.tensors[1]
    assert (x_train.dtype, y_train.dtype, len(y_train), len(y_test)) == (torch.float32, torch.int64, 45, 15)
    assert (torch.bincount(y_train).tolist(), torch.bincount(y_test).tolist()) == ([34, 11], [11, 4])
    assert torch.allclose(x_train[:, :3].mean(0), torch.zeros(3), atol=1e-5)
    assert (x_train[:, 3:].sum(1) == 1).all()


def test_split_seed_fixes_the_split_and_given_categorical_columns_are_one_hot(bank):
    def test_rows(**kwargs):
        dm = CSVDataModule(str(bank), "y", sep=";", **kwargs)
        dm.setup()
        return dm.test_dataset.tensors[0]

    assert torch.equal(test_rows(split_seed=1), test_rows(split_seed=1))
    assert not torch.equal(test_rows(split_seed=1), test_rows(split_seed=2))
    dm = CSVDataModule(str(bank), "y", sep=";", categorical=["job", "zip"])
    assert dm.feature_names == [
        "age",
        "balance",
        "job=admin.",
        "job=blue-collar",
        "job=technician",
        "zip=1000",
        "zip=1001",
    ]


def test_numeric_labels_are_sorted_as_numbers(tmp_path):
    path = tmp_path / "digits.csv"
    path.write_text("x,label\n" + "".join(f"{i},{(1, 2, 10)[i % 3]}\n" for i in range(30)))
    dm = CSVDataModule(str(path), "label", num_classes=3)
    dm.setup()
    assert dm.classes == ["1", "2", "10"]
    assert torch.bincount(dm.train_dataset.tensors[1]).tolist() == [8, 8, 8]


def test_errors_name_the_argument_and_the_right_value(bank, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"path='nowhere\.csv' is not a file"):
        CSVDataModule("nowhere.csv", "y")
    with pytest.raises(
        ValueError, match=r"label_column='label' is not a column of .*\['age', 'job', 'zip', 'balance', 'y'\]"
    ):
        CSVDataModule(str(bank), "label", sep=";").setup()
    with pytest.raises(
        ValueError, match=r"bank\.csv, line 1: .*is sep=',' not the file's delimiter\?"
    ):
        CSVDataModule(str(bank), "y").setup()
    with pytest.raises(
        ValueError, match=r"num_features=51, but .* gives 6 \(3 numeric \+ 3 one-hot: job 3\): set num_features=6"
    ):
        CSVDataModule(str(bank), "y", sep=";", num_features=51).setup()
    with pytest.raises(ValueError, match=r"num_classes=3, but .* gives 2 \(classes \['no', 'yes'\]\).*num_classes=2"):
        CSVDataModule(str(bank), "y", sep=";", num_classes=3).setup()
    with pytest.raises(ValueError, match=r"categorical=\['town'\] are not columns of .*bank\.csv"):
        CSVDataModule(str(bank), "y", sep=";", categorical=["town"]).setup()
    (tmp_path / "rare.csv").write_text("x,y\n1,a\n2,a\n3,b\n")
    with pytest.raises(ValueError, match=r"rare\.csv: class 'b' has 1 rows of 3; .*at least 2 rows"):
        CSVDataModule(str(tmp_path / "rare.csv"), "y").setup()


def test_the_stacked_engine_reads_it_as_tensors(bank):
    data = tensors_of(CSVDataModule(str(bank), "y", sep=";", batch_size=16))
    assert (data.n, tuple(data.x_test.shape), data.batches) == (48, (12, 6), 3)


def test_aca_run_needs_the_file_and_width_and_trains_on_a_csv(compose_config, bank, tmp_path):
    with pytest.raises(
        ConfigError,
        match=r"data\.datamodule\.path, data\.datamodule\.label_column, data\.datamodule\.num_features must be set",
    ):
        validate(compose_config("data=csv"))
    overrides = [
        "data=csv",
        f"data.datamodule.path={bank}",
        "data.datamodule.label_column=y",
        'data.datamodule.sep=";"',
        "collective/signal=feature_assignment",
        "collective.strategy.signal.indices=[0]",
        "collective.strategy.signal.values=[5.0]",
        "collective.alpha=0.1",
        "trainer.max_epochs=2",
        "quiet=true",
        "logger=none",
    ]
    with pytest.raises(ValueError, match=r"set num_features=6 \(aca-run: data\.datamodule\.num_features=6\)"):
        run_experiment(compose_config(*overrides, "data.datamodule.num_features=7", f"output_dir={tmp_path / 'bad'}"))
    record = run_experiment(compose_config(*overrides, "data.datamodule.num_features=6", f"output_dir={tmp_path}"))
    assert record["config"]["model"]["input_shape"] == [6] and record["theory"]["n_train"] == 48
    assert record["metrics"]["aca/members"] == 5.0  # round(0.1 * 48)
