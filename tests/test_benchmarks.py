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
