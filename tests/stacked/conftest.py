import pytest

FAST = ["quiet=true", "logger=none", "trainer.max_epochs=2"]


@pytest.fixture
def compose_cfg(compose_config, tmp_path):
    """``compose_cfg("collective.alpha=0.05", name="a")``: a configuration writing into ``tmp_path/name``.

    Fully composed, as a launcher hands it over.
    """

    def make(*overrides, name="run"):
        cfg = compose_config(*FAST, *overrides)
        cfg.output_dir = str(tmp_path / name)
        return cfg

    return make
