import statistics

import pytest

from lightning_aca.cli import run_experiment
from lightning_aca.stacked import run_stacked


@pytest.mark.slow
@pytest.mark.parametrize("firm", ["erm", "dpsgd"])
def test_stacked_quickstart_is_inside_the_standard_paths_seed_spread(compose_cfg, firm):
    alphas, seeds = (0.005, 0.05), (0, 1, 2)
    overrides = ["trainer.max_epochs=20", f"firm={firm}"]

    def cfgs(engine):
        return [
            compose_cfg(*overrides, f"collective.alpha={a}", f"seed={s}", name=f"{engine}/{a}-{s}")
            for a in alphas
            for s in seeds
        ]

    stacked = run_stacked(cfgs("stacked"))
    standard = [run_experiment(cfg) for cfg in cfgs("standard")]
    for i, _ in enumerate(alphas):
        rows = slice(i * len(seeds), (i + 1) * len(seeds))
        for key, margin in (("aca/success", 0.1), ("aca/clean_acc", 0.03)):
            ours = [r["metrics"][key] for r in stacked[rows]]
            theirs = [r["metrics"][key] for r in standard[rows]]
            spread = max(max(theirs) - min(theirs), margin)
            assert min(theirs) - spread <= statistics.mean(ours) <= max(theirs) + spread, (key, ours, theirs)
            assert min(ours) - spread <= statistics.mean(theirs) <= max(ours) + spread, (key, ours, theirs)
    if firm == "dpsgd":
        assert [r["epsilon"] for r in stacked] == pytest.approx([r["epsilon"] for r in standard], rel=1e-9)
