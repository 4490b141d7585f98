"""KeptCompositions: a job that differs from a composed one in plain values gets exactly Hydra's composition."""

import pytest
from hydra import initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.types import RunMode
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from hydra_plugins.aca_stacked_launcher._core import KeptCompositions


@pytest.fixture(scope="module")
def loaders():
    """(Hydra's own loader, the kept-compositions loader over it, the master config of a quickstart sweep)."""
    with initialize_config_module("lightning_aca.conf", version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        master = loader.load_configuration(
            "config", ["experiment=quickstart", "hydra/launcher=stacked", "hydra.sweep.dir=sweep"], RunMode.MULTIRUN
        )
        yield loader, KeptCompositions(loader), master


def _same(derived, composed) -> None:
    assert OmegaConf.to_yaml(derived) == OmegaConf.to_yaml(composed)
    assert OmegaConf.is_struct(derived) and not OmegaConf.is_readonly(derived.hydra)
    assert list(derived.hydra.overrides.task) == list(composed.hydra.overrides.task)


values = st.fixed_dictionaries(
    {
        "alpha": st.sampled_from(["0.01", "0.025", "0", "1e-3"]),
        "seed": st.integers(0, 99).map(str),
        "model": st.sampled_from(["mlp", "linear"]),
        "epochs": st.integers(1, 30).map(str),
        "lr": st.sampled_from(["0.1", "0.05", "null"]),
        "quiet": st.sampled_from(["true", "false"]),
        "tags": st.sampled_from(["[a,b]", "[]", "[1]"]),
    }
)


@settings(max_examples=25, deadline=None)
@given(jobs=st.lists(values, min_size=1, max_size=4))
def test_derived_configs_equal_hydras_composition(loaders, jobs):
    loader, kept, master = loaders
    for job in jobs:
        overrides = [
            "experiment=quickstart",
            f"collective.alpha={job['alpha']}",
            f"seed={job['seed']}",
            f"model={job['model']}",
            f"trainer.max_epochs={job['epochs']}",
            f"model.lr={job['lr']}",
            f"quiet={job['quiet']}",
            f"+tags={job['tags']}",
        ]
        _same(kept.take(master, overrides), loader.load_sweep_config(master, overrides))


class _Counting:
    """A config loader that counts its compositions."""

    def __init__(self, loader) -> None:
        self.loader, self.calls = loader, 0

    def __getattr__(self, name):
        return getattr(self.loader, name)

    def load_sweep_config(self, master, overrides):
        self.calls += 1
        return self.loader.load_sweep_config(master, overrides)


def test_one_composition_per_combination_of_groups_and_non_value_overrides(loaders):
    loader, _, master = loaders
    counting = _Counting(loader)
    kept = KeptCompositions(counting)
    for model in ("mlp", "linear"):
        for alpha in ("0.01", "0.02", "0.05"):
            for seed in ("0", "1"):
                kept.load_sweep_config(
                    master, ["experiment=quickstart", f"model={model}", f"collective.alpha={alpha}", f"seed={seed}"]
                )
    kept.load_sweep_config(master, ["experiment=quickstart", "model=mlp", "collective.alpha=0.01", "seed=0", "+x=1"])
    kept.load_sweep_config(master, ["experiment=quickstart", "model=mlp", "collective.alpha=0.01", "seed=0", "+x=2"])
    # a mapping value merges into what is there, so it is not set on a copy either
    kept.load_sweep_config(master, ["experiment=quickstart", "model=mlp", "trainer={max_epochs:2}"])
    kept.load_sweep_config(master, ["experiment=quickstart", "model=mlp", "trainer={max_epochs:3}"])
    assert counting.calls == 2 + 2 + 2
    derived = kept.take(master, ["experiment=quickstart", "model=linear", "collective.alpha=0.05", "seed=1"])
    _same(
        derived,
        loader.load_sweep_config(master, ["experiment=quickstart", "model=linear", "collective.alpha=0.05", "seed=1"]),
    )
    assert derived.hydra.job.override_dirname == "collective.alpha=0.05,model=linear,seed=1"


def test_a_bad_value_fails_as_hydras_composition_fails(loaders):
    from hydra.errors import ConfigCompositionException, OverrideParseException

    loader, _, master = loaders
    kept = KeptCompositions(loader)
    kept.load_sweep_config(master, ["experiment=quickstart", "seed=0"])
    with pytest.raises(ConfigCompositionException, match="nokey"):
        kept.load_sweep_config(master, ["experiment=quickstart", "nokey=0"])
    with pytest.raises(OverrideParseException, match=r"\[1,2"):
        kept.load_sweep_config(master, ["experiment=quickstart", "seed=[1,2"])
