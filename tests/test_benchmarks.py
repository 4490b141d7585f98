"""The benchmark suite in smoke mode: it must keep running (timings are not asserted)."""

import pytest

from benchmarks.run import main


def test_benchmark_smoke_runs_every_cpu_comparison(capsys):
    assert main(["--suite", "smoke", "--only", "injection", "trainer", "dp"]) == 0
    out = capsys.readouterr().out
    for heading in ("collective injection", "trainer overhead", "DP-SGD overhead"):
        assert heading in out
    assert "injection='collate'" in out and "DPSGD hooks" in out


def test_every_committed_result_row_maps_to_its_section():
    """``--only`` keeps the other sections' rows by mapping titles to sections: no title may fall through."""
    import json
    from pathlib import Path

    from benchmarks import stacked
    from benchmarks.run import _SECTIONS, RESULTS

    files = sorted(Path(RESULTS).glob("*.json"))
    assert files
    for path in files:
        # each suite's results file maps its rows through that suite's own sections
        mapping = stacked._SECTIONS if path.name.startswith("stacked-") else _SECTIONS
        for row in json.loads(path.read_text())["rows"]:
            section = next((key for prefix, key in mapping.items() if row["comparison"].startswith(prefix)), "")
            assert section in set(mapping.values()), (path.name, row["comparison"])


@pytest.mark.slow
def test_stacked_benchmark_smoke_runs_the_step_comparison(capsys):
    from benchmarks.stacked import main as stacked_main

    assert stacked_main(["--small", "--only", "step", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "Opacus hooks DP-SGD, one model" in out and "stacked DP-SGD, K=4 (per model)" in out


@pytest.mark.slow
def test_launcher_phases_times_every_phase_of_a_stacked_sweep(tmp_path):
    """A two-run sweep in a fresh process: the table names each phase with its calls, and the fit lies inside training."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    out = tmp_path / "phases.md"
    overrides = ["experiment=quickstart", "logger=none", "trainer.max_epochs=1", "collective.alpha=0.01,0.05"]
    overrides += ["seed=0", f"hydra.sweep.dir={tmp_path / 'sweep'}", "~hydra.callbacks.report"]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(root)}
    command = [sys.executable, "-m", "benchmarks.launcher_phases", "--device", "cpu", "--out", str(out), *overrides]
    subprocess.run(command, check=True, cwd=tmp_path, env=env, capture_output=True)
    rows = {
        line.split("|")[1].strip(): line.split("|")[2:4]
        for line in out.read_text().splitlines()[2:]  # below the header and its rule
    }
    seconds = {name: float(cells[0].strip(" *")) for name, cells in rows.items()}
    calls = {name: cells[1].strip() for name, cells in rows.items()}
    assert calls["launcher compose"] == calls["launcher sort"] == calls["launcher lay_out"] == "2"
    assert calls["launcher train"] == calls["stacked fit (Trainer.fit)"] == "1"
    assert 0 < seconds["stacked fit (Trainer.fit)"] < seconds["launcher train"] < seconds["**whole process**"]
    assert len(list((tmp_path / "sweep").glob("*/record.json"))) == 2
