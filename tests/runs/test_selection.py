import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lightning_aca.runs.records import write_record
from lightning_aca.runs.selection import best_settings, main, override


def _record(lr, seed, val_acc=None, trainable=None):
    metrics = {} if val_acc is None else {"aca/val_acc": val_acc}
    return {"config": {"model": {"lr": lr, "trainable": trainable}, "seed": seed}, "metrics": metrics}


def test_the_highest_mean_over_seeds_wins():
    records = [_record(0.1, 0, 0.9), _record(0.1, 1, 0.5), _record(0.01, 0, 0.8), _record(0.01, 1, 0.7)]
    assert best_settings(records, ["model.lr"]) == {"model.lr": 0.01}  # 0.75 beats 0.70 though 0.9 is the best run


def test_a_diverged_run_or_a_missing_seed_leaves_its_setting_out():
    diverged = [_record(0.5, 0, 0.99), _record(0.5, 1), _record(0.05, 0, 0.6), _record(0.05, 1, 0.6)]
    assert best_settings(diverged, ["model.lr"]) == {"model.lr": 0.05}
    missing = [_record(0.5, 0, 0.99), _record(0.05, 0, 0.6), _record(0.05, 1, 0.6)]
    assert best_settings(missing, ["model.lr"]) == {"model.lr": 0.05}
    with pytest.raises(ValueError, match="every setting diverged"):
        best_settings([_record(0.5, 0)], ["model.lr"])
    with pytest.raises(ValueError, match="no records"):
        best_settings([], ["model.lr"])
    with pytest.raises(KeyError, match=r"no 'model\.momentum'.*dotted config keys"):
        best_settings([_record(0.5, 0, 0.9)], ["model.momentum"])


@given(st.lists(st.tuples(st.sampled_from([1e-3, 1e-2, 1e-1]), st.floats(0, 1)), min_size=1, max_size=12))
def test_the_chosen_setting_has_the_best_mean_of_the_complete_settings(runs):
    records = [_record(lr, seed, acc) for seed, (lr, acc) in enumerate(runs)]
    sizes = {lr: sum(r[0] == lr for r in runs) for lr, _ in runs}
    means = {lr: sum(a for r, a in runs if r == lr) / sizes[lr] for lr in sizes if sizes[lr] == max(sizes.values())}
    chosen = best_settings(records, ["model.lr"])["model.lr"]
    assert math.isclose(means[chosen], max(means.values()), rel_tol=1e-9, abs_tol=1e-12)


def test_the_command_prints_hydra_overrides(tmp_path, capsys):
    for i, (trainable, lr, acc) in enumerate([(["classifier", "LayerNorm"], 5e-3, 0.79), (["encoder"], 1e-3, 0.77)]):
        record = _record(lr, 0, acc, trainable) | {"schema_version": 1, "alpha": 0.0, "seed": 0}
        record["metrics"] |= {"aca/success": 0.0, "aca/clean_acc": acc}
        write_record(record, tmp_path / str(i))
    assert main([str(tmp_path), "--by", "model.trainable", "--by", "model.lr"]) == 0
    assert capsys.readouterr().out.strip() == "model.trainable=[classifier,LayerNorm] model.lr=0.005"
    assert override("trainer.max_epochs", 10) == "trainer.max_epochs=10"
