import copy
import json

import pytest
import torch
import torch.nn.functional as F
from omegaconf import open_dict
from torch import nn

from lightning_aca.metrics.functional import collective_success, worst_group_accuracy
from lightning_aca.models import classifier as models
from lightning_aca.stacked import engine as engine_module
from lightning_aca.stacked import run_stacked, stackable_reason
from lightning_aca.stacked.engine import build_stacked, fit
from lightning_aca.stacked.privacy import draw_noise

CPU = torch.device("cpu")
RECORD_KEYS = {  # aca-run's record (lightning_aca.cli.run_experiment), plus the engine
    "schema_version",
    "status",
    "overrides",
    "sweep",
    "alpha",
    "seed",
    "strategy",
    "target_class",
    "metrics",
    "epsilon",
    "theory",
    "config",
    "wall_time_s",
    "versions",
    "engine",
    "device",
    "accelerator_count",
}


def _net(module, k):
    """Model k of a stacked module as a plain network."""
    net = copy.deepcopy(module.base).to_empty(device="cpu")
    net.load_state_dict({name: value[k].clone() for name, value in module.params.items()})
    return net


def test_erm_stacked_models_equal_separately_trained_models(compose_cfg):
    runs = [(0.0, 0, 0.05), (0.05, 1, 0.1), (0.2, 2, 0.02)]
    cfgs = [
        compose_cfg(f"collective.alpha={a}", f"seed={s}", f"model.lr={lr}", "model.weight_decay=0.001", name=str(s))
        for a, s, lr in runs
    ]
    module = build_stacked(cfgs)
    nets = [_net(module, k) for k in range(3)]
    fit(module, cfgs[0], CPU)
    for k, (_, _, lr) in enumerate(runs):
        net = nets[k]
        optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=0.001)
        for epoch in range(2):
            order, _ = module.epoch_indices(epoch)
            for step in range(module.steps_per_epoch):
                index = order[:, step * 64 : (step + 1) * 64]
                x, y, _ = module.gather(index)
                optimizer.zero_grad()
                F.cross_entropy(net(x[k]), y[k]).backward()
                optimizer.step()
        for name, value in net.named_parameters():
            torch.testing.assert_close(module.params[name][k], value.detach(), atol=1e-5, rtol=0)


def test_a_models_training_does_not_depend_on_its_chunk(compose_cfg):
    alone = build_stacked([compose_cfg("collective.alpha=0.05", "seed=4", name="a")])
    together = build_stacked([compose_cfg(f"collective.alpha={a}", "seed=4", name=str(a)) for a in (0.05, 0.3)])
    fit(alone, alone_cfg := compose_cfg(name="a"), CPU)
    fit(together, alone_cfg, CPU)
    for name, value in alone.params.items():
        torch.testing.assert_close(together.params[name][0], value[0], atol=1e-5, rtol=0)
    assert not torch.allclose(together.params["1.weight"][1], alone.params["1.weight"][0])


def _dp_module(compose_cfg, sigmas=(0.0, 0.0), clips=(0.5, 1.0), arch="mlp"):
    cfgs = [
        compose_cfg(
            "firm=dpsgd",
            f"model={arch}",
            f"firm.callbacks.dpsgd.noise_multiplier={s}",
            f"firm.callbacks.dpsgd.max_grad_norm={c}",
            f"seed={k}",
            "collective.alpha=0.1",
            name=str(k),
        )
        for k, (s, c) in enumerate(zip(sigmas, clips, strict=True))
    ]
    module = build_stacked(cfgs)
    module.on_fit_start()
    return module


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_dp_step_without_noise_equals_opacus(compose_cfg, arch):
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer

    module = _dp_module(compose_cfg, arch=arch)
    index, valid = module.epoch_indices(0)
    index, valid = index[:, 0], valid[:, 0]
    x, y, _ = module.gather(index)
    grads, _ = module.gradients(x, y, valid, draw_noise(module.params))
    expected = module.poisson.expected_batch_size
    for k, clip in enumerate((0.5, 1.0)):
        net = GradSampleModule(_net(module, k))
        optimizer = DPOptimizer(
            torch.optim.SGD(net.parameters(), lr=0.0),
            noise_multiplier=0.0,
            max_grad_norm=clip,
            expected_batch_size=expected,
        )
        F.cross_entropy(net(x[k][valid[k]]), y[k][valid[k]]).backward()
        optimizer.pre_step()
        for (name, _), p in zip(net._module.named_parameters(), net.parameters(), strict=True):
            torch.testing.assert_close(grads[name][k], p.grad, atol=1e-5, rtol=0)
        net._close()


def test_dp_noise_has_standard_deviation_sigma_times_c(compose_cfg):
    module = _dp_module(compose_cfg, sigmas=(0.0, 0.8), clips=(0.5, 2.0))
    index, valid = module.epoch_indices(0)
    x, y, _ = module.gather(index[:, 0])
    noise = draw_noise(module.params, torch.Generator().manual_seed(0))
    noisy, _ = module.gradients(x, y, valid[:, 0], noise)
    module.noise_std.zero_()
    clean, _ = module.gradients(x, y, valid[:, 0], noise)
    noise = torch.cat([(noisy[n] - clean[n]).flatten(1) for n in noisy], dim=1) * module.poisson.expected_batch_size
    assert noise.shape[1] > 9000
    assert noise[0].abs().max() < 1e-5  # sigma = 0: no noise
    assert abs(noise[1].std().item() / 1.6 - 1) < 0.05  # sigma * C = 0.8 * 2.0
    assert abs(noise[1].mean().item()) < 0.05


def test_epsilon_and_sigma_are_opacus_accountants(compose_cfg, tmp_path):
    from opacus.accountants import RDPAccountant
    from opacus.accountants.utils import get_noise_multiplier
    from opacus.data_loader import DPDataLoader

    from lightning_aca import DigitsDataModule

    dm = DigitsDataModule()
    dm.setup("fit")
    private_loader = DPDataLoader.from_data_loader(dm.train_dataloader())
    cfgs = [
        compose_cfg("firm=dpsgd", "firm.callbacks.dpsgd.noise_multiplier=1.1", "seed=0", name="sigma"),
        compose_cfg(
            "firm=dpsgd",
            "firm.callbacks.dpsgd.noise_multiplier=null",
            "firm.callbacks.dpsgd.target_epsilon=4",
            "seed=1",
            name="eps",
        ),
    ]
    module = build_stacked(cfgs)
    assert module.poisson.sample_rate == private_loader.sample_rate
    assert module.poisson.steps_per_epoch == len(private_loader)
    sigma = get_noise_multiplier(target_epsilon=4, target_delta=1 / 1347, sample_rate=1 / 22, epochs=2)
    torch.testing.assert_close(module.noise_std, torch.tensor([1.1, sigma]))
    records = run_stacked(cfgs)
    for record, s in zip(records, (1.1, sigma), strict=True):
        reference = RDPAccountant()
        reference.history = [(s, 1 / 22, 2 * 22)]
        assert record["epsilon"] == pytest.approx(reference.get_epsilon(1 / 1347), rel=1e-12)
        # the record's DP fields, as the DPSGD callback declares them on the standard path
        assert (record["noise_multiplier"], record["sample_rate"], record["steps"]) == pytest.approx((s, 1 / 22, 44))
        assert (record["delta"], record["accountant"]) == (1 / 1347, "rdp")
        assert set(record) == RECORD_KEYS | {"noise_multiplier", "sample_rate", "steps", "delta", "accountant"}
    assert records[1]["epsilon"] == pytest.approx(4, abs=0.01)


def test_target_epsilon_is_calibrated_for_the_runs_steps_as_dpsgd_does(compose_cfg):
    """σ for 3 epochs of 75 batches: Opacus's epochs form would count int(3 / (1/75)) = 224 steps, not 225."""
    from lightning_aca import DigitsDataModule
    from lightning_aca.firm.dp import noise_multiplier_for

    dm = DigitsDataModule(batch_size=18)  # 1,347 training digits: 75 batches
    dm.setup("fit")
    assert len(dm.train_dataloader()) == 75 and int(3 / (1 / 75)) == 224
    eps = ["firm=dpsgd", "firm.callbacks.dpsgd.noise_multiplier=null", "firm.callbacks.dpsgd.target_epsilon=2"]
    cfg = compose_cfg(*eps, "data.datamodule.batch_size=18", "trainer.max_epochs=3")
    module = build_stacked([cfg])
    expected = noise_multiplier_for(2.0, 1 / 1347, 1 / 75, 3 * 75, "rdp")
    torch.testing.assert_close(module.noise_std, torch.tensor([expected]))
    short = compose_cfg(*eps, "+firm.callbacks.dpsgd.epochs=1", name="short")  # the Trainer runs 2 epochs
    with pytest.raises(ValueError, match=r"DPSGD\(epochs=1\) calibrates σ for 22 steps, but the Trainer takes 44"):
        build_stacked([short])


def test_records_have_aca_runs_schema_and_resume(compose_cfg, tmp_path):
    cfgs = [compose_cfg(f"collective.alpha={a}", name=str(a)) for a in (0.02, 0.1)]
    records = run_stacked(cfgs, max_models=1)
    for cfg, record in zip(cfgs, records, strict=True):
        on_disk = json.loads((tmp_path / str(cfg.collective.alpha) / "record.json").read_text())
        assert on_disk == json.loads(json.dumps(record, default=str))
        assert set(record) == RECORD_KEYS and record["engine"] == "stacked" and record["epsilon"] is None
        assert set(record["metrics"]) == {
            "aca/success",
            "aca/baseline_success",
            "aca/clean_acc",
            "aca/alpha",
            "aca/population_alpha",
            "aca/members",
        }
        assert record["theory"] == {"xi": 0.0, "n_train": 1347} and record["strategy"] == "SignalPlanting"
        assert record["config"]["collective"]["alpha"] == cfg.collective.alpha
    assert records[1]["metrics"]["aca/members"] == 135.0 and records[1]["metrics"]["aca/clean_acc"] > 0.5
    marker = {"schema_version": 1, "marker": 7, "config": records[0]["config"]}
    (tmp_path / "0.02" / "record.json").write_text(json.dumps(marker))
    (tmp_path / "0.1" / "record.json").unlink()
    again = run_stacked(cfgs)
    assert again[0]["marker"] == 7 and again[1]["metrics"] == records[1]["metrics"]
    other = run_stacked([compose_cfg("collective.alpha=0.02", name="0.02")], max_models=1)  # same run: resumed
    assert other[0]["marker"] == 7
    with pytest.raises(
        ValueError, match=r"holds the record of another configuration \(model\.hidden: 128 there, 32 here\)"
    ):
        run_stacked([compose_cfg("collective.alpha=0.02", "model.hidden=32", name="0.02")])


def test_evaluation_uses_the_metric_definitions_for_every_model(compose_cfg):
    cfgs = [compose_cfg("data=spurious", f"seed={s}", "collective.alpha=0.05", name=str(s)) for s in (0, 1)]
    module = build_stacked(cfgs)
    results = module.evaluate()
    ev = module.evaluation
    (signal_set,) = ev.signal_sets
    for k, values in enumerate(results):
        net = _net(module, k).eval()
        with torch.no_grad():
            signal, clean, test = net(signal_set.signal_inputs), net(signal_set.clean_inputs), net(ev.x)
        assert values["aca/success"] == pytest.approx(collective_success(signal, signal_set.success_labels).item())
        assert values["aca/baseline_success"] == pytest.approx(
            collective_success(clean, signal_set.success_labels).item()
        )
        assert values["aca/clean_acc"] == pytest.approx((test.argmax(1) == ev.y).float().mean().item())
        assert values["aca/worst_group_acc"] == pytest.approx(worst_group_accuracy(test, ev.y, ev.groups, 4).item())
        assert values["aca/worst_group_acc"] == min(values[f"aca/group_acc/{g}"] for g in range(4))


def _bn_mlp(input_shape, num_classes, **kwargs):
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, num_classes))


def test_batchnorm_under_dp_fails_before_training_with_the_reason(compose_cfg, monkeypatch):
    monkeypatch.setitem(models._ARCHS, "bn_mlp", _bn_mlp)
    cfg = compose_cfg("firm=dpsgd", "model.arch=bn_mlp")
    assert "BatchNorm" in stackable_reason(cfg)
    with pytest.raises(ValueError, match="BatchNorm"):
        run_stacked([cfg])


class _Branchy(nn.Module):
    """Data-dependent control flow: the branch taken depends on the values, which vmap cannot batch."""

    def __init__(self, input_shape, num_classes, **kwargs):
        super().__init__()
        self.linear = nn.Linear(64, num_classes)

    def forward(self, x):
        h = self.linear(x.flatten(1))
        return h if h.sum() > 0 else -h


def test_a_module_torch_func_cannot_stack_fails_before_training(compose_cfg, monkeypatch, tmp_path):
    monkeypatch.setitem(models._ARCHS, "branchy", _Branchy)
    cfg = compose_cfg("model.arch=branchy")
    reason = stackable_reason(cfg)
    assert reason is not None and "torch.func cannot train _Branchy" in reason
    with pytest.raises(ValueError, match=r"torch\.func cannot train _Branchy"):
        run_stacked([cfg])
    assert not (tmp_path / "run" / "record.json").exists()


def test_two_architectures_are_not_mixed(compose_cfg):
    cfgs = [compose_cfg("model=mlp", name="a"), compose_cfg("model=cnn", name="b")]
    with pytest.raises(ValueError, match=r"differ in 'model\.arch'"):
        run_stacked(cfgs)


def test_online_collectives_and_dp_with_group_dro_are_refused_with_one_line(compose_cfg):
    reason = stackable_reason(compose_cfg("collective=gradient_control", "data=gaussian", "model=linear"))
    assert reason and "\n" not in reason
    cfg = compose_cfg("firm=gdro", "data=spurious")
    assert stackable_reason(cfg) is None
    with open_dict(cfg):
        cfg.firm.callbacks.dpsgd = compose_cfg("firm=dpsgd").firm.callbacks.dpsgd
    assert "together have no stacked form" in stackable_reason(cfg)
    assert stackable_reason(compose_cfg()) is None


def test_memory_estimate_chunks_and_an_overflow_names_the_chunk_size_that_fits(compose_cfg, monkeypatch):
    cfgs = [compose_cfg(f"seed={s}", "trainer.max_epochs=1", name=str(s)) for s in range(3)]
    model = models.Classifier()
    per_model = engine_module.bytes_per_model(model.net, (1, 8, 8), 64, 512, False)
    data = 4 * 2 * (1347 + 450) * 64

    def budget(models):
        monkeypatch.setattr(engine_module, "available_memory", lambda device: int((data + models * per_model) / 0.8))

    budget(0.5)
    with pytest.raises(ValueError, match="the chunk size that fits is max_models=0"):
        run_stacked(cfgs)
    chunks = []
    real_fit = engine_module.fit
    monkeypatch.setattr(engine_module, "fit", lambda module, *a: chunks.append(module.k) or real_fit(module, *a))
    budget(2.5)
    assert len(run_stacked(cfgs, max_models=3)) == 3 and chunks == [2, 1]

    def out_of_memory(module, *args):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(engine_module, "fit", out_of_memory)
    budget(10)
    again = [compose_cfg(f"seed={s}", name=f"again{s}") for s in range(3)]
    with pytest.raises(ValueError, match="the chunk size that fits is at most max_models=1"):
        run_stacked(again)


def test_each_configuration_logs_into_its_own_csv(compose_cfg, tmp_path):
    cfgs = [compose_cfg("logger=csv", f"seed={s}", name=str(s)) for s in (0, 1)]
    run_stacked(cfgs)
    for s in (0, 1):
        lines = (tmp_path / str(s) / "csv" / "metrics.csv").read_text().splitlines()
        header = lines[0].split(",")
        assert {"train/loss", "aca/success", "aca/clean_acc", "epoch"} <= set(header) and len(lines) == 1 + 2 + 1


def test_a_launchers_hydra_node_gives_the_records_overrides(compose_cfg):
    from omegaconf import open_dict

    cfg = compose_cfg("collective.alpha=0.05", "seed=1", "trainer.max_epochs=1")
    with open_dict(cfg):
        cfg.hydra = {"overrides": {"task": ["collective.alpha=0.05", "seed=1"]}, "job": {"name": "j7"}}
        cfg.note = "${hydra.job.name}"
    (record,) = run_stacked([cfg])
    assert record["overrides"] == ["collective.alpha=0.05", "seed=1"]
    assert record["sweep"] == {"collective.alpha": 0.05, "seed": 1}
    assert "hydra" not in record["config"] and record["config"]["note"] == "j7"


def test_erasing_reports_agreement_and_label_flip_gathers_one_input(compose_cfg):
    from lightning_aca.metrics.functional import prediction_agreement

    erasing = build_stacked([compose_cfg("collective=erasing", "collective.alpha=0.05")])
    (values,) = erasing.evaluate()
    (ev,) = erasing.evaluation.signal_sets
    net = _net(erasing, 0).eval()
    with torch.no_grad():
        agreement = prediction_agreement(net(ev.signal_inputs), net(ev.clean_inputs)).item()
    assert values["aca/erasure_agreement"] == pytest.approx(agreement) and len(ev.success_labels) == 450
    flip = build_stacked([compose_cfg("collective=label_flip", "collective.alpha=0.3", name="flip")])
    index = flip.epoch_indices(0)[0][:, :64]
    x, y, _ = flip.gather(index)
    member = torch.gather(flip.is_member, 1, index)
    assert flip._same_inputs and torch.equal(x[0], flip.x_train[index[0]]) and torch.all(y[member] == 0)


def test_each_configuration_tells_wandb_its_config_sweep_and_results(compose_cfg, tmp_path, wandb_runs):
    """As aca-run's loggers: flat config, swept settings, sweep directory, device; the record's values in the summary."""
    from omegaconf import open_dict

    cfgs = []
    for seed in (0, 1):
        cfg = compose_cfg("logger=wandb", "collective.alpha=0.05", f"seed={seed}", name=str(seed))
        with open_dict(cfg):  # as the stacked launcher hands a job over: its Hydra values made local
            task = [f"seed={seed}", "logger=wandb"]
            cfg.hydra = {
                "overrides": {"task": task},
                "sweep": {"dir": str(tmp_path)},
                "job": {"override_dirname": str(seed)},
            }
            cfg.logger.wandb.group, cfg.logger.wandb.name = "${hydra.sweep.dir}", "${hydra.job.override_dirname}"
        cfgs.append(cfg)
    records = run_stacked(cfgs)

    assert [run.group for run in wandb_runs] == [str(tmp_path)] * 2
    for seed, (record, run) in enumerate(zip(records, wandb_runs, strict=True)):
        assert (record["engine"], record["device"], record["accelerator_count"]) == ("stacked", "cpu", 1)
        assert (
            run.config["seed"] == seed and run.config["sweep.seed"] == seed and run.config["collective.alpha"] == 0.05
        )
        assert run.config["sweep_keys"] == ["logger", "seed"] and run.config["sweep_dir"] == str(tmp_path)
        assert (run.config["engine"], run.config["device"], run.config["model.arch"]) == ("stacked", "cpu", "mlp")
        assert run.summary["aca/success"] == pytest.approx(record["metrics"]["aca/success"])
        assert run.summary["aca/alpha"] == 0.05 and run.summary["aca/members"] == 67.0


def test_a_diverged_model_gets_a_failed_record_and_the_others_their_results(compose_cfg, tmp_path, capsys):
    from lightning_aca.runs.records import load_records

    lrs = (0.05, 1e30, 0.1)
    cfgs = [compose_cfg("collective.alpha=0.1", f"model.lr={lr}", name=f"lr{i}") for i, lr in enumerate(lrs)]
    records = run_stacked(cfgs)
    healthy = run_stacked([compose_cfg("collective.alpha=0.1", "model.lr=0.05", name="alone")])[0]

    assert [r["status"] for r in records] == ["finished", "failed", "finished"]
    assert records[0]["metrics"] == healthy["metrics"]  # the stacked NaN model poisons no other model
    assert "metrics" not in records[1] and records[1]["engine"] == "stacked"
    assert "gives no result: the training loss is" in records[1]["error"] and "model.lr=1e+30" in records[1]["error"]
    assert f"aca-run[stacked]: error: the run in {tmp_path / 'lr1'}" in capsys.readouterr().err
    on_disk = json.loads((tmp_path / "lr1" / "record.json").read_text())
    assert on_disk["status"] == "failed"
    with pytest.warns(UserWarning, match=r"lr1.record\.json: the run failed without a result"):
        loaded = load_records([tmp_path])
    assert sorted(r["config"]["model"]["lr"] for r in loaded) == [0.05, 0.05, 0.1]


def test_a_truncated_record_is_retrained_by_the_stacked_engine(compose_cfg, tmp_path):
    cfgs = [compose_cfg(f"collective.alpha={a}", name=str(a)) for a in (0.02, 0.1)]
    first = run_stacked(cfgs)
    path = tmp_path / "0.1" / "record.json"
    path.write_text(path.read_text()[:80])
    with pytest.warns(UserWarning, match=rf"retraining the run of {path}: unreadable or partial JSON"):
        again = run_stacked(cfgs)
    assert again[1]["metrics"] == first[1]["metrics"] and json.loads(path.read_text())["status"] == "finished"
