"""The benchmark suite in smoke mode: it must keep running (timings are not asserted)."""

from benchmarks.run import main


def test_benchmark_smoke_runs_every_cpu_comparison(capsys):
    assert main(["--suite", "smoke", "--only", "injection", "trainer", "dp"]) == 0
    out = capsys.readouterr().out
    for heading in ("collective injection", "trainer overhead", "DP-SGD overhead"):
        assert heading in out
    assert "injection='batch'" in out and "DPSGD hooks" in out
