import pytest
import torch

from lightning_aca.data.gaussian import GaussianDataModule, gaussian_class_means


def test_shapes_bounds_and_determinism():
    dm = GaussianDataModule(n_train=500, n_test=100, num_features=3, num_classes=2, bound=1.5, seed=3)
    dm.setup()
    x, y = dm.train_dataset.tensors
    assert x.shape == (500, 3) and y.dtype == torch.long and set(y.tolist()) == {0, 1}
    assert x.min() >= -1.5 and x.max() <= 1.5 and dm.feature_bounds == (-1.5, 1.5)
    again = GaussianDataModule(n_train=500, n_test=100, num_features=3, num_classes=2, bound=1.5, seed=3)
    again.setup()
    assert torch.equal(again.train_dataset.tensors[0], x)
    assert len(next(iter(dm.train_dataloader()))[0]) == 64


def test_class_means_sit_where_documented():
    dm = GaussianDataModule(n_train=4000, num_features=2, separation=4.0, noise=0.5, bound=10.0)
    dm.setup()
    x, y = dm.train_dataset.tensors
    torch.testing.assert_close(x[y == 0].mean(0), torch.tensor([2.0, 0.0]), atol=0.05, rtol=0)
    torch.testing.assert_close(x[y == 1].mean(0), torch.tensor([-2.0, 0.0]), atol=0.05, rtol=0)
    torch.testing.assert_close(
        gaussian_class_means(4, 2, 2.0), torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_train": 0}, "n_train"),
        ({"num_classes": 1}, "num_classes"),
        ({"num_classes": 3, "num_features": 1}, "num_features"),
        ({"noise": 0.0}, "noise"),
        ({"bound": -1.0}, "bound"),
        ({"separation": float("nan")}, "separation"),
    ],
)
def test_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GaussianDataModule(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"n_train": True}, "n_train"), ({"num_classes": 2.0}, "num_classes"), ({"batch_size": True}, "batch_size")],
)
def test_bad_types(kwargs, match):
    with pytest.raises(TypeError, match=match):
        GaussianDataModule(**kwargs)
