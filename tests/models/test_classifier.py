import pytest
import torch

from lightning_aca import Classifier


def test_per_sample_loss_returns_the_losses_whose_mean_erm_uses():
    batch = (torch.rand(5, 1, 8, 8), torch.arange(5))
    erm, per_sample = Classifier(), Classifier(per_sample_loss=True)
    per_sample.load_state_dict(erm.state_dict())
    mean, losses = erm.training_step(batch, 0), per_sample.training_step(batch, 0)
    assert mean.dim() == 0 and losses.shape == (5,)
    assert torch.allclose(losses.mean(), mean)


def test_logged_epoch_losses_are_the_per_sample_means(make_trainer):
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    data = TensorDataset(torch.rand(50, 1, 8, 8), torch.arange(50) % 10)
    model = Classifier(lr=1e-9)  # the weights barely move, so the epoch's losses are the final model's
    trainer = make_trainer()
    trainer.fit(model, DataLoader(data, batch_size=16), DataLoader(data, batch_size=20))
    with torch.no_grad():
        losses = torch.nn.functional.cross_entropy(model(data.tensors[0]), data.tensors[1], reduction="none")
    logged = trainer.callback_metrics
    # batches of 16, 16, 16, 2 (and 20, 20, 10): each sample counts once, not each batch
    assert torch.allclose(logged["train/loss"], losses.mean(), atol=1e-5)
    assert torch.allclose(logged["val/loss"], losses.mean(), atol=1e-5)
    assert 0.0 <= float(logged["val/acc"]) <= 1.0


@pytest.mark.parametrize(
    ("arch", "shape"), [("linear", (1, 8, 8)), ("mlp", (1, 8, 8)), ("cnn", (1, 8, 8)), ("cnn", (3, 32, 32))]
)
def test_architectures_give_logits(arch, shape):
    assert Classifier(arch=arch, input_shape=shape, num_classes=7)(torch.rand(2, *shape)).shape == (2, 7)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"arch": "resnet"}, "arch"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"lr": 0}, "lr"),
        ({"arch": "cnn", "input_shape": (64,)}, "input_shape"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Classifier(**kwargs)
