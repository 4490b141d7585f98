import torch
from torch import nn

from lightning_aca.gradient_strategies.families import AutogradModel, flat_parameters


def _mlp_with_a_frozen_layer():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    model[0].weight.requires_grad_(False)
    return model


def test_flat_parameters_are_the_trainable_ones_in_order():
    model = _mlp_with_a_frozen_layer()
    expected = torch.cat([model[0].bias, model[2].weight.reshape(-1), model[2].bias]).detach()
    torch.testing.assert_close(flat_parameters(model), expected)


def test_autograd_gradients_at_theta_equal_per_sample_autograd_and_leave_the_model_alone():
    model = _mlp_with_a_frozen_layer()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    family = AutogradModel(model, feature_bounds=(-1.0, 1.0))
    theta = flat_parameters(model) + 0.1
    x, y = torch.rand(5, 3) * 2 - 1, torch.tensor([0, 1, 1, 0, 1])
    got = family.gradients(theta, x, y)

    reference = _mlp_with_a_frozen_layer()
    trainable = [p for p in reference.parameters() if p.requires_grad]
    torch.nn.utils.vector_to_parameters(theta, trainable)
    expected = []
    for i in range(len(x)):
        loss = nn.functional.cross_entropy(reference(x[i : i + 1]), y[i : i + 1])
        expected.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, trainable)]))
    torch.testing.assert_close(got, torch.stack(expected))
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name])
