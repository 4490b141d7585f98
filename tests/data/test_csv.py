"""CSVDataModule: any local CSV (here written by the test), its split, labels, encoding and errors."""

import json
import math

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
    with pytest.raises(ValueError, match=r"bank\.csv, line 1: .*is sep=',' not the file's delimiter\?"):
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


def _write(path, header, rows):
    path.write_text(header + "\n" + "".join(f"{row}\n" for row in rows))
    return path


def _numbers_file(tmp_path, bad=None, n=40):
    """Columns x (numeric), z (numeric), y (label); ``bad`` maps a row index to the x value written there."""
    bad = bad or {}
    rows = [f"{bad.get(i, i / 10)},{(i * 7) % 5},{'ab'[i % 2]}" for i in range(n)]
    return _write(tmp_path / "nums.csv", "x,z,y", rows)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "?", ""])
def test_a_missing_or_non_finite_number_names_the_column_and_line(tmp_path, value):
    path = _numbers_file(tmp_path, {6: value, 30: value})
    with pytest.raises(ValueError) as info:
        CSVDataModule(str(path), "y").setup()
    message = str(info.value)
    assert f"column 'x' at lines 8 ('{value}'), 32 ('{value}')" in message and "missing=drop" in message
    assert "\n" not in message


def test_missing_drop_leaves_out_the_rows_and_mean_fills_the_training_mean(tmp_path):
    path = _numbers_file(tmp_path, {6: "nan", 30: "?"})
    with pytest.warns(UserWarning, match=r"missing=drop leaves out 2 of 40 rows"):
        dropped = CSVDataModule(str(path), "y", missing="drop")
        dropped.setup()
    assert len(dropped.train_dataset) + len(dropped.test_dataset) == 38
    filled = CSVDataModule(str(path), "y", missing="mean", test_fraction=0.5)
    filled.setup()
    x = torch.cat([filled.train_dataset.tensors[0], filled.test_dataset.tensors[0]])
    assert len(x) == 40 and torch.isfinite(x).all()
    assert filled.feature_names == ["x", "z"]  # a stray "?" leaves x numeric, not 38 one-hot columns
    assert (x[:, 0] == 0).sum() == 2  # the two missing values, at the training mean
    with pytest.raises(ValueError, match=r"missing must be one of \['error', 'drop', 'mean'\], got 'zero'"):
        CSVDataModule(str(path), "y", missing="zero")


def test_a_missing_label_is_an_error_or_a_dropped_row(tmp_path):
    path = _write(tmp_path / "labels.csv", "x,y", [f"{i},{'ab'[i % 2] if i != 3 else ''}" for i in range(20)])
    with pytest.raises(
        ValueError, match=r"labels\.csv: missing or non-finite values: label column 'y' at line 5 \(''\)"
    ):
        CSVDataModule(str(path), "y").setup()
    with pytest.warns(UserWarning, match="leaves out 1 of 20 rows with a missing label"):
        dm = CSVDataModule(str(path), "y", missing="mean")
        dm.setup()
    assert dm.classes == ["a", "b"]


def test_repeated_header_names_keep_both_columns(tmp_path):
    path = _write(tmp_path / "dup.csv", "a,a,y", [f"{i},{i % 3},{'ab'[i % 2]}" for i in range(20)])
    dm = CSVDataModule(str(path), "y")
    with pytest.warns(UserWarning, match=r"header names \['a'\] appear more than once.*\['a\.1'\]"):
        dm.setup()
    assert dm.feature_names == ["a", "a.1"]
    assert not torch.equal(dm.train_dataset.tensors[0][:, 0], dm.train_dataset.tensors[0][:, 1])


def test_a_headerless_file_by_names_or_by_column_index(tmp_path):
    path = _write(tmp_path / "plain.csv", "0.5,3,1", [f"{i / 10},{i % 4},{i % 2}" for i in range(30)])
    with pytest.warns(UserWarning, match=r"header row \['0\.5', '3', '1'\] holds only numbers.*header=False"):
        CSVDataModule(str(path), "1").setup()
    by_index = CSVDataModule(str(path), 2, header=False, drop=[1])
    by_index.setup()
    assert by_index.feature_names == ["0"] and len(by_index.train_dataset) + len(by_index.test_dataset) == 31
    named = CSVDataModule(str(path), "label", header=False, names=["u", "v", "label"])
    assert named.feature_names == ["u", "v"]
    with pytest.raises(ValueError, match=r"names= gives 2 names, but .*plain\.csv's first row has 3 fields"):
        CSVDataModule(str(path), "label", header=False, names=["u", "label"]).setup()


def test_columns_and_drop_choose_features_and_identifiers_are_warned_about(tmp_path):
    rows = [f"person {i},{20 + i % 30},{'mf'[i % 2]},2013-01-{i % 28 + 1:02d}-{i},{i % 2}" for i in range(60)]
    path = _write(tmp_path / "compas.csv", "name,age,sex,c_jail_in,two_year_recid", rows)
    dm = CSVDataModule(str(path), "two_year_recid")
    with pytest.warns(
        UserWarning, match=r"'name' \(60 values in 60 rows\), 'c_jail_in' \(60 values.*drop=\[name,c_jail_in\]"
    ):
        dm.setup()
    assert dm.num_features == 1 + 2 + 48 + 48  # train rows' names and dates, one feature each
    kept = CSVDataModule(str(path), "two_year_recid", drop=["name", "c_jail_in"])
    assert kept.feature_names == ["age", "sex=f", "sex=m"]
    chosen = CSVDataModule(str(path), "two_year_recid", columns=["sex"])
    assert chosen.feature_names == ["sex=f", "sex=m"]
    with pytest.raises(ValueError, match=r"drop=\['id'\] are not columns of .*compas\.csv"):
        CSVDataModule(str(path), "two_year_recid", drop=["id"]).setup()
    with pytest.raises(ValueError, match=r"drop= names the label column 'two_year_recid'"):
        CSVDataModule(str(path), "two_year_recid", drop=["two_year_recid"]).setup()
    with pytest.raises(ValueError, match=r"columns= and drop= leave no feature column"):
        CSVDataModule(str(path), "two_year_recid", columns=["age"], drop=["age"]).setup()


def test_a_stray_value_in_a_numeric_column_is_named_not_one_hot(tmp_path):
    path = _numbers_file(tmp_path, {12: "n/a"})
    with pytest.raises(ValueError, match=r"nums\.csv: missing or non-finite values: column 'x' at line 14 \('n/a'\)"):
        CSVDataModule(str(path), "y").setup()
    words = _numbers_file(tmp_path, {12: "twelve"})
    with pytest.raises(ValueError, match=r"gives 33 \(1 numeric \+ 32 one-hot: x 32\)"):
        CSVDataModule(str(words), "y", num_features=2).setup()
    with pytest.raises(
        ValueError, match=r"column 'x' is not categorical but holds the non-numeric value 'twelve' \(line 14\)"
    ):
        CSVDataModule(str(words), "y", categorical=[]).setup()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("x,y\n", r"f\.csv holds a header but no data rows"),
        ("", r"f\.csv is empty"),
        ("x,y\n1,a\n2,a\n3,a\n", r"f\.csv: class 'a' has 3 rows of 3; a classifier needs two classes"),
    ],
)
def test_files_without_rows_or_classes_give_one_line_naming_the_file(tmp_path, content, message):
    (tmp_path / "f.csv").write_text(content)
    with pytest.raises(ValueError, match=message):
        CSVDataModule(str(tmp_path / "f.csv"), "y").setup()


def test_aca_run_stops_with_one_line_on_a_nan_and_trains_with_missing_drop(tmp_path):
    from tests.test_cli import _aca_run

    path = _numbers_file(tmp_path, {5: "nan"})
    args = [
        "data=csv",
        f"data.datamodule.path={path}",
        "data.datamodule.label_column=y",
        "data.datamodule.num_features=2",
        "collective/signal=feature_assignment",
        "collective.strategy.signal.indices=[0]",
        "collective.strategy.signal.values=[5.0]",
        "collective.alpha=0.1",
        "trainer.max_epochs=1",
        "quiet=true",
        "logger=none",
    ]
    proc = _aca_run(args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    (first,) = proc.stderr.strip().splitlines()  # one line
    assert first.startswith("aca-run: error: data.datamodule: ") and "Traceback" not in proc.stderr
    assert first.endswith(
        f"{path}: missing or non-finite values: column 'x' at line 7 ('nan'); fix the file, or set "
        "missing=drop to leave those rows out or missing=mean to fill numbers with the training mean "
        "(aca-run: data.datamodule.missing=drop)."
    )
    assert not list(tmp_path.rglob("record.json"))
    proc = _aca_run([*args, "data.datamodule.missing=drop"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    record = json.loads(next(tmp_path.rglob("record.json")).read_text())
    assert record["theory"]["n_train"] == 31 and math.isfinite(record["metrics"]["aca/success"])
