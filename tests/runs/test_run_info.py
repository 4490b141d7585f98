import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lightning_aca.runs.records import make_record
from lightning_aca.runs.run_info import (
    device_info,
    devices_line,
    flatten_config,
    run_hparams,
    summary_values,
    wandb_group,
)

_KEYS = st.text(alphabet="abcdefgh_", min_size=1, max_size=6)
_LEAVES = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5)
_CONFIGS = st.recursive(
    _LEAVES | st.lists(_LEAVES, max_size=3),
    lambda children: (
        st.dictionaries(_KEYS, children, max_size=3) | st.lists(st.dictionaries(_KEYS, children), max_size=2)
    ),
    max_leaves=8,
)


def _at(config, dotted):
    for part in dotted.split("."):
        config = config[int(part)] if isinstance(config, list) else config[part]
    return config


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_KEYS, _CONFIGS, max_size=4))
def test_every_flat_key_is_the_dotted_path_to_its_value_and_no_leaf_is_lost(config):
    flat = flatten_config(config)
    assert all(_at(config, key) == value for key, value in flat.items())

    def leaves(node):
        if isinstance(node, dict) and node:
            return sum(leaves(value) for value in node.values())
        if isinstance(node, list) and any(isinstance(item, dict | list) for item in node):
            return sum(leaves(item) for item in node)
        return 1

    assert len(flat) == sum(leaves(value) for value in config.values())


def test_hparams_name_swept_group_choices_and_the_curve_without_alpha_and_seed():
    overrides = ["collective.alpha=0.02", "seed=2", "firm=dpsgd", "firm.callbacks.dpsgd.target_epsilon=8", "quiet=true"]
    config = {"firm": {"callbacks": {"dpsgd": {"target_epsilon": 8.0}}}, "collective": {"alpha": 0.02}, "seed": 2}
    device = device_info("cpu")
    hparams = run_hparams(config, overrides, None, engine="trainer", device=device)
    assert hparams == {
        "firm.callbacks.dpsgd.target_epsilon": 8.0,
        "collective.alpha": 0.02,
        "seed": 2,
        "sweep.collective.alpha": 0.02,
        "sweep.seed": 2,
        "sweep.firm": "dpsgd",
        "sweep.firm.callbacks.dpsgd.target_epsilon": 8,
        "sweep_keys": ["collective.alpha", "firm", "firm.callbacks.dpsgd.target_epsilon", "seed"],
        "sweep_dir": None,
        "sweep_group": "firm=dpsgd, firm.callbacks.dpsgd.target_epsilon=8",
        "engine": "trainer",
        "device": "cpu",
        "accelerator_count": 1,
    }


def test_summary_of_several_collectives_holds_each_ones_metrics_and_leaves_out_what_is_not_aca():
    metrics = {"aca/success/first": 0.8, "aca/success/second": 0.3, "aca/clean_acc": 0.95, "train/loss": 0.1}
    metrics |= {
        "aca/alpha/first": 0.02,
        "aca/members/first": 27.0,
        "aca/alpha/second": 0.01,
        "aca/members/second": 13.0,
    }
    record = {
        "alpha": None,
        "epsilon": None,
        "metrics": metrics,
        "collectives": [{"name": "first"}, {"name": "second"}],
    }
    summary = summary_values(record)
    assert summary == {key: value for key, value in metrics.items() if key != "train/loss"}
    assert summary_values({**record, "epsilon": 2.5})["aca/epsilon"] == 2.5


def test_a_cuda_device_is_named_by_its_driver(monkeypatch):
    seen = []

    def get_device_name(device):
        seen.append(device)
        return "NVIDIA H100 80GB HBM3"

    monkeypatch.setattr(torch.cuda, "get_device_name", get_device_name)
    assert device_info(torch.device("cuda", 1), 2) == {"device": "NVIDIA H100 80GB HBM3", "accelerator_count": 2}
    assert seen == [torch.device("cuda", 1)]


def test_records_hold_the_device_or_say_it_is_not_recorded():
    entry = {
        "name": "collective",
        "alpha": 0.01,
        "strategy": "SignalPlanting",
        "target_class": 0,
        "members": 1,
        "xi": None,
    }
    common = dict(engine="stacked", overrides=[], config={}, seed=0, collectives=[entry], metrics={})
    common |= dict(n_train=10, wall_time_s=1.0)
    with_device = make_record(**common, **device_info("cpu"))
    assert (with_device["device"], with_device["accelerator_count"]) == ("cpu", 1)
    without = make_record(**common)
    assert without["device"] is None and without["accelerator_count"] is None
    h100 = {"device": "NVIDIA H100 80GB HBM3", "accelerator_count": 1, "engine": "trainer"}
    assert devices_line([without, with_device, h100]) == (
        "devices: NVIDIA H100 80GB HBM3 ×1, trainer engine (1 run); cpu ×1, stacked engine (1 run); "
        "device not recorded (1 run)"
    )


@pytest.mark.parametrize(
    ("groups", "expected"),
    [(["multirun/a", "multirun/a"], "multirun/a"), (["multirun/a", "multirun/b"], None), ([None], None)],
)
def test_the_report_run_joins_the_group_its_records_share(groups, expected):
    records = [{"config": {"logger": {"wandb": {"group": group}} if group else {"csv": {}}}} for group in groups]
    assert wandb_group(records) == expected
