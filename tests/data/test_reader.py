"""read_table: one reader for CSV, TSV and JSON Lines files, and one-line errors naming the file and line."""

import bz2
import json

import numpy as np
import pytest

from lightning_aca.data.reader import read_table, to_numbers


def _columns(table):
    return {name: column.tolist() for name, column in table.items()}


def test_strips_fields_skips_blank_and_comment_lines_and_gives_each_row_its_line(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('|junk line\na, b ,c\n1, "x, y",2\n\n3,y,4\n')
    table, lines = read_table(path, comment="|")
    assert _columns(table) == {"a": ["1", "3"], "b": ["x, y", "y"], "c": ["2", "4"]}
    assert lines.tolist() == [3, 5]
    named, _ = read_table(path, header=False, names=["p", "q", "r"], comment="|")
    assert named["p"].tolist() == ["a", "1", "3"]
    indexed, _ = read_table(path, header=False, comment="|")
    assert list(indexed) == ["0", "1", "2"]


def test_csv_tsv_and_compressed_jsonl_read_alike(tmp_path):
    (tmp_path / "t.csv").write_text("text,label\ngood film,1\nbad,0\n")
    (tmp_path / "t.tsv").write_text("text\tlabel\ngood film\t1\nbad\t0\n")
    with bz2.open(tmp_path / "t.jsonl.bz2", "wt") as f:
        f.write('{"text": "good film", "label": 1}\n\n{"text": "bad", "label": 0, "extra": null}\n')
    tables = [_columns(read_table(tmp_path / name)[0]) for name in ("t.csv", "t.tsv", "t.jsonl.bz2")]
    assert tables[0] == tables[1] == tables[2] == {"text": ["good film", "bad"], "label": ["1", "0"]}


def test_repeated_header_names_keep_every_column_numbered_with_a_warning(tmp_path):
    path = tmp_path / "compas.csv"
    path.write_text("decile_score,a,decile_score,a,y\n1,2,3,4,5\n")
    with pytest.warns(
        UserWarning, match=r"header names \['a', 'decile_score'\] appear more than once.*'decile_score\.1'"
    ):
        table, _ = read_table(path)
    assert _columns(table) == {"decile_score": ["1"], "a": ["2"], "decile_score.1": ["3"], "a.1": ["4"], "y": ["5"]}


def test_a_header_of_numbers_warns_that_the_file_may_have_none(tmp_path):
    path = tmp_path / "headerless.csv"
    path.write_text("1,2.5,0\n3,4.5,1\n")
    with pytest.warns(UserWarning, match=r"header row \['1', '2\.5', '0'\] holds only numbers.*header=False"):
        read_table(path)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", "", r"empty\.csv is empty"),
        ("header_only.csv", "a,b,y\n", r"header_only\.csv holds a header but no data rows"),
        ("short.csv", "a;b\n1;2\n3\n", r"short\.csv, line 3: 1 fields, but 2 columns \['a', 'b'\]; is sep=';'"),
        ("quote.csv", 'text,label\n"fine,1\nbad,0\n', r"quote\.csv, line 2: unexpected end of data .*unclosed"),
        ("stray.csv", 'text,label\n"a"b,1\n', r"stray\.csv, line 2: .*quote"),
        ("bad.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": \n', r"bad\.jsonl, line 2: not a JSON object"),
        ("list.jsonl", '{"text": "a"}\n[1, 2]\n', r"list\.jsonl, line 2: a JSON list, not an object"),
        ("keys.jsonl", '{"text": "a", "label": 1}\n{"text": "b"}\n', r"keys\.jsonl, line 2: no key \['label'\]"),
        ("twice.jsonl", '{"text": "a", "text": "b"}\n', r"twice\.jsonl, line 1: .*keys \['text'\] repeated"),
    ],
)
def test_malformed_files_give_one_line_naming_the_file_and_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    sep = ";" if name == "short.csv" else None
    with pytest.raises(ValueError, match=message) as info:
        read_table(path, sep=sep)
    assert "\n" not in str(info.value)


def test_argument_and_encoding_errors(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b"a,b\n1,\xff\n")
    with pytest.raises(ValueError, match=r"t\.csv: not UTF-8 text"):
        read_table(path)
    with pytest.raises(ValueError, match="sep must be one character"):
        read_table(path, sep=";;")
    with pytest.raises(FileNotFoundError, match=r"nowhere\.csv: no such file"):
        read_table(tmp_path / "nowhere.csv")
    (tmp_path / "g.csv.gz").write_text("not gzip")
    with pytest.raises(ValueError, match=r"g\.csv\.gz: cannot be read"):
        read_table(tmp_path / "g.csv.gz")


def test_to_numbers_reads_missing_markers_as_nan():
    assert np.array_equal(to_numbers(np.array(["1", " 2", "3.5e1", "-0"])), [1, 2, 35, 0])
    assert np.isnan(to_numbers(np.array(["1", "", "?", "NA", "nan", "null"]))[1:]).all()
    assert to_numbers(np.array(["?", ""])) is None
    assert to_numbers(np.array(["1", "x"])) is None
    assert json.dumps(to_numbers(np.array(["inf"])).tolist()) == "[Infinity]"
