"""Several collectives (Karan et al. 2025) in the stacked engine: members, views, evaluation sets, metrics, records."""

import copy

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from lightning_aca.collective.dataset import SignalEvaluationDataset
from lightning_aca.collective.membership import select_disjoint_members
from lightning_aca.experiment import ConfigError, config_collectives
from lightning_aca.metrics.functional import collective_success
from lightning_aca.runs.records import collective_names, load_records
from lightning_aca.stacked import run_stacked, stackable_reason
from lightning_aca.stacked.engine import build_stacked

TWO = "collective=two_collectives"
FIRST, SECOND = "collective.collectives.first", "collective.collectives.second"
FEATURE_ONLY_SECOND = f"{SECOND}.strategy._target_=lightning_aca.FeatureOnlyPlanting"


def _alphas(first, second):
    return [f"{FIRST}.alpha={first}", f"{SECOND}.alpha={second}"]


def _net(module, k):
    net = copy.deepcopy(module.base).to_empty(device="cpu")
    net.load_state_dict({name: value[k].clone() for name, value in module.params.items()})
    return net.eval()


@pytest.mark.parametrize("second", ["signal_planting", "feature_only"])
def test_members_per_model_are_select_disjoint_members(compose_cfg, second):
    grid, seeds = [(0.02, 0.05), (0.1, 0.05), (0.1, 0.2)], (0, 3)
    extra = [FEATURE_ONLY_SECOND] if second == "feature_only" else []
    cfgs = [compose_cfg(TWO, *extra, *_alphas(a, b), f"seed={s}", name=f"{a}-{b}-{s}") for s in seeds for a, b in grid]
    module = build_stacked(cfgs)
    y = module.y_train
    eligible = [None, None if second == "signal_planting" else (y == 1).numpy()]
    owners = module.owner.numpy()
    for cfg, owner in zip(cfgs, owners, strict=True):
        alphas = [cfg.collective.collectives.first.alpha, cfg.collective.collectives.second.alpha]
        expected = select_disjoint_members(1347, alphas, cfg.collective.seed, eligible)
        assert [np.flatnonzero(owner == c + 1).tolist() for c in range(2)] == [m.tolist() for m in expected]
        assert set(np.unique(owner)) <= {0, 1, 2}
    if second == "feature_only":
        assert torch.all(y[module.owner[0] == 2] == 1)  # only points already labelled y* join
    first_members = [set(np.flatnonzero(owner == 1)) for owner in owners[:3]]
    second_members = [set(np.flatnonzero(owner == 2)) for owner in owners[:3]]
    assert first_members[0] < first_members[1] == first_members[2]  # nested in its own α, deaf to the other's
    assert second_members[0] == second_members[1] < second_members[2]
    assert first_members[0] != set(np.flatnonzero(owners[3] == 1))  # another seed, other members


def test_each_member_submits_its_own_collectives_view(compose_cfg):
    module = build_stacked([compose_cfg(TWO, *_alphas(0.2, 0.3))])
    index = torch.arange(1347)[None]
    x, y, _ = module.gather(index)
    owner = module.owner[0]
    clean = owner == 0
    assert torch.equal(x[0][clean], module.x_train[clean]) and torch.equal(y[0][clean], module.y_train[clean])
    first, second = owner == 1, owner == 2
    assert int(first.sum()) == 269 and int(second.sum()) == 404
    assert torch.all(x[0][first][..., 6:, 6:] == 1.0) and torch.all(y[0][first] == 0)  # bottom right, y* = 0
    assert torch.all(x[0][second][..., :2, :2] == 1.0) and torch.all(y[0][second] == 1)  # top left, y* = 1
    assert torch.equal(x[0][first][..., :2, :2], module.x_train[first][..., :2, :2])  # not the other's signal


def test_each_collective_has_its_own_evaluation_set_and_metrics(compose_cfg):
    cfg = compose_cfg(TWO, *_alphas(0.05, 0.05))
    module = build_stacked([cfg, compose_cfg(TWO, *_alphas(0.1, 0.02), "seed=1", name="b")])
    dm = instantiate(cfg.data.datamodule)
    dm.setup("test")
    sets = module.evaluation.signal_sets
    assert [s.name for s in sets] == ["first", "second"]
    for signal_set, collective in zip(sets, config_collectives(cfg), strict=True):
        reference = SignalEvaluationDataset(dm.test_dataset, collective.strategy, return_clean=True)
        x, labels, clean, true = (
            torch.stack([torch.as_tensor(reference[i][j]) for i in range(len(reference))]) for j in range(4)
        )
        assert torch.equal(signal_set.signal_inputs, x) and torch.equal(signal_set.clean_inputs, clean)
        assert torch.all(labels == collective.strategy.target_class) and torch.all(true != labels)
        assert torch.equal(signal_set.success_labels, labels)
    assert len(sets[0].success_labels) != len(sets[1].success_labels)  # held-out points whose label is not y*_c
    results = module.evaluate()
    for k, values in enumerate(results):
        assert set(values) == {
            "aca/success/first",
            "aca/baseline_success/first",
            "aca/success/second",
            "aca/baseline_success/second",
            "aca/clean_acc",
        }
        net = _net(module, k)
        with torch.no_grad():
            for s in sets:
                expected = collective_success(net(s.signal_inputs), s.success_labels).item()
                assert values[f"aca/success/{s.name}"] == pytest.approx(expected)
                baseline = collective_success(net(s.clean_inputs), s.success_labels).item()
                assert values[f"aca/baseline_success/{s.name}"] == pytest.approx(baseline)
            accuracy = (net(module.evaluation.x).argmax(1) == module.evaluation.y).float().mean().item()
        assert values["aca/clean_acc"] == pytest.approx(accuracy)


def test_records_list_the_collectives_and_load(compose_cfg, tmp_path):
    grid = [(0.02, 0.05), (0.1, 0.02)]
    cfgs = [compose_cfg(TWO, *_alphas(a, b), name=f"{a}-{b}") for a, b in grid]
    records = run_stacked(cfgs, max_models=2)
    for (a, b), record in zip(grid, records, strict=True):
        assert record["alpha"] is None and record["strategy"] is None and record["target_class"] is None
        assert record["theory"] == {"xi": None, "n_train": 1347} and record["engine"] == "stacked"
        members = [round(a * 1347), round(b * 1347)]
        assert record["collectives"] == [
            {
                "name": "first",
                "alpha": a,
                "strategy": "SignalPlanting",
                "target_class": 0,
                "members": members[0],
                "xi": 0.0,
            },
            {
                "name": "second",
                "alpha": b,
                "strategy": "SignalPlanting",
                "target_class": 1,
                "members": members[1],
                "xi": 0.0,
            },
        ]
        metrics = record["metrics"]
        assert set(metrics) == {
            f"aca/{metric}/{name}"
            for name in ("first", "second")
            for metric in ("success", "baseline_success", "alpha", "population_alpha", "members")
        } | {"aca/clean_acc"}
        assert metrics["aca/alpha/first"] == a and metrics["aca/members/second"] == members[1]
        assert metrics["aca/population_alpha/second"] == pytest.approx(members[1] / 1347)
        assert "aca/success" not in metrics and metrics["aca/clean_acc"] > 0.5
    loaded = sorted(load_records([tmp_path]), key=lambda r: r["collectives"][0]["alpha"])
    assert [collective_names(r) for r in loaded] == [["first", "second"]] * 2
    assert [r["metrics"] for r in loaded] == [r["metrics"] for r in records]
    again = run_stacked(cfgs)  # resumed: nothing trained
    assert [r["wall_time_s"] for r in again] == [r["wall_time_s"] for r in records]


def test_collective_alphas_stack_and_other_keys_do_not(compose_cfg):
    cfgs = [compose_cfg(TWO, *_alphas(0.02, 0.05), name="a"), compose_cfg(TWO, *_alphas(0.1, 0.1), name="b")]
    assert stackable_reason(cfgs[0]) is None
    assert build_stacked(cfgs).k == 2
    other = compose_cfg(TWO, f"{SECOND}.strategy.target_class=0", name="c")
    with pytest.raises(ValueError, match=r"differ in 'collective\.collectives\.second\.strategy\.target_class'"):
        build_stacked([cfgs[0], other])
    with pytest.raises(ValueError, match=r"differ in 'collective\.collectives'"):
        build_stacked([cfgs[0], compose_cfg(name="one")])


def test_a_config_with_both_forms_or_an_incomplete_collective_is_a_config_error(compose_cfg):
    both = compose_cfg(TWO, "+collective.alpha=0.1")
    with pytest.raises(ConfigError, match=r"both collective\.alpha \(one collective\) and collective\.collectives"):
        config_collectives(both)
    assert "give either" in stackable_reason(both)
    with pytest.raises(ConfigError, match=r"collective\.collectives\.second needs alpha"):
        config_collectives(compose_cfg(TWO, f"~{SECOND}.alpha"))
    with pytest.raises(ConfigError, match=r"two or more collectives"):
        config_collectives(compose_cfg(TWO, f"~{SECOND}"))
    with pytest.raises(ConfigError, match=r"collective\.collectives\.first: collective 'first''s alpha must be"):
        config_collectives(compose_cfg(TWO, f"{FIRST}.alpha=1.5"))
    (one,) = config_collectives(compose_cfg())
    assert (one.name, one.alpha) == ("collective", 0.01)


def test_both_engines_choose_the_same_members_and_submitted_points(compose_cfg):
    from lightning_aca.experiment import RunPlan

    cfg = compose_cfg(TWO, FEATURE_ONLY_SECOND, *_alphas(0.1, 0.2), "seed=2")
    module = build_stacked([cfg])
    dm = RunPlan.build(cfg).datamodule()
    dm.setup("fit")
    owner = module.owner[0].numpy()
    for c, name in enumerate(("first", "second")):
        assert dm.train_dataset.members_of(name).tolist() == np.flatnonzero(owner == c + 1).tolist()
    x, y, _ = module.gather(torch.arange(1347)[None])
    items = [dm.train_dataset[i] for i in range(1347)]
    assert torch.equal(torch.stack([item[0] for item in items]).float(), x[0])
    assert torch.equal(torch.as_tensor([int(item[1]) for item in items]), y[0])


def test_max_alphas_let_seventy_and_ten_percent_train_on_both_engines(compose_cfg):
    from lightning_aca.experiment import RunPlan

    tops = [f"{FIRST}.max_alpha=0.7", f"{SECOND}.max_alpha=0.2"]
    cfgs = [compose_cfg(TWO, *tops, *_alphas(a, 0.1), name=str(a)) for a in (0.5, 0.7)]
    module = build_stacked(cfgs)
    owners = module.owner.numpy()
    assert [(owner == 1).sum() for owner in owners] == [674, 943] and all((o == 2).sum() == 135 for o in owners)
    assert set(np.flatnonzero(owners[0] == 1)) < set(np.flatnonzero(owners[1] == 1))
    assert np.array_equal(np.flatnonzero(owners[0] == 2), np.flatnonzero(owners[1] == 2))
    expected = select_disjoint_members(1347, [0.7, 0.1], cfgs[1].collective.seed, max_alphas=[0.7, 0.2])
    assert [np.flatnonzero(owners[1] == c + 1).tolist() for c in range(2)] == [m.tolist() for m in expected]
    dm = RunPlan.build(cfgs[1]).datamodule()  # the standard engine's members are the same
    dm.setup("fit")
    assert [dm.train_dataset.members_of(name).tolist() for name in ("first", "second")] == [
        m.tolist() for m in expected
    ]
    with pytest.raises(ValueError, match=r"give it to every collective, not only some \(missing for \['second'\]\)"):
        build_stacked([compose_cfg(TWO, tops[0], *_alphas(0.5, 0.1), name="some")])
    with pytest.raises(ConfigError, match=r"collective 'first': alpha=0.8 is above max_alpha=0.7.*raise it"):
        config_collectives(compose_cfg(TWO, *tops, *_alphas(0.8, 0.1)))
