"""Malformed CSV, TSV and JSON Lines files: finite tensors and a finite run, or one line naming the file, never more."""

import json
import math
import tempfile
import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lightning_aca.data.csv import CSVDataModule
from lightning_aca.data.text import TextCSVDataModule

ERRORS = (ValueError, TypeError, FileNotFoundError)
#: what a hand-made or exported table may hold by mistake: missing markers, non-finite numbers, stray quotes
FAULTS = ["nan", "inf", "?", "", "NA", '"', 'x"y', '"q"', ",", "\t", "good film"]
CLEAN = {"a": ["good film", "dull plot", "fine", "bad cast"], "b": ["0", "1", "2.5", "-3", "1e3"]}
SETTINGS = settings(
    max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@st.composite
def tables(draw):
    """A header (names may repeat; ``y`` last), clean rows, then a few faulty cells and maybe a short or long row."""
    names = [*draw(st.lists(st.sampled_from(["a", "b"]), min_size=1, max_size=3)), "y"]
    n = draw(st.integers(0, 30))
    rows = [[draw(st.sampled_from(CLEAN[name])) for name in names[:-1]] + [str(i % 2)] for i in range(n)]
    for _ in range(draw(st.integers(0, 2)) if n else 0):
        row, column = draw(st.integers(0, n - 1)), draw(st.integers(0, len(names) - 1))
        rows[row][column] = draw(st.sampled_from([*FAULTS, "-1", "2"]))
    if n and draw(st.integers(0, 4)) == 0:
        row = draw(st.integers(0, n - 1))
        rows[row] = rows[row][:-1] if draw(st.booleans()) else [*rows[row], "extra"]
    return names, rows


def _delimited(names, rows, sep, quote):
    def cell(value):
        return f'"{value}"' if quote and '"' not in value else value

    return "".join(sep.join(cell(v) for v in row) + "\n" for row in [names, *rows])


def _jsonl(names, rows, broken):
    lines = [json.dumps(dict(zip(names, row, strict=False))) for row in rows]
    if broken is not None and broken < len(lines):
        lines[broken] = lines[broken][:-2]
    return "".join(line + "\n" for line in lines)


def _outcome(path, build):
    """Set the module up: its tensors must be finite, or its error one line naming ``path``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            dm = build()
            dm.setup("fit")
        except ERRORS as err:
            message = str(err)
            assert path.name in message and "\n" not in message, message
            return None
    return dm


@given(tables(), st.sampled_from([",", ";", "\t"]), st.booleans(), st.sampled_from(["error", "drop", "mean"]))
@SETTINGS
def test_a_malformed_csv_sets_up_finite_tensors_or_names_the_file(
    make_trainer, plain_model, table, sep, quote, missing
):
    names, rows = table
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / ("table.tsv" if sep == "\t" else "table.csv")
        path.write_text(_delimited(names, rows, sep, quote))
        dm = _outcome(path, lambda: CSVDataModule(str(path), "y", sep=sep, missing=missing, test_fraction=0.3))
        if dm is None:
            return
        x, y = dm.train_dataset.tensors
        assert torch.isfinite(x).all() and torch.isfinite(dm.test_dataset.tensors[0]).all()
        assert x.shape[1] == dm.num_features and int(y.max()) < dm.num_classes
        trainer = make_trainer(max_epochs=1)
        trainer.fit(plain_model(in_features=dm.num_features, num_classes=dm.num_classes, hidden=0), dm)
        assert "val/loss" in trainer.callback_metrics
        assert all(math.isfinite(float(v)) for v in trainer.callback_metrics.values())


@given(tables(), st.sampled_from(["csv", "tsv", "jsonl"]), st.one_of(st.none(), st.integers(0, 90)))
@SETTINGS
def test_a_malformed_text_file_sets_up_or_names_the_file(tiny_text_model, table, kind, broken):
    names, rows = table
    names = ["text", *names[1:]]
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / f"texts.{kind}"
        if kind == "jsonl":
            path.write_text(_jsonl(names, rows, broken))
        else:
            path.write_text(_delimited(names, rows, "\t" if kind == "tsv" else ",", quote=broken is None))
        dm = _outcome(
            path,
            lambda: TextCSVDataModule(str(path), str(tiny_text_model), label_column="y", test_fraction=0.3),
        )
        if dm is not None:
            assert len(dm.train_dataset) + len(dm.test_dataset) >= 2
            assert all(text.strip() for text in dm.train_dataset.texts)
            assert int(dm.train_dataset.targets.min()) >= 0


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("header_only.csv", "text,label\n", r"header_only\.csv holds a header but no data rows"),
        ("unclosed.csv", 'text,label\n"a fine film,1\nbad,0\n', r"unclosed\.csv, line 2: unexpected end of data"),
        ("bad.jsonl", '{"text": "fine", "label": 1}\n{"text": "bad", "label": 0\n', r"bad\.jsonl, line 2: not a JSON"),
        ("one_class.csv", "text,label\nfine,1\ngood,1\n", r"one_class\.csv: every label is 1"),
        ("float.csv", "text,label\nfine,1\nbad,0.0\n", r"float\.csv, row 2: label '0\.0' is not a class index"),
        ("negative.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": -1}\n', r"row 2: label '-1'"),
    ],
)
def test_text_files_that_cannot_train_give_one_line_naming_the_file(tmp_path, tiny_text_model, name, content, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(ValueError, match=message) as info:
        TextCSVDataModule(str(tmp_path / name), str(tiny_text_model)).setup("fit")
    assert "\n" not in str(info.value)
