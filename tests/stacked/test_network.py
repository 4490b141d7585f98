"""The network protocol: a foreign LightningModule (lightning-hydra-template style) and Group DRO, stacked."""

import copy
import statistics
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf, open_dict

from lightning_aca.cli import run_experiment
from lightning_aca.stacked import run_stacked, stackable_reason
from lightning_aca.stacked.engine import build_stacked, fit

ROOT = Path(__file__).resolve().parents[2]
CPU = torch.device("cpu")
TEMPLATE = "tests.stacked.template_module"


@pytest.fixture(autouse=True)
def _template_importable(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))


def template_model(lr=0.01, scheduler=True, batch_norm=True, optimizer="torch.optim.Adam", **extra):
    model = {
        "_target_": f"{TEMPLATE}.DigitsLitModule",
        "net": {"_target_": f"{TEMPLATE}.DenseNet", "input_size": 64, "hidden": 32, "batch_norm": batch_norm},
        "optimizer": {"_target_": optimizer, "_partial_": True, "lr": lr, **extra},
        "scheduler": None,
    }
    if scheduler:
        model["scheduler"] = {
            "_target_": "torch.optim.lr_scheduler.StepLR",
            "_partial_": True,
            "step_size": 1,
            "gamma": 0.5,
        }
    return model


def with_model(cfg, model):
    with open_dict(cfg):
        cfg.model = OmegaConf.create(model)
    return cfg


def _net(module, k):
    net = copy.deepcopy(module.base).to_empty(device="cpu")
    state = {name: value[k].clone() for name, value in {**module.params, **module.stacked_buffers}.items()}
    net.load_state_dict(state)
    return net


def test_a_template_module_with_adam_a_schedule_and_batchnorm_trains_as_it_would_alone(compose_cfg):
    lrs = (0.01, 0.003)
    cfgs = [
        with_model(compose_cfg("collective.alpha=0.1", f"seed={k}", name=str(k)), template_model(lr=lr))
        for k, lr in enumerate(lrs)
    ]
    assert stackable_reason(cfgs[0]) is None
    module = build_stacked(cfgs)
    nets = [_net(module, k).train() for k in range(2)]
    fit(module, cfgs[0], CPU)
    for k, lr in enumerate(lrs):
        net = nets[k]
        optimizer = torch.optim.Adam(net.parameters(), lr=lr)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
        for epoch in range(2):
            order, _ = module.epoch_indices(epoch)
            for step in range(module.steps_per_epoch):
                x, y, _ = module.gather(order[:, step * 64 : (step + 1) * 64])
                optimizer.zero_grad()
                F.cross_entropy(net(x[k]), y[k]).backward()
                optimizer.step()
            scheduler.step()
        # a bias just before BatchNorm has zero gradient up to rounding, which Adam normalizes into
        # steps of size lr: those biases (and the running means that include them) are not compared
        ill_posed = {"model.0.bias", "model.1.running_mean", "model.3.bias", "model.4.running_mean"}
        for name, value in net.state_dict().items():
            if name not in ill_posed:
                stacked = {**module.params, **module.stacked_buffers}[name][k]
                torch.testing.assert_close(stacked, value.to(stacked.dtype), atol=2e-6, rtol=1e-5, msg=name)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            {"scheduler": {"_target_": "torch.optim.lr_scheduler.ReduceLROnPlateau", "_partial_": True}},
            "ReduceLROnPlateau",
        ),
        ({"optimizer": {"_target_": "torch.optim.RMSprop", "_partial_": True, "lr": 0.01}}, "RMSprop"),
        ({"_target_": f"{TEMPLATE}.BackboneLitModule"}, "self.net"),
    ],
)
def test_a_module_outside_the_protocol_gets_one_line_naming_what(compose_cfg, change, reason):
    cfg = with_model(compose_cfg(), {**template_model(), **change})
    found = stackable_reason(cfg)
    assert found is not None and reason in found and "\n" not in found


def test_another_loss_and_batchnorm_under_dp_are_refused(compose_cfg):
    smoothed = with_model(compose_cfg(name="smooth"), {**template_model(), "label_smoothing": 0.1})
    assert "does not return the cross-entropy" in stackable_reason(smoothed)
    private = with_model(compose_cfg("firm=dpsgd", name="dp"), template_model(scheduler=False))
    assert "BatchNorm" in stackable_reason(private)
    plain = with_model(compose_cfg("firm=dpsgd", name="plain"), template_model(scheduler=False, batch_norm=False))
    assert stackable_reason(plain) is None


GDRO = ["data=spurious", "firm=gdro", "collective.alpha=0.05", "firm.callbacks.gdro.step_size=0.5"]


def test_stacked_group_dro_is_the_callbacks_update_on_one_model(compose_cfg):
    from hydra.utils import instantiate

    cfg = compose_cfg(*GDRO, "model.momentum=0", "firm.callbacks.gdro.generalization_adjustment=1.0")
    assert stackable_reason(cfg) is None
    module = build_stacked([cfg])
    net = _net(module, 0)
    fit(module, cfg, CPU)
    dro = module.group_dro
    observed = dro.group_views.gather(0, module.owner.long())[0]  # the groups of model 0's training set
    callback = instantiate(cfg.firm.callbacks.gdro, group_counts=torch.bincount(observed, minlength=4).tolist())
    optimizer = torch.optim.SGD(net.parameters(), lr=float(cfg.model.lr))
    by_epoch = []
    for epoch in range(2):
        order, _ = module.epoch_indices(epoch)
        for step in range(module.steps_per_epoch):
            index = order[:, step * 64 : (step + 1) * 64]
            x, y, view = module.gather(index)
            groups = dro.groups(view, index)[0]
            assert torch.equal(groups, observed[index[0]])
            optimizer.zero_grad()
            callback.step(F.cross_entropy(net(x[0]), y[0], reduction="none"), groups).backward()
            optimizer.step()
        by_epoch.append(callback.weights)
    torch.testing.assert_close(dro.q[0], callback.weights, atol=1e-5, rtol=0)
    ours = torch.tensor(dro.record_fields(0)["group_weights_by_epoch"])
    torch.testing.assert_close(ours, torch.stack(by_epoch), atol=1e-5, rtol=0)  # q at each epoch's end
    for name, value in net.named_parameters():
        torch.testing.assert_close(module.params[name][0], value.detach(), atol=1e-5, rtol=0)


def _agree(stacked, standard):
    for key, margin in (("aca/success", 0.1), ("aca/clean_acc", 0.03)):
        ours = [r["metrics"][key] for r in stacked]
        theirs = [r["metrics"][key] for r in standard]
        spread = max(max(theirs) - min(theirs), margin)
        assert min(theirs) - spread <= statistics.mean(ours) <= max(theirs) + spread, (key, ours, theirs)


@pytest.mark.parametrize("firm", ["template", "gdro"])
def test_stacked_runs_agree_with_the_standard_path_within_seed_spread(compose_cfg, firm):
    overrides = ["trainer.max_epochs=10", "collective.alpha=0.05"]
    if firm == "gdro":
        overrides += ["data=spurious", "firm=gdro"]

    def cfgs(engine):
        made = [compose_cfg(*overrides, f"seed={s}", name=f"{engine}/{s}") for s in (0, 1, 2)]
        return [with_model(c, template_model(lr=0.003)) for c in made] if firm == "template" else made

    stacked = run_stacked(cfgs("stacked"))
    assert {r["engine"] for r in stacked} == {"stacked"}
    standard = [run_experiment(cfg) for cfg in cfgs("standard")]
    _agree(stacked, standard)
    if firm == "gdro":
        for ours, theirs in zip(stacked, standard, strict=True):
            assert set(ours) == set(theirs) - {"engine"} | {"engine"}
            assert len(ours["group_weights"]) == 4 and sum(ours["group_weights"]) == pytest.approx(1, abs=1e-5)
            assert len(ours["group_weights_by_epoch"]) == len(theirs["group_weights_by_epoch"]) == 10


def test_fitting_past_the_schedule_names_the_epochs_it_covers(compose_cfg):
    import lightning as L

    from lightning_aca.stacked import StackedDataModule

    module = build_stacked([compose_cfg()])  # trainer.max_epochs=2
    trainer = L.Trainer(max_epochs=3, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    with pytest.raises(ValueError, match=r"schedule covers 2 epochs; fit it with max_epochs <= 2 \(got 3\)"):
        trainer.fit(module, StackedDataModule())
