"""Every public signal, strategy and training callback has an ``aca-run`` config that composes and builds it.

The classes are found from the public API by their class hierarchy, so a new public signal, strategy
or callback without a config fails here. Configs are found from the files of ``lightning_aca/conf``:
``collective/signal/`` (signals), ``collective/`` (strategies, and the collective's gradient-strategy
callbacks), ``firm/`` (the firm's callbacks).
"""

import importlib
import inspect
import json
from importlib.resources import files

import lightning as L
import pytest
from hydra.utils import get_class, get_object, instantiate
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import DictConfig, ListConfig, OmegaConf

import lightning_aca
from lightning_aca.cli import run_experiment
from lightning_aca.collective.signals import Signal
from lightning_aca.collective.strategies import Strategy
from lightning_aca.experiment import validate
from lightning_aca.metrics.callback import CollectiveMetrics

#: packages whose public names are the API: the top level and the subpackages users import from
_API = ("lightning_aca", "lightning_aca.collective", "lightning_aca.firm", "lightning_aca.gradient_strategies")
#: callbacks that aca-run builds from its own keys rather than from a config group (``metrics:`` in config.yaml)
_BUILT_BY_ACA_RUN = {CollectiveMetrics}
#: overrides a config needs to compose: GroupDRO reads the number of groups of data with groups
_NEEDS = {("firm", "gdro"): ["data=spurious"]}


def _public_classes(base):
    found = set()
    for name in _API:
        module = importlib.import_module(name)
        for public in module.__all__:
            value = getattr(module, public)
            if inspect.isclass(value) and issubclass(value, base) and not inspect.isabstract(value):
                found.add(value)
    return sorted(found, key=lambda cls: cls.__qualname__)


SIGNALS = _public_classes(Signal)
STRATEGIES = _public_classes(Strategy)
CALLBACKS = [cls for cls in _public_classes(L.Callback) if cls not in _BUILT_BY_ACA_RUN]
FIRM_CALLBACKS = [cls for cls in CALLBACKS if cls.__module__.startswith("lightning_aca.firm.")]


def _names(group):
    """The config names of a config group (its YAML files)."""
    folder = files("lightning_aca.conf").joinpath(*group.split("/"))
    return sorted(entry.name.removesuffix(".yaml") for entry in folder.iterdir() if entry.name.endswith(".yaml"))


def _targets(node, path):
    """``(path, node)`` for every node with a ``_target_`` under ``node``."""
    if isinstance(node, DictConfig):
        if "_target_" in node:
            yield path, node
        for key in node:
            yield from _targets(node._get_node(key), f"{path}.{key}")
    elif isinstance(node, ListConfig):
        for i in range(len(node)):
            yield from _targets(node._get_node(i), f"{path}[{i}]")


def _config_index(compose_config):
    """``{class: [(group, overrides, path of the node that builds it), ...]}`` over the three config groups."""
    index = {}
    groups = [
        ("collective/signal", lambda name: ["collective=signal_planting", f"collective/signal={name}"], "collective"),
        ("collective", lambda name: [f"collective={name}"], "collective"),
        ("firm", lambda name: [f"firm={name}"], "firm"),
    ]
    for group, overrides_for, root in groups:
        for name in _names(group):
            overrides = overrides_for(name) + _NEEDS.get((group, name), [])
            for path, node in _targets(compose_config(*overrides)[root], root):
                target = get_object(node._target_)
                if inspect.isclass(target):  # not a function target (GroupDRO's groups reader)
                    index.setdefault(target, []).append((group, overrides, path))
    return index


@pytest.fixture(scope="module")
def config_index(compose_config):
    return _config_index(compose_config)


def _check_configs(cls, config_index, compose_config, group):
    """Each config of ``group`` naming ``cls`` composes with aca-run's config, passes its checks and builds ``cls``."""
    entries = [(overrides, path) for where, overrides, path in config_index.get(cls, []) if where == group]
    assert entries, f"{cls.__qualname__} has no config in lightning_aca/conf/{group}/ whose _target_ names it."
    for overrides, path in entries:
        cfg = compose_config(*overrides)
        validate(cfg)
        assert type(instantiate(OmegaConf.select(cfg, path))) is cls, (overrides, path)


def test_the_api_has_the_classes_the_configs_serve():
    """The enumeration sees the known classes, so the tests below are not vacuous."""
    assert {"BlendPattern", "FeatureAssignment", "PixelPatch", "TokenInsertion"} <= {c.__name__ for c in SIGNALS}
    assert {"SignalPlanting", "LabelFlip", "GradientStrategy"} <= {c.__name__ for c in STRATEGIES}
    assert {c.__name__ for c in FIRM_CALLBACKS} == {"DPSGD", "GroupDRO"}
    assert {"GradientControl", "GradientNeutralization"} <= {c.__name__ for c in CALLBACKS}


@pytest.mark.parametrize("cls", SIGNALS, ids=lambda cls: cls.__name__)
def test_every_public_signal_has_a_config(cls, config_index, compose_config):
    _check_configs(cls, config_index, compose_config, "collective/signal")


@pytest.mark.parametrize("cls", STRATEGIES, ids=lambda cls: cls.__name__)
def test_every_public_strategy_has_a_config(cls, config_index, compose_config):
    _check_configs(cls, config_index, compose_config, "collective")


@pytest.mark.parametrize("cls", FIRM_CALLBACKS, ids=lambda cls: cls.__name__)
def test_every_firm_callback_has_a_config(cls, config_index, compose_config):
    _check_configs(cls, config_index, compose_config, "firm")


@pytest.mark.parametrize("cls", [c for c in CALLBACKS if c not in FIRM_CALLBACKS], ids=lambda cls: cls.__name__)
def test_every_collective_callback_has_a_config(cls, config_index, compose_config):
    _check_configs(cls, config_index, compose_config, "collective")


def test_every_signal_config_builds_its_strategy(compose_config):
    """A signal chosen by ``collective/signal=...`` lands where the strategy takes it."""
    for name in _names("collective/signal"):
        cfg = compose_config("collective=signal_planting", f"collective/signal={name}")
        strategy = instantiate(cfg.collective.strategy)
        assert isinstance(strategy.signal, Signal), name
        assert type(strategy.signal) is get_class(cfg.collective.strategy.signal._target_)


def test_a_blend_pattern_collective_plants_its_signal_on_digits(compose_config, tmp_path):
    """One aca-run with the blended checkerboard: members learn it, clean digits do not carry it."""
    cfg = compose_config(
        "trainer.max_epochs=3",
        "quiet=true",
        "logger=none",
        "data=digits",
        "collective/signal=blend_pattern",
        "collective.alpha=0.05",
        f"output_dir={tmp_path}",
    )
    record = run_experiment(cfg)
    signal = record["config"]["collective"]["strategy"]["signal"]
    assert signal["_target_"] == "lightning_aca.BlendPattern" and signal["weight"] == 0.2
    metrics = record["metrics"]
    assert metrics["aca/members"] == 67.0  # round(0.05 * 1347)
    assert record["theory"]["xi"] == 0.0  # no clean digit is a blended checkerboard
    assert metrics["aca/clean_acc"] > 0.85
    assert metrics["aca/success"] > metrics["aca/baseline_success"] + 0.1
    assert json.loads((tmp_path / "record.json").read_text())["metrics"]["aca/success"] == metrics["aca/success"]
    assert lightning_aca.BlendPattern is get_class(signal["_target_"])


_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8))
_NODES = st.recursive(
    _LEAVES,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.text("abcxyz_", min_size=1, max_size=5), children, max_size=3),
    ),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text("abcxyz_", min_size=1, max_size=5), _NODES, max_size=4))
def test_cache_key_gives_the_node_back_and_ignores_key_order(data):
    """Equal configs, in any key order, share one key, and the key builds the same config again."""
    from lightning_aca.experiment import cache_key

    node = OmegaConf.create(data)
    reordered = OmegaConf.create(dict(reversed(list(data.items()))))
    assert cache_key(node) == cache_key(reordered)
    assert OmegaConf.to_container(OmegaConf.create(json.loads(cache_key(node)))) == OmegaConf.to_container(node)


def test_cache_key_resolves_interpolations_so_equal_values_share_a_key():
    from lightning_aca.experiment import cache_key

    written = OmegaConf.create({"size": 8, "data": {"n": "${size}"}})
    assert cache_key(written.data) == cache_key(OmegaConf.create({"n": 8}))
