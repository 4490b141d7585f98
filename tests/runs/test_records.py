import json

import pytest

from lightning_aca import cli
from lightning_aca.runs import records as records_module
from lightning_aca.runs.records import (
    RECORD_NAME,
    SCHEMA_VERSION,
    failed_record,
    find_records,
    finished_record,
    group_key,
    load_records,
    make_record,
    write_atomically,
    write_record,
)


@pytest.fixture
def record(run_record):
    """``record(alpha, seed, firm="erm", success=0.5, **fields)``."""

    def record(alpha, seed, firm="erm", success=0.5, **fields):
        return run_record(alpha, seed, firm, {"aca/success": success, "aca/clean_acc": 0.97}, **fields)

    return record


def write(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_find_records_recurses_takes_files_and_lists_each_once(record, tmp_path):
    first = write(tmp_path / "sweep_a" / "0" / "record.json", record(0.01, 0))
    second = write(tmp_path / "sweep_a" / "1" / "record.json", record(0.01, 1))
    third = write(tmp_path / "sweep_b" / "0" / "record.json", record(0.1, 0))
    write(tmp_path / "sweep_b" / "0" / ".hydra" / "config.yaml", "seed: 0\n")
    loose = write(tmp_path / "single" / "my_run.json", record(0.1, 5))

    found = find_records([tmp_path / "sweep_a", tmp_path / "sweep_b", tmp_path / "sweep_a" / "1", loose])

    assert found == [first, second, third, loose]


def test_find_records_rejects_missing_path(tmp_path):
    with pytest.raises(ValueError, match="nope does not exist"):
        find_records([tmp_path / "nope"])


def test_load_records_skips_unusable_files_with_a_warning_naming_them(record, tmp_path):
    good = record(0.01, 0, success=0.75)
    write(tmp_path / "0" / "record.json", good)
    partial = write(tmp_path / "1" / "record.json", json.dumps(record(0.01, 1))[:40])
    future = write(tmp_path / "2" / "record.json", record(0.01, 2, schema_version=2))
    no_success = write(tmp_path / "3" / "record.json", {**record(0.01, 3), "metrics": {"aca/clean_acc": 0.9}})

    with pytest.warns(UserWarning) as caught:
        records = load_records([tmp_path])

    assert records == [good | {"target_class": 0}]  # y* under its current name beside the old one
    messages = [str(warning.message) for warning in caught]
    assert len(messages) == 3
    assert f"skipping {partial}: unreadable or partial JSON" in messages[0]
    assert f"skipping {future}: schema_version is 2" in messages[1]
    assert f"skipping {no_success}: metrics['aca/success'] must be a real number, got None (NoneType)" in messages[2]


def test_load_records_raises_naming_the_paths_when_nothing_is_usable(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no usable record\.json under .*empty \(none found\)"):
        load_records([tmp_path / "empty"])
    write(tmp_path / "bad" / "record.json", "{")
    with pytest.warns(UserWarning), pytest.raises(ValueError, match=r"bad \(1 found, none usable\)"):
        load_records([tmp_path / "bad"])


def test_group_key_drops_alpha_seed_and_hydra_keys_and_sorts_the_rest(record):
    run = record(0.01, 3)
    run["sweep"] |= {
        "data.seed": 7,
        "model.alpha": 0.5,
        "hydra.launcher.n_jobs": 4,
        "model.hidden": [64, 64],
        "+trainer.max_epochs": 5,
    }

    assert group_key(run) == (("+trainer.max_epochs", 5), ("firm", "erm"), ("model.hidden", "[64, 64]"))
    assert group_key(record(0.1, 0)) == group_key(record(0.01, 2)) != group_key(record(0.01, 2, firm="dpsgd"))
    assert group_key({"alpha": 0.1}) == ()


def test_the_device_choice_does_not_split_a_curve_but_another_trainer_does(record):
    on_cpu, on_gpu, ddp = record(0.01, 0), record(0.01, 1), record(0.01, 2)
    on_cpu["sweep"]["trainer"], on_gpu["sweep"]["trainer"], ddp["sweep"]["trainer"] = "cpu", "gpu", "ddp"
    assert group_key(on_cpu) == group_key(on_gpu) == group_key(record(0.01, 3)) == (("firm", "erm"),)
    assert group_key(ddp) == (("firm", "erm"), ("trainer", "ddp"))


def test_one_record_name_and_schema_version_shared_by_writer_and_reader():
    from lightning_aca import experiment

    assert cli.RECORD_NAME is RECORD_NAME and cli.write_record is write_record and experiment.make_record is make_record
    assert (RECORD_NAME, SCHEMA_VERSION) == ("record.json", 1)


def test_write_record_is_atomic_and_readable(record, tmp_path):
    run = record(0.01, 0)
    path = write_record(run, tmp_path / "run")
    assert path == tmp_path / "run" / RECORD_NAME
    assert [p.name for p in path.parent.iterdir()] == [RECORD_NAME]  # no temporary file left
    assert json.loads(path.read_text()) == run
    assert load_records([path]) == [run | {"target_class": 0}]


def test_a_failed_atomic_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = write_atomically(tmp_path / "report.csv", b"old")

    def fail(source, destination):
        raise OSError("disk full")

    monkeypatch.setattr(records_module.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_atomically(path, b"new")
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["report.csv"]


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ('{"schema_version": 1, "config": {"model": {"ar', "unreadable or partial JSON"),
        ("", "unreadable or partial JSON"),
        ("[1, 2]", "not a JSON object"),
    ],
)
def test_an_unreadable_record_is_not_a_finished_run(tmp_path, content, why):
    path = write(tmp_path / RECORD_NAME, content)
    with pytest.warns(UserWarning, match=rf"^retraining the run of {path}: {why}.*it is not a finished run\.$"):
        assert finished_record(tmp_path, {"model": {"arch": "cnn"}}) is None


def test_a_failed_record_is_neither_finished_nor_loaded(record, tmp_path):
    failed = failed_record(
        engine="trainer", overrides=["model.lr=1e30"], config={}, seed=0, error="the loss is nan", wall_time_s=1.0
    )
    path = write(tmp_path / "0" / RECORD_NAME, failed)
    write(tmp_path / "1" / RECORD_NAME, record(0.01, 1))
    with pytest.warns(UserWarning, match=r"the run failed without a result \(the loss is nan\)"):
        assert finished_record(path.parent, {}) is None
    with pytest.warns(UserWarning, match=rf"skipping {path}: the run failed without a result"):
        assert [r["seed"] for r in load_records([tmp_path])] == [1]
