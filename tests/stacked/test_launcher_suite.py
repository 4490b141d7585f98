"""``hydra/launcher=stacked`` under Hydra's own launcher test suites (``hydra.test_utils.launcher_common_tests``).

The suites' apps (``foo``, ``bar``, ``db``, ``group1`` …) are not ``aca-run`` configs, so every job
takes the launcher's standard path and must come back as from Hydra's basic launcher: overrides,
config, job name, id and number, output directory with ``.hydra/`` files and log. The
integration suite runs its apps in subprocesses (``python task.py -m …``), each importing the
engine (torch, Lightning) afresh, so it is marked slow.
"""

import subprocess
import sys
import textwrap
import warnings

import pytest
from hydra import compose, initialize_config_module
from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.test_utils.launcher_common_tests import BatchedSweeperTestSuite, IntegrationTestSuite, LauncherTestSuite
from hydra.version import VersionBase
from omegaconf import OmegaConf
from packaging.version import Version

from hydra_plugins.aca_stacked_launcher.stacked_launcher import StackedLauncher

# the suites' apps keep Hydra 1.1's default of running a job in its output directory, which Hydra warns of
pytestmark = pytest.mark.filterwarnings("ignore:Future Hydra versions will no longer change working directory")


@pytest.fixture(autouse=True)
def _hydra_default_version_base():
    """Hydra's default version base, 1.1 (a job runs in its output directory), which the suites expect.

    ``aca-run``'s apps, composed or run by other tests, leave 1.3 set in this process.
    """
    saved = VersionBase.instance().getbase()
    VersionBase.instance().setbase(Version("1.1"))
    yield
    VersionBase.instance().version_base = saved


def test_discovery():
    # the scanner executes each plugin module again, so compare by name
    found = {f"{plugin.__module__}.{plugin.__qualname__}" for plugin in Plugins.instance().discover(Launcher)}
    assert f"{StackedLauncher.__module__}.{StackedLauncher.__qualname__}" in found


def test_aca_run_and_any_other_app_select_the_same_launcher_config():
    def launcher_config(config_module, config_name):
        with initialize_config_module(config_module, version_base="1.3"):
            cfg = compose(config_name, overrides=["hydra/launcher=stacked"], return_hydra_config=True)
        return OmegaConf.to_container(cfg.hydra.launcher)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. Hydra's deprecated matching of a config file to a schema
        assert launcher_config("lightning_aca.conf", "config") == launcher_config("hydra.test_utils.configs", "compose")


@pytest.mark.parametrize(("launcher_name", "overrides"), [("stacked", [])])
class TestStackedLauncher(LauncherTestSuite):
    """The launcher suite: sweeps of one and two jobs, config groups, strict mode, custom resolvers."""


@pytest.mark.parametrize(
    ("launcher_name", "overrides"), [("stacked", ["hydra/sweeper=basic", "hydra.sweeper.max_batch_size=2"])]
)
class TestStackedLauncherWithBatching(BatchedSweeperTestSuite):
    """Six jobs in three batches of two: job numbers, directories and configs continue across batches."""


@pytest.mark.parametrize(
    ("task_launcher_cfg", "extra_flags"),
    [
        (
            {
                "defaults": [
                    {"override hydra/launcher": "stacked"},
                    {"override hydra/hydra_logging": "hydra_debug"},
                    {"override hydra/job_logging": "disabled"},
                ]
            },
            ["-m"],
        )
    ],
)
@pytest.mark.slow
class TestStackedLauncherIntegration(IntegrationTestSuite):
    """Job names, sweep directories from config and command line, original cwd and ``to_absolute_path``."""


@pytest.mark.usefixtures("hydra_restore_singletons")
def test_generic_jobs_are_counted_and_named_on_the_standard_path(hydra_sweep_runner, tmp_path, capsys):
    sweep = hydra_sweep_runner(
        calling_file=None,
        calling_module="hydra.test_utils.a_module",
        task_function=lambda cfg: cfg.a,
        config_path="configs",
        config_name="compose",
        overrides=["hydra/launcher=stacked", "+a=0,1"],
        temp_dir=tmp_path,
    )
    with sweep:
        assert [r.return_value for r in sweep.returns[0]] == [0, 1]
    out = capsys.readouterr().out
    assert "2 jobs: 0 in 0 stack(s) on " in out and ", 2 on the standard path, 0 done" in out
    assert "not stacked (invalid config), 2 on the standard path: +a=0 | +a=1" in out


@pytest.mark.slow
def test_an_app_of_version_base_1_1_runs_each_job_in_its_directory(tmp_path):
    """The engine the launcher imports leaves the app's Hydra version base alone: at 1.1 a job runs in its directory."""
    app = tmp_path / "app.py"
    app.write_text(
        textwrap.dedent(
            """
            import os

            import hydra


            @hydra.main(version_base="1.1", config_path=None)
            def app(cfg):
                with open("cwd.txt", "w") as f:
                    f.write(os.getcwd())


            app()
            """
        )
    )
    sweep = tmp_path / "sweep"
    command = [sys.executable, str(app), "-m", "hydra/launcher=stacked", "+a=0,1", f"hydra.sweep.dir={sweep}"]
    proc = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [(sweep / job / "cwd.txt").read_text() for job in ("0", "1")] == [str(sweep / "0"), str(sweep / "1")]
