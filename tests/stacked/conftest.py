import pytest
from hydra import compose, initialize_config_module

FAST = ["quiet=true", "logger=none", "trainer.max_epochs=2"]


def compose_run(*overrides, output_dir=None):
    """One fully composed aca-run configuration (as a launcher hands it over)."""
    with initialize_config_module("lightning_aca.conf", version_base="1.3"):
        cfg = compose("config", overrides=[*FAST, *overrides])
    if output_dir is not None:
        cfg.output_dir = str(output_dir)
    return cfg


@pytest.fixture
def compose_cfg(tmp_path):
    """``compose_cfg("collective.alpha=0.05", name="a")``: a configuration writing into ``tmp_path/name``."""

    def make(*overrides, name="run"):
        return compose_run(*overrides, output_dir=tmp_path / name)

    return make
