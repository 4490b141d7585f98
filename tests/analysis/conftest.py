import pytest


def _run_record(alpha, seed, firm="erm", metrics=None, **fields):
    """A run record of schema 1 (with the old ``target`` key) for the sweep point ``(alpha, seed, firm)``."""
    sweep = {"collective.alpha": alpha, "seed": seed, "firm": firm}
    return {
        "schema_version": 1,
        "overrides": [f"{key}={value}" for key, value in sweep.items()],
        "sweep": sweep,
        "alpha": alpha,
        "seed": seed,
        "strategy": "SignalPlanting",
        "target": 0,
        "metrics": {"aca/success": 0.5, "aca/clean_acc": 0.97} if metrics is None else metrics,
        "epsilon": None,
        **fields,
    }


@pytest.fixture(scope="session")
def run_record():
    """``run_record(alpha, seed, firm="erm", metrics=None, **fields) -> dict``: a record as aca-run writes it."""
    return _run_record
