"""The critical-mass sweeper under Hydra's sweeper test suites (``hydra.test_utils.launcher_common_tests``).

Hydra tests a sweeper by running the launcher, batching and integration suites with the basic
launcher and ``hydra/sweeper=<name>``; outside ``aca-run`` the sweeper's name is
``aca_critical_mass`` (its structured config; ``aca-run``'s ``critical_mass`` extends it with S*
from ``report.success_level``). Their apps sweep generic keys (``+a=0,1``,
``group1=file1,file2``, ``db=mysql,postgresql``, ``bar=100,200,300``) and check that each grid
point comes back as one job with exactly its overrides. The critical-mass sweeper sweeps no grid
of its own keys: it places runs over ``collective.alpha`` and ``seed``, adds both to every job,
and decides each next round from the records (``aca/success``) the runs write. So the suites' tests
that count grid jobs cannot apply and are skipped with that reason; those that check what Hydra
itself refuses before any sweeper runs apply and run.
"""

import pytest
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.test_utils.launcher_common_tests import BatchedSweeperTestSuite, IntegrationTestSuite, LauncherTestSuite

from hydra_plugins.aca_critical_mass_sweeper.critical_mass_sweeper import CriticalMassSweeper

SWEEPER = ["hydra/sweeper=aca_critical_mass", "hydra.sweeper.alpha_range=[0.01,0.1]"]
_GRID = (
    "expects one job per point of a generic grid with exactly that point's overrides; the critical-mass "
    "sweeper's jobs are rounds over collective.alpha and seed, which it adds to every job and which the "
    "suite's configs do not have, and it reads each round's outcome from the records aca-run writes"
)
_ONE_RUN = (
    "expects a single job with no overrides; the critical-mass sweeper launches a search over "
    "collective.alpha and seed, which the suite's configs do not have"
)
NOT_APPLICABLE = {
    "test_sweep_1_job": _ONE_RUN,
    "test_sweep_1_job_strict": _ONE_RUN,
    "test_sweep_with_custom_resolver": _ONE_RUN,
    "test_sweep_2_jobs": _GRID,
    "test_sweep_2_optimizers": _GRID,
    "test_sweep_over_unspecified_mandatory_default": _GRID,
    "test_sweep_and_override": _GRID,
}


def test_discovery():
    # the scanner executes each plugin module again, so compare by name
    found = {f"{plugin.__module__}.{plugin.__qualname__}" for plugin in Plugins.instance().discover(Sweeper)}
    assert f"{CriticalMassSweeper.__module__}.{CriticalMassSweeper.__qualname__}" in found


@pytest.mark.parametrize(("launcher_name", "overrides"), [("basic", SWEEPER)])
class TestCriticalMassSweeper(LauncherTestSuite):
    """Runs the suite's checks on what Hydra refuses (sweeping Hydra's own config, an unknown key in strict mode)."""

    @pytest.fixture(autouse=True)
    def _skip_grid_checks(self, request):
        reason = NOT_APPLICABLE.get(request.node.originalname)
        if reason is not None:
            pytest.skip(f"critical_mass: {reason}")


@pytest.mark.skip(
    reason="critical_mass: expects six grid jobs in three batches of hydra.sweeper.max_batch_size=2; the "
    "critical-mass sweeper has no batch size: each round of its search is one batch, as many runs as the "
    "search places, over collective.alpha and seed"
)
@pytest.mark.parametrize(("launcher_name", "overrides"), [("basic", SWEEPER)])
class TestCriticalMassSweeperWithBatching(BatchedSweeperTestSuite):
    """Skipped as a whole: see the reason."""


@pytest.mark.skip(
    reason="critical_mass: the suite's apps print a value (job name, cwd, a path) from an empty config; "
    "the critical-mass sweeper needs collective.alpha in the config and an aca-run record from every run"
)
@pytest.mark.parametrize(("task_launcher_cfg", "extra_flags"), [({}, ["-m", *SWEEPER, "hydra/launcher=basic"])])
class TestCriticalMassSweeperIntegration(IntegrationTestSuite):
    """Skipped as a whole: see the reason."""


@pytest.mark.usefixtures("hydra_restore_singletons")
def test_a_generic_grid_is_refused_with_the_fix(hydra_sweep_runner, tmp_path, capsys):
    """In any Hydra app ``hydra/sweeper=aca_critical_mass`` composes; a sweep without an α range says what to add,
    in one line, and exits with code 2."""
    sweep = hydra_sweep_runner(
        calling_file=None,
        calling_module="hydra.test_utils.a_module",
        task_function=None,
        config_path="configs",
        config_name="compose",
        overrides=["hydra/sweeper=aca_critical_mass", "+a=0,1"],
        temp_dir=tmp_path,
    )
    with pytest.raises(SystemExit) as stopped, sweep:
        pass
    assert stopped.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("aca-run: error: hydra.sweeper.alpha_range is not set")
    assert "give hydra.sweeper.alpha_range=[0.001,0.2] or sweep collective.alpha" in line
