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


def test_erm_same_seed_same_initial_weights_and_batches_in_both_engines(compose_cfg):
    """Digits, α = 0.03, seed 0: the stacked model starts from the standard run's weights and draws its batches."""
    import torch

    from lightning_aca.experiment import RunPlan
    from lightning_aca.stacked.engine import build_stacked

    cfg = compose_cfg("collective.alpha=0.03", "seed=0")
    plan = RunPlan.build(cfg)
    module = build_stacked(
        [compose_cfg("collective.alpha=0.03", "seed=0"), compose_cfg("collective.alpha=0.03", "seed=3")]
    )
    for name, value in plan.model.net.state_dict().items():
        assert torch.equal(module.params[name][0], value), name
    assert not torch.equal(module.params[name][1], value)  # seed 3 starts elsewhere
    dm = plan.datamodule()
    dm.setup("fit")
    loader = dm.train_dataloader()
    for epoch in (0, 1):
        loader.sampler.set_epoch(epoch)
        order, _ = module.epoch_indices(epoch)
        assert list(loader.sampler) == order[0].tolist()
        first = next(iter(loader))
        x, y, _ = module.gather(order[:1, : loader.batch_size])
        assert torch.equal(first[0], x[0]) and torch.equal(first[1], y[0])  # members' points planted alike


def test_erm_same_seed_trains_the_same_model_in_both_engines(compose_cfg):
    """What the two engines share under ERM adds up to the same run, to float tolerance."""
    overrides = ("collective.alpha=0.03", "seed=0", "trainer.max_epochs=20")
    (stacked,) = run_stacked([compose_cfg(*overrides, name="stacked")])
    standard = run_experiment(compose_cfg(*overrides, name="standard"))
    for key in ("aca/success", "aca/baseline_success", "aca/clean_acc", "aca/members"):
        assert stacked["metrics"][key] == pytest.approx(standard["metrics"][key], rel=1e-6), key
    # the numbers the README quotes
    assert (round(standard["metrics"]["aca/success"], 3), round(standard["metrics"]["aca/clean_acc"], 3)) == (
        0.956,
        0.964,
    )


def test_validation_accuracy_on_a_held_out_split_is_recorded_alike_by_both_engines(compose_cfg):
    """MNIST-5k with 10% of the training digits held out: both engines record the same aca/val_acc."""
    overrides = ["data=mnist5k", "+data.datamodule.val_fraction=0.1", "trainer.max_epochs=1", "collective.alpha=0.02"]
    stacked = run_stacked([compose_cfg(*overrides, name="stacked")])[0]
    standard = run_experiment(compose_cfg(*overrides, name="standard"))
    assert stacked["theory"]["n_train"] == standard["theory"]["n_train"] == 3600
    assert 0.5 < standard["metrics"]["aca/val_acc"] == pytest.approx(stacked["metrics"]["aca/val_acc"], abs=0.01)
    without = run_stacked([compose_cfg("data=mnist5k", "trainer.max_epochs=1", name="no_val")])[0]
    assert "aca/val_acc" not in without["metrics"]  # validating on the test set is not a held-out split
