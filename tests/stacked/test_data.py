import lightning as L
import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from torch.utils.data import DataLoader, Dataset

from lightning_aca import CollectiveDataModule
from lightning_aca.collective.dataset import SignalEvaluationDataset
from lightning_aca.collective.membership import select_members
from lightning_aca.data.sampling import epoch_generator, poisson_indices, shuffled_indices
from lightning_aca.stacked import stackable_reason
from lightning_aca.stacked.data import tensors_of
from lightning_aca.stacked.engine import build_stacked


@pytest.mark.parametrize("collective", ["signal_planting", "feature_only"])
def test_members_are_select_members_per_model_and_nested_across_alpha(compose_cfg, collective):
    alphas, seeds = (0.02, 0.05, 0.2), (0, 3)
    cfgs = [
        compose_cfg(f"collective={collective}", f"collective.alpha={a}", f"seed={s}", name=f"{a}-{s}")
        for s in seeds
        for a in alphas
    ]
    module = build_stacked(cfgs)
    members = [set(np.flatnonzero(row.numpy()).tolist()) for row in module.is_member]
    for cfg, got in zip(cfgs, members, strict=True):
        dm = CollectiveDataModule(
            instantiate(cfg.collective.strategy),
            cfg.collective.alpha,
            cfg.collective.seed,
            datamodule=instantiate(cfg.data.datamodule),
            num_classes=10,
        )
        dm.setup("fit")
        assert got == set(dm.train_dataset.members.tolist())  # the standard path's members
        eligible = None if collective == "signal_planting" else (dm.train_dataset.dataset.tensors[1] == 0).numpy()
        assert got == set(select_members(1347, cfg.collective.alpha, cfg.collective.seed, eligible).tolist())
    for s in range(len(seeds)):
        row = members[s * len(alphas) : (s + 1) * len(alphas)]
        assert row[0] < row[1] < row[2]  # nested, strictly growing
    assert members[0] != members[len(alphas)]  # another seed, other members


def test_initial_weights_are_the_standard_paths(compose_cfg):
    cfgs = [compose_cfg(f"seed={s}", "collective.alpha=0.05", name=str(s)) for s in (0, 7)]
    module = build_stacked(cfgs)
    for k, cfg in enumerate(cfgs):
        L.seed_everything(cfg.seed, verbose=False)
        CollectiveDataModule(
            instantiate(cfg.collective.strategy),
            cfg.collective.alpha,
            cfg.collective.seed,
            datamodule=instantiate(cfg.data.datamodule),
        )
        reference = instantiate(cfg.model).net
        for name, value in reference.named_parameters():
            assert torch.equal(module.params[name][k], value.detach())


def test_batches_carry_each_models_members_as_the_strategy_submits_them(compose_cfg):
    cfgs = [compose_cfg(f"collective.alpha={a}", name=str(a)) for a in (0.0, 0.5)]
    module = build_stacked(cfgs)
    index = shuffled_indices(module.seeds, 0, 1347, torch.device("cpu"))[:, :64]
    x, y, _ = module.gather(index)
    member = torch.gather(module.is_member, 1, index)
    assert not member[0].any() and member[1].any()
    patch = x[..., 6:, 6:].flatten(2)
    assert torch.all(patch[member] == 1.0) and torch.all(y[member] == 0)
    assert torch.equal(x[0], module.x_train[index[0]]) and torch.equal(y[0], module.y_train[index[0]])
    assert torch.equal(x[1][~member[1]], module.x_train[index[1][~member[1]]])


def test_shuffles_depend_on_seed_and_epoch_only():
    cpu = torch.device("cpu")
    a = shuffled_indices([1, 2], 0, 50, cpu)
    assert torch.equal(a[0], shuffled_indices([1], 0, 50, cpu)[0])  # not on the other models
    assert not torch.equal(a[0], shuffled_indices([1], 1, 50, cpu)[0])  # a new order each epoch
    assert torch.equal(a.sort(1).values, torch.arange(50).expand(2, 50))


def test_poisson_samples_have_rate_q_and_mask_the_padding():
    index, valid = poisson_indices([0, 1, 2], 0, n=2000, sample_rate=0.05, steps=40, device=torch.device("cpu"))
    assert index.shape[:2] == (3, 40) and index.shape[2] % 8 == 0 and valid.shape == index.shape
    counts = valid.sum(2).double()
    assert abs(counts.mean().item() - 100) < 3 * (100 * 0.95 / 120) ** 0.5 + 1  # mean of 120 Binomial(2000, .05)
    assert counts.std().item() > 3  # batch sizes vary, as Poisson sampling's do
    for k in range(3):
        generator = epoch_generator(k, 0, torch.device("cpu"))
        mask = torch.rand(40, 2000, generator=generator) < 0.05  # model k's own stream: its seed and the epoch
        for s in range(40):
            assert torch.equal(index[k, s][valid[k, s]], mask[s].nonzero().flatten())


def test_evaluation_set_is_the_signal_evaluation_datasets(compose_cfg):
    cfg = compose_cfg("collective.alpha=0.05")
    module = build_stacked([cfg])
    dm = instantiate(cfg.data.datamodule)
    dm.setup("test")
    strategy = instantiate(cfg.collective.strategy)
    reference = SignalEvaluationDataset(dm.test_dataset, strategy, return_clean=True)
    x, y, clean, _ = (torch.stack([reference[i][j] for i in range(len(reference))]) for j in range(4))
    (ev,) = module.evaluation.signal_sets
    assert ev.name is None
    assert (
        torch.equal(ev.signal_inputs, x) and torch.equal(ev.success_labels, y) and torch.equal(ev.clean_inputs, clean)
    )


class _Pairs(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        return torch.zeros(1, 8, 8), i % 2


class _ListData(L.LightningDataModule):
    def train_dataloader(self):
        return DataLoader(_Pairs(), batch_size=4, shuffle=True)

    def test_dataloader(self):
        return DataLoader(_Pairs(), batch_size=4)


def test_non_tensor_dataset_is_refused_with_the_reason(compose_cfg, monkeypatch):
    import sys
    import types

    with pytest.raises(TypeError, match=r"in-memory tensor datasets .* _Pairs"):
        tensors_of(_ListData())
    module = types.ModuleType("_stacked_test_sources")
    module.ListData = _ListData
    monkeypatch.setitem(sys.modules, "_stacked_test_sources", module)
    cfg = compose_cfg()
    cfg.data.datamodule = {"_target_": "_stacked_test_sources.ListData"}
    assert "TensorDataset" in stackable_reason(cfg)
