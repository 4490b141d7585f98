import torch
from torch import nn

from lightning_aca.gradients import clip_factor, per_sample_gradients, per_sample_norms


def test_per_sample_gradients_are_each_examples_own_autograd_gradient():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    x, y = torch.randn(5, 3), torch.tensor([0, 1, 1, 0, 1])
    grads, losses = per_sample_gradients(net, dict(net.named_parameters()), {}, x, y)
    for i in range(5):
        loss = nn.functional.cross_entropy(net(x[i : i + 1]), y[i : i + 1])
        expected = torch.autograd.grad(loss, list(net.parameters()))
        torch.testing.assert_close(losses[i], loss.detach())
        for got, want in zip(grads.values(), expected, strict=True):
            torch.testing.assert_close(got[i], want)
    clipped = clip_factor(per_sample_norms(grads), 0.1)[:, None] * torch.cat([g.flatten(1) for g in grads.values()], 1)
    assert clipped.norm(dim=1).max() <= 0.1
