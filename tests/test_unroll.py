"""slac.unroll: MLP steps of a loop by hand, their weight gradients one sum over the steps."""

import dataclasses

import pytest
import torch

from slac import networks
from slac.model import VARIANTS, build

T = 6


def recurrence(g: networks.Gaussian, x: torch.Tensor, unrolled: bool):
    """T steps of g, each fed x[:, t] and its previous output's sample, and their loss: one
    step's std unused, the last step's outputs wholly unused (backward must take both)."""
    step = g.unrolled() if unrolled else g
    h = torch.zeros(x.shape[0], g.net[-1].out_features // (1 if g.std is not None else 2))
    outs, loss = [], 0
    for t in range(T):
        mean, std = step(x[:, t], h)
        h = mean if t == 1 else mean + std * 0.5
        outs += [mean, std]
        if t < T - 1:  # large weights on the std make Appendix B's gradient clip bite
            loss = loss + mean.sum() * (t + 1) + (std.sum() * 50 * (t + 1) if t != 1 else 0)
    return outs, loss


@pytest.mark.parametrize("std", [None, 0.0, 1.0])
def test_unrolled_gaussian_steps_are_autograds_within_rounding(std):
    torch.manual_seed(0)
    g = networks.Gaussian(5 + 3, 3, 16, std)
    x = torch.randn(4, T, 5, requires_grad=True)
    runs = []
    for unrolled in (False, True):
        outs, loss = recurrence(g, x, unrolled)
        runs.append((outs, torch.autograd.grad(loss, [x, *g.parameters()])))
    (out_a, grad_a), (out_b, grad_b) = runs
    assert all(torch.equal(a, b) for a, b in zip(out_a, out_b, strict=True))  # same values
    for a, b in zip(grad_a, grad_b, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
    assert grad_a[0][:, T - 1].abs().max() == 0 and grad_a[0][:, 0].abs().min() > 0


def test_clipped_std_gradient_matches_the_hook():
    """The std's pre-softplus gradient is clipped to [-10, 10] by hand as by autograd's hook:
    the weights' gradients differ from the unclipped ones, the same in both."""
    torch.manual_seed(1)
    g = networks.Gaussian(4, 2, 8)
    x = torch.randn(3, 1, 4)
    grads = []
    for unrolled in (False, True):
        step = g.unrolled() if unrolled else g
        _, std = step(x[:, 0])
        grads.append(torch.autograd.grad(std.sum() * 1e3, g.net[-1].bias)[0])
    torch.testing.assert_close(grads[1], grads[0])
    assert torch.equal(grads[0][2:], torch.full((2,), 3 * 10.0))  # 3 rows, each clipped at 10


def test_without_gradients_the_stock_layer_runs():
    g = networks.Gaussian(4, 2, 8)
    with torch.no_grad():
        assert g.unrolled() is g
    assert g.unrolled() is not g


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_filter_with_unrolled_steps_is_the_stock_one(small_cfg, name, monkeypatch):
    """Every variant's posterior and Eq. (7) bit for bit, its gradients within rounding, with
    episode restarts inside the sequences."""
    torch.manual_seed(2)
    cfg = dataclasses.replace(small_cfg, model=name, feature_dim=32, conv_width=4)
    m = build(cfg, 2)
    B, L = 3, 7
    feats = torch.randn(B, L, 32, requires_grad=True)
    actions = torch.rand(B, L - 1, 2) * 2 - 1
    first = torch.zeros(B, L, dtype=torch.bool)
    first[:, 0] = first[1, 3] = first[2, 6] = True
    frames = torch.randint(0, 256, (B, L, 64, 64, 3), dtype=torch.uint8)
    rewards = torch.randn(B, L - 1)
    noise = m.noise(B, L)
    runs = []
    for unroll in (False, True):
        monkeypatch.setattr(networks, "UNROLL", unroll)
        post = m.filter(feats, actions, first, noise=noise)
        loss, _ = m.loss(frames, actions, rewards, first, post)
        grads = torch.autograd.grad(loss, [feats, *m.parameters()], allow_unused=True)
        runs.append(([post.z, post.q_mean, post.q_std, post.p_mean, post.p_std, loss], grads))
    (out_a, grad_a), (out_b, grad_b) = runs
    assert all(torch.equal(a, b) for a, b in zip(out_a, out_b, strict=True))
    for a, b in zip(grad_a, grad_b, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(b, a, rtol=2e-5, atol=1e-6)
