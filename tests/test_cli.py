import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from lightning_aca import cli
from lightning_aca.cli import run_experiment
from lightning_aca.experiment import ConfigError, validate
from lightning_aca.runs.divergence import NonFiniteTrainingError
from lightning_aca.runs.records import RECORD_NAME, SCHEMA_VERSION, finished_record, load_records, sweep_params

FAST = ["trainer.max_epochs=3", "quiet=true", "logger=none"]


def _aca_run(args, cwd, env=None, timeout=180):
    env = {**os.environ, "WANDB_SILENT": "true", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "lightning_aca.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_compose_and_run_writes_a_complete_record(compose_config, tmp_path):
    cfg = compose_config(*FAST, "collective.alpha=0.05", "seed=1", f"output_dir={tmp_path}")
    record = run_experiment(cfg)
    on_disk = json.loads((tmp_path / "record.json").read_text())
    assert on_disk == json.loads(json.dumps(record, default=str))
    assert record["alpha"] == 0.05 and record["seed"] == 1 and record["strategy"] == "SignalPlanting"
    assert record["schema_version"] == SCHEMA_VERSION and record["target_class"] == 0 and "target" not in record
    assert 0.0 <= record["metrics"]["aca/baseline_success"] <= 1.0
    assert record["metrics"]["aca/members"] == 67.0  # round(0.05 * 1347)
    assert 0.0 <= record["metrics"]["aca/success"] <= 1.0 and record["metrics"]["aca/clean_acc"] > 0.5
    assert record["theory"] == {"xi": 0.0, "n_train": 1347}  # no clean digit has a white bottom-right 2x2
    assert record["config"]["collective"]["strategy"]["_target_"] == "lightning_aca.SignalPlanting"
    assert {"torch", "lightning", "python"} <= set(record["versions"])


def test_dpsgd_firm_writes_epsilon_into_the_record(compose_config, tmp_path):
    cfg = compose_config(*FAST, "firm=dpsgd", "collective.alpha=0.05", f"output_dir={tmp_path}")
    record = run_experiment(cfg)
    assert record["config"]["firm"]["name"] == "dpsgd"
    assert 0 < record["epsilon"] < 50
    # ε can be audited from the record alone: σ, q, steps, δ and the accountant give it again
    from lightning_aca.firm.dp import privacy_fields

    numbers = [record[key] for key in ("noise_multiplier", "sample_rate", "steps", "delta", "accountant")]
    assert record["noise_multiplier"] == 1.0 and record["steps"] == 3 * round(1 / record["sample_rate"])  # 3 epochs
    assert record["delta"] == 1 / record["theory"]["n_train"] and record["accountant"] == "rdp"
    assert privacy_fields(*numbers)["epsilon"] == pytest.approx(record["epsilon"], rel=1e-9)


def test_gdro_firm_on_spurious_digits_logs_group_accuracies(compose_config, tmp_path):
    cfg = compose_config(*FAST, "firm=gdro", "data=spurious", "collective.alpha=0.02", f"output_dir={tmp_path}")
    record = run_experiment(cfg)
    metrics = record["metrics"]
    assert record["config"]["model"]["per_sample_loss"] is True
    assert metrics["aca/worst_group_acc"] == min(metrics[f"aca/group_acc/{g}"] for g in range(4))
    # Group DRO declares its final group weights and worst-group loss into the record
    assert len(record["group_weights"]) == 4 and sum(record["group_weights"]) == pytest.approx(1.0)
    assert record["worst_group_loss"] > 0 and record["epsilon"] is None


def test_existing_record_is_skipped(compose_config, tmp_path, capsys):
    cfg = compose_config(*FAST, f"output_dir={tmp_path}")
    config = OmegaConf.to_container(cfg, resolve=True)
    (tmp_path / "record.json").write_text(json.dumps({"schema_version": 1, "marker": 7, "config": config}))
    assert run_experiment(cfg)["marker"] == 7
    assert "skip" in capsys.readouterr().out


def test_a_record_of_another_configuration_is_never_taken_for_the_run(compose_config, tmp_path):
    first = run_experiment(compose_config(*FAST, f"output_dir={tmp_path}"))
    again = compose_config(*FAST, f"output_dir={tmp_path}", "trainer=gpu", "quiet=false")  # device and verbosity
    assert run_experiment(again) == json.loads(json.dumps(first, default=str))
    with pytest.raises(
        ValueError, match=r"holds the record of another configuration \(model\.hidden: 128 there, 16 here\)"
    ):
        run_experiment(compose_config(*FAST, f"output_dir={tmp_path}", "model.hidden=16"))


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("trainer.max_epochs=-1", r"^trainer\.max_epochs must be a positive int, got -1"),
        ("trainer.max_epochs=true", r"^trainer\.max_epochs must be a positive int, got True"),
        ("seed=-2", r"^seed must be a non-negative int, got -2"),
        ("seed=1.5", r"^seed must be a non-negative int, got 1\.5"),
    ],
)
def test_validate_names_the_key(compose_config, override, match):
    with pytest.raises(ConfigError, match=match):
        validate(compose_config(override))


def test_alpha_is_left_to_the_datamodule_which_names_it(compose_config, tmp_path):
    cfg = compose_config(*FAST, "collective.alpha=1.5", f"output_dir={tmp_path}")
    validate(cfg)
    with pytest.raises(ValueError, match=r"alpha.*1\.5"):
        run_experiment(cfg)
    assert not (tmp_path / RECORD_NAME).exists()


def test_sweep_params_parse_values_and_drop_non_science():
    assert sweep_params(["collective.alpha=0.01", "seed=1", "firm=erm", "quiet=true", "hydra.sweep.dir=x"]) == {
        "collective.alpha": 0.01,
        "seed": 1,
        "firm": "erm",
    }


@pytest.mark.parametrize(
    ("args", "rc", "fragments"),
    [
        (["collective.alpha=1.5"], 2, ["aca-run: error: ", "alpha", "1.5"]),
        (["trainer.max_epochs=-3"], 2, ["aca-run: error: trainer.max_epochs must be a positive int"]),
        (["seed=-2"], 2, ["aca-run: error: seed must be a non-negative int, got -2"]),
        (["collective=nope"], 1, ["Could not find 'collective/nope'"]),
        (["collective.strategy.target_class=12"], 2, ["target_class=12 is not a class"]),
        (["data=gaussian"], 2, ["PixelPatch needs images", "collective/signal=feature_assignment"]),
        (
            [
                "data=csv",
                "data.datamodule.path=absent.csv",
                "data.datamodule.label_column=y",
                "data.datamodule.num_features=3",
            ],
            2,
            ["aca-run: error: data.datamodule: path='absent.csv' is not a file"],
        ),
    ],
)
def test_bad_overrides_fail_fast_and_readably(tmp_path, args, rc, fragments):
    proc = _aca_run(["quiet=true", "logger=none", *args], cwd=tmp_path)
    assert proc.returncode == rc
    output = proc.stderr + proc.stdout
    assert all(fragment in output for fragment in fragments), output
    assert "Traceback" not in proc.stderr
    if rc == 2:
        assert len([line for line in proc.stderr.splitlines() if line.strip()]) == 1


def test_multirun_resumes_and_reports(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", "collective.alpha=0.01,0.05", "seed=0,1", *FAST, f"hydra.sweep.dir={sweep}"]
    first = _aca_run(args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    records = sorted(sweep.glob("*/record.json"))
    assert len(records) == 4
    # a killed sweep: one run lost its record; the re-run trains only that one
    (lost,) = sweep.glob("collective.alpha=0.05,*seed=1*/record.json")
    lost.unlink()
    second = _aca_run(args, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert second.stdout.count("skip, record exists") == 3 and lost.exists()
    # the report table holds the records' means
    data = [json.loads(p.read_text()) for p in sweep.glob("*/record.json")]
    mean = sum(r["metrics"]["aca/success"] for r in data if r["alpha"] == 0.05) / 2
    assert f"{mean:.3f}" in second.stdout
    png = sweep / "s_curve.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_quickstart_experiment_composes_a_sweep(compose_config):
    cfg = compose_config("experiment=quickstart")
    assert cfg.quiet and cfg.trainer.max_epochs == 20 and cfg.data.datamodule.batch_size == 64


def test_wandb_logger_runs_offline_and_exits(tmp_path):
    env = {"WANDB_MODE": "", "WANDB_DIR": str(tmp_path)}
    env = {k: v for k, v in env.items() if v}
    os_env = {k: v for k, v in os.environ.items() if k != "WANDB_MODE"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lightning_aca.cli",
            "logger=wandb",
            "trainer.max_epochs=1",
            "quiet=true",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
        env={**os_env, **env, "WANDB_SILENT": "true"},
    )
    assert proc.returncode == 0, proc.stderr
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and any(runs[0].rglob("*.wandb"))
    record = json.loads((tmp_path / "run" / "record.json").read_text())
    assert record["config"]["logger"]["wandb"]["group"] is None  # a single run has no sweep directory


def test_wandb_online_without_network_falls_back_to_offline_within_its_timeout(tmp_path, monkeypatch):
    """No W&B server can be reached here: the run waits at most ``settings.init_timeout``, then logs offline."""
    monkeypatch.delenv("WANDB_MODE", raising=False)
    env = {
        "WANDB_API_KEY": "a" * 40,
        "WANDB_BASE_URL": "http://127.0.0.1:9",  # nothing listens: fails as a node without network does
        "WANDB_DIR": str(tmp_path),
    }
    args = ["logger=wandb", "logger.wandb.offline=false", "logger.wandb.settings.init_timeout=3"]
    run = tmp_path / "run"
    proc = _aca_run(
        [*args, "trainer.max_epochs=1", "quiet=true", f"hydra.run.dir={run}"], cwd=tmp_path, env=env, timeout=150
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (warning,) = [line for line in proc.stdout.splitlines() if "W&B run could not start" in line]
    assert "logger.wandb: " in warning and "pass logger.wandb.offline=true" in warning
    assert len(list((run / "wandb").glob("offline-run-*"))) == 1
    assert (run / "record.json").exists() and "aca/success" in (run / "csv" / "metrics.csv").read_text()


def test_help_names_aca_run_its_sweep_plugins_and_the_report(tmp_path):
    proc = _aca_run(["--help"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("aca-run: ") and "powered by Hydra" not in proc.stdout
    for named in ("hydra/launcher=stacked", "hydra/sweeper=critical_mass", "aca-report", "--config-dir"):
        assert named in proc.stdout


def _readme_block(first_line: str) -> str:
    """The README's fenced code block that opens with ``first_line``, unindented."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    for block in re.findall(r"```\w*\n(.*?)```", readme, flags=re.DOTALL):
        text = textwrap.dedent(block)
        if text.startswith(first_line):
            return text
    raise AssertionError(f"README has no code block opening with {first_line!r}")


def test_readme_runs_its_own_lightning_module_through_aca_run(tmp_path):
    (tmp_path / "mymodels.py").write_text(_readme_block("# mymodels.py"))
    (tmp_path / "myconf" / "model").mkdir(parents=True)
    (tmp_path / "myconf" / "model" / "tiny.yaml").write_text(_readme_block("# myconf/model/tiny.yaml"))
    command = _readme_block("aca-run --config-dir").split("#")[0].split()[1:]
    proc = _aca_run([*command, *FAST, f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((tmp_path / "run" / RECORD_NAME).read_text())
    assert record["config"]["model"] == {
        "_target_": "mymodels.TinyNet",
        "input_shape": [1, 8, 8],
        "num_classes": 10,
        "hidden": 32,
    }
    assert record["alpha"] == 0.05 and record["metrics"]["aca/clean_acc"] > 0.5


@pytest.mark.slow
def test_joblib_launcher_runs_in_parallel_processes(tmp_path):
    sweep = tmp_path / "sweep"
    proc = _aca_run(
        ["-m", "hydra/launcher=local_parallel", "collective.alpha=0.01,0.05", *FAST, f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(list(Path(sweep).glob("*/record.json"))) == 2


def test_slurm_launcher_config_resolves_to_submitit(compose_config):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    cfg = compose_config(
        "hydra/launcher=slurm", "hydra.launcher.partition=gpu", "trainer=gpu", return_hydra_config=True
    )
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert launcher.partition == "gpu" and launcher.timeout_min == 60 and launcher.tasks_per_node == 1
    assert launcher.submitit_folder.endswith("/.submitit/%j")


@pytest.mark.slow
def test_submitit_launcher_runs_each_job_in_its_own_process(tmp_path):
    """The SLURM launcher's code path (submitit), with submitit's local executor instead of sbatch."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    sweep = tmp_path / "sweep"
    proc = _aca_run(
        ["-m", "hydra/launcher=submitit_local", "collective.alpha=0.01,0.05", *FAST, f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(p.read_text()) for p in Path(sweep).glob("*/record.json")]
    assert sorted(r["alpha"] for r in records) == [0.01, 0.05]


def test_collate_injection_gives_the_same_run(compose_config, tmp_path):
    records = [
        run_experiment(compose_config(*FAST, f"collective.injection={mode}", f"output_dir={tmp_path / mode}"))
        for mode in ("item", "collate")
    ]
    assert records[0]["metrics"]["aca/success"] == records[1]["metrics"]["aca/success"]
    assert records[0]["metrics"]["aca/clean_acc"] == records[1]["metrics"]["aca/clean_acc"]


class _WandbInitError(Exception):
    pass


@pytest.mark.parametrize(("overrides", "offline"), [([], True), (["logger.wandb.offline=false"], False)])
def test_wandb_is_offline_by_default_and_online_when_asked(tmp_path, monkeypatch, overrides, offline):
    """The mode W&B starts in, seen at ``wandb.init`` (stopped there: no run, no network)."""
    import wandb

    seen = {}

    def init(**kwargs):
        seen["mode"] = os.environ.get("WANDB_MODE")
        seen["kwargs"] = kwargs
        raise _WandbInitError

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setattr(wandb, "init", init)
    monkeypatch.setattr(wandb, "run", None)
    monkeypatch.chdir(tmp_path)
    argv = ["aca-run", "logger=wandb", *overrides, *FAST[:2], f"hydra.run.dir={tmp_path / 'run'}"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises((_WandbInitError, SystemExit)):
        cli.main()
    assert seen["kwargs"]["project"] == "lightning-aca"
    if offline:
        assert seen["mode"] in ("dryrun", "offline")
    else:
        assert seen["mode"] is None  # wandb.init's own default: online


def test_text_run_on_reviews_with_a_tiny_bert(compose_config, tiny_text_model, tmp_path):
    cfg = compose_config(
        "data=reviews",
        "model=minilm",
        f"model.model_name_or_path={tiny_text_model}",
        "collective/signal=token_insertion",
        "collective.alpha=0.01",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=10",
        "quiet=true",
        "logger=none",
        f"output_dir={tmp_path}",
    )
    assert cfg.data.datamodule.tokenizer == str(tiny_text_model)  # the data tokenizes with the model's tokenizer
    record = run_experiment(cfg)
    assert record["strategy"] == "SignalPlanting" and record["metrics"]["aca/members"] == 102.0  # round(0.01 * 10246)
    assert record["theory"]["n_train"] == 10246 and 0.0 <= record["theory"]["xi"] < 0.001  # "~" is rare in reviews
    assert 0.0 <= record["metrics"]["aca/success"] <= 1.0 and record["metrics"]["aca/clean_acc"] > 0.3


def test_text_reviews_preset_composes(compose_config):
    cfg = compose_config("experiment=text_reviews")
    assert cfg.model._target_ == "lightning_aca.TextClassifier" and cfg.model.num_classes == 2
    assert cfg.collective.strategy.signal._target_ == "lightning_aca.TokenInsertion"
    assert cfg.data.datamodule._target_ == "lightning_aca.RottenTomatoesDataModule"
    for collective in ("feature_only", "erasing"):
        assert (
            compose_config("experiment=text_reviews", f"collective={collective}").collective.strategy.signal.token
            == "~"
        )


def test_two_collectives_run_records_each_collective_and_its_success(compose_config, tmp_path, capsys):
    cfg = compose_config(*FAST, "collective=two_collectives", "trainer.max_epochs=2", f"output_dir={tmp_path}")
    record = run_experiment(cfg)
    assert record["alpha"] is None and record["strategy"] is None and record["target_class"] is None
    assert [(c["name"], c["alpha"], c["target_class"], c["members"]) for c in record["collectives"]] == [
        ("first", 0.02, 0, 27),  # round(0.02 * 1347)
        ("second", 0.02, 1, 27),
    ]
    assert all(c["xi"] == 0.0 and c["strategy"] == "SignalPlanting" for c in record["collectives"])
    metrics = record["metrics"]
    assert "aca/success" not in metrics
    for name in ("first", "second"):
        assert 0.0 <= metrics[f"aca/success/{name}"] <= 1.0 and 0.0 <= metrics[f"aca/baseline_success/{name}"] <= 1.0
        assert metrics[f"aca/members/{name}"] == 27.0
    assert load_records([tmp_path])[0]["collectives"] == record["collectives"]
    line = capsys.readouterr().out
    assert f"first: alpha=0.02 S={metrics['aca/success/first']:.3f}" in line
    assert f"second: alpha=0.02 S={metrics['aca/success/second']:.3f}" in line


def test_a_collective_of_size_zero_beside_another(compose_config, tmp_path):
    cfg = compose_config(
        *FAST,
        "collective=two_collectives",
        "collective.collectives.first.alpha=0.1",
        "collective.collectives.second.alpha=0.0",
        f"output_dir={tmp_path}",
    )
    record = run_experiment(cfg)
    metrics = record["metrics"]
    assert [c["members"] for c in record["collectives"]] == [135, 0]
    assert metrics["aca/members/second"] == 0.0 and metrics["aca/alpha/second"] == 0.0
    # 10% plant their patch; nobody plants the second, so the model labels few top-left patched digits 1
    assert metrics["aca/success/first"] > 0.8 and metrics["aca/success/second"] < 0.3


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["+collective.alpha=0.1"], r"both collective\.alpha \(one collective\) and collective\.collectives"),
        (["~collective.collectives.second.strategy"], r"collective\.collectives\.second needs strategy"),
    ],
)
def test_one_and_several_collectives_never_mix(compose_config, overrides, match):
    with pytest.raises(ConfigError, match=match):
        validate(compose_config("collective=two_collectives", *overrides))
    cfg = compose_config("collective=two_collectives")
    validate(cfg)
    assert list(cfg.collective.collectives) == ["first", "second"]


def test_a_sweep_run_gives_its_loggers_the_resolved_config_the_sweep_and_its_results(
    tmp_path, monkeypatch, wandb_runs, hydra_in_process
):
    """Read back offline: W&B config and summary, CSV hparams.yaml, and the record's device."""
    import yaml

    sweep = tmp_path / "sweep"
    epsilon = "firm.callbacks.dpsgd.target_epsilon"
    sigma = "firm.callbacks.dpsgd.noise_multiplier"
    swept = ["collective.alpha=0.05", "firm=dpsgd", f"{sigma}=null", f"{epsilon}=4", "seed=1"]
    argv = ["aca-run", "-m", *swept, "logger=wandb", "trainer.max_epochs=1", "quiet=true", "~hydra.callbacks.report"]
    monkeypatch.setattr(sys, "argv", [*argv, f"hydra.sweep.dir={sweep}"])
    cli._hydra_main()

    (path,) = sweep.glob(f"*/{RECORD_NAME}")
    record = json.loads(path.read_text())
    assert (record["engine"], record["device"], record["accelerator_count"]) == ("trainer", "cpu", 1)
    (run,) = wandb_runs
    assert (run.job_type, run.group) == ("train", str(sweep))
    for config in (run.config, yaml.safe_load((path.parent / "csv" / "hparams.yaml").read_text())):
        assert config[epsilon] == 4 and config["collective.alpha"] == 0.05 and config["seed"] == 1
        assert config["sweep.firm"] == "dpsgd" and config[f"sweep.{epsilon}"] == 4 and config["sweep.seed"] == 1
        keys = ["collective.alpha", "firm", sigma, epsilon, "logger", "seed", "trainer.max_epochs"]
        assert config["sweep_keys"] == keys and config["sweep_dir"] == str(sweep)
        assert config["sweep_group"] == f"firm=dpsgd, {sigma}=null, {epsilon}=4, logger=wandb, trainer.max_epochs=1"
        assert (config["engine"], config["device"], config["accelerator_count"]) == ("trainer", "cpu", 1)
    metrics = record["metrics"]
    for key in ("aca/success", "aca/clean_acc", "aca/baseline_success", "aca/members"):
        assert run.summary[key] == pytest.approx(metrics[key])
    assert run.summary["aca/alpha"] == 0.05 and metrics["aca/members"] == 67.0
    assert run.summary["aca/epsilon"] == pytest.approx(record["epsilon"]) and 0 < record["epsilon"] <= 4.0 + 1e-6


def test_data_configs_leave_their_datamodules_facts_to_them(compose_config):
    from lightning_aca.experiment import data_fact

    cfg = compose_config("data=spurious", "firm=gdro", "model=cnn")
    assert not {"num_classes", "input_shape", "num_groups"} & set(cfg.data)
    assert (list(cfg.model.input_shape), cfg.model.num_classes, cfg.firm.callbacks.gdro.num_groups) == ([1, 8, 8], 2, 4)
    assert data_fact(compose_config().data, "num_groups") is None  # digits have no groups
    given = compose_config("+data.num_classes=3")  # a config that gives one overrides the datamodule's
    assert given.model.num_classes == 3
    with pytest.raises(ValueError, match="aca_data takes one of"):
        data_fact(cfg.data, "width")


def _digits_with_nan():
    from lightning_aca.data.digits import load_digits_tensors

    images, labels = load_digits_tensors()
    images = images.clone()
    images[::50, 0, 3, 3] = float("nan")  # one pixel in every 50th digit, in training and test splits
    return images, labels


@pytest.mark.parametrize("cause", ["nan_input", "huge_lr"])
def test_a_run_whose_training_goes_non_finite_is_never_a_result(compose_config, tmp_path, monkeypatch, cause):
    overrides = [*FAST, f"output_dir={tmp_path}", "collective.alpha=0.1"]
    if cause == "nan_input":
        nan_digits = _digits_with_nan()
        monkeypatch.setattr("lightning_aca.data.digits.load_digits_tensors", lambda: nan_digits)
    else:
        overrides.append("model.lr=1e30")
    cfg = compose_config(*overrides)
    with pytest.raises(NonFiniteTrainingError) as caught:
        run_experiment(cfg)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"the run in {tmp_path} ")
    assert "gives no result: the training loss is" in message and "in epoch 0" in message
    assert "likely a nan or inf in the training data, or a learning rate too large (model.lr=" in message

    on_disk = json.loads((tmp_path / RECORD_NAME).read_text())
    assert on_disk["status"] == "failed" and on_disk["error"] == message and "metrics" not in on_disk
    with pytest.warns(UserWarning, match="the run failed without a result"), pytest.raises(ValueError):
        load_records([tmp_path])  # its only record is no result
    with pytest.warns(UserWarning, match=r"retraining the run of .*record\.json: the run failed"):
        assert finished_record(tmp_path, OmegaConf.to_container(cfg, resolve=True)) is None


def test_aca_run_of_a_diverging_run_exits_2_with_one_line(tmp_path):
    result = _aca_run(["trainer.max_epochs=1", "quiet=true", "logger=none", "model.lr=1e30"], cwd=tmp_path)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("aca-run: error: the run in ") and "model.lr=1e30" in last and "gives no result" in last


def test_a_truncated_record_is_retrained_with_a_warning_naming_it(compose_config, tmp_path):
    cfg = compose_config(*FAST, f"output_dir={tmp_path}")
    first = run_experiment(cfg)
    path = tmp_path / RECORD_NAME
    path.write_text(path.read_text()[:100])  # a copy cut short
    with pytest.warns(UserWarning, match=rf"retraining the run of {path}: unreadable or partial JSON"):
        again = run_experiment(cfg)
    assert again["metrics"] == first["metrics"] and json.loads(path.read_text())["metrics"] == first["metrics"]
