"""Closed forms checked against torch.distributions."""

import math

import torch
from torch import distributions as D

from slac.model import LatentModel, active_units, gaussian_kl, gaussian_nll, image_nll
from slac.networks import Actor, tanh_gaussian_log_prob


def test_analytic_kl_matches_torch():
    mq, mp = torch.randn(5, 7), torch.randn(5, 7)
    sq, sp = torch.rand(5, 7) + 0.1, torch.rand(5, 7) + 0.1
    want = D.kl_divergence(D.Normal(mq, sq), D.Normal(mp, sp)).sum(-1)
    torch.testing.assert_close(gaussian_kl(mq, sq, mp, sp), want)


def test_kl_of_identical_gaussians_is_zero():
    m, s = torch.randn(3, 4), torch.rand(3, 4) + 0.5
    torch.testing.assert_close(gaussian_kl(m, s, m, s), torch.zeros(3))


def test_gaussian_nll_matches_torch():
    x, m = torch.rand(4, 3, 8, 8), torch.rand(4, 3, 8, 8)
    want = -D.Normal(m, math.sqrt(0.1)).log_prob(x)
    torch.testing.assert_close(gaussian_nll(x, m, 0.1), want)


def test_image_nll_is_the_gaussian_summed_per_image_with_its_gradient():
    x = torch.rand(2, 5, 3, 16, 16)
    m1 = torch.rand(2, 5, 3, 16, 16, requires_grad=True)
    m2 = m1.detach().clone().requires_grad_(True)
    want = -D.Normal(m1, math.sqrt(0.04)).log_prob(x).sum((-3, -2, -1))
    got = image_nll(x, m2, 0.04)
    assert got.shape == (2, 5)
    torch.testing.assert_close(got, want)
    (want * torch.arange(10.0).view(2, 5)).sum().backward()
    (got * torch.arange(10.0).view(2, 5)).sum().backward()
    torch.testing.assert_close(m2.grad, m1.grad)


def test_tanh_gaussian_log_prob_matches_change_of_variables():
    mean = torch.randn(6, 3, dtype=torch.float64)
    std = torch.rand(6, 3, dtype=torch.float64) + 0.2
    u = (mean + std * torch.randn(6, 3, dtype=torch.float64)).clamp(-4, 4)
    dist = D.TransformedDistribution(D.Normal(mean, std), [D.TanhTransform(cache_size=1)])
    a = dist.transforms[0](u)  # cached, so log_prob sees the exact pre-image u
    torch.testing.assert_close(tanh_gaussian_log_prob(u, mean, std), dist.log_prob(a).sum(-1))


def test_tanh_gaussian_log_prob_is_finite_when_saturated():
    u = torch.tensor([[30.0, -30.0]])
    logp = tanh_gaussian_log_prob(u, torch.zeros(1, 2), torch.ones(1, 2))
    assert torch.isfinite(logp).all()


def test_actor_samples_in_bounds_with_matching_log_prob():
    """a = tanh(mean + std * eps) for the generator's eps, and its log-probability is the
    tanh-transformed Gaussian's; the DMC policy scale 2 doubles the std of the same actor."""
    torch.manual_seed(0)
    actor = Actor(3 * 16 + 2 * 2, action_dim=2, hidden=32, std_scale=2.0)
    unscaled = Actor(3 * 16 + 2 * 2, action_dim=2, hidden=32, std_scale=1.0)
    unscaled.load_state_dict(actor.state_dict())
    f, a = torch.randn(10, 3, 16), torch.rand(10, 2, 2) * 2 - 1
    action, logp = actor.sample(f, a, generator=torch.Generator().manual_seed(5))
    assert action.shape == (10, 2) and logp.shape == (10,)
    assert action.abs().max() <= 1
    mean, std = actor(f, a)
    mean1, std1 = unscaled(f, a)
    torch.testing.assert_close(mean, mean1, rtol=0, atol=0)
    torch.testing.assert_close(std, 2 * std1)
    eps = torch.randn(10, 2, generator=torch.Generator().manual_seed(5))
    u = mean + std * eps
    torch.testing.assert_close(action, torch.tanh(u))
    dist = D.TransformedDistribution(D.Normal(mean, std), [D.TanhTransform(cache_size=1)])
    y = dist.transforms[0](u)  # cached: log_prob sees the exact pre-image u
    torch.testing.assert_close(logp, dist.log_prob(y).sum(-1), rtol=1e-5, atol=1e-4)


def test_active_units_counts_units_whose_mean_varies_more_than_the_threshold():
    # Columns of +-s have variance s^2 * n / (n - 1): 0.04, 0.0025 and 0 for s = 0.2, 0.05, 0.
    signs = torch.tensor([1.0, -1.0] * 8)[:, None]
    means = signs * torch.tensor([0.2, 0.05, 0.0, 0.2]) + torch.tensor([5.0, 0.0, 3.0, -1.0])
    assert active_units(means) == 2
    assert active_units(means, threshold=0.001) == 3


def test_a_posterior_that_ignores_the_image_has_no_active_units():
    torch.manual_seed(0)
    model = LatentModel(action_dim=1, conv_width=4)
    frames = torch.randint(0, 256, (16, 64, 64, 3), dtype=torch.uint8)
    head = model.z1_posterior_init.net[-1]
    with torch.no_grad():
        head.weight.zero_()  # means = bias: the same for every frame
        head.bias.normal_()
    assert model.active_z1(frames) == 0
    with torch.no_grad():  # the first mean unit now follows the first hidden unit (image-driven)
        head.weight[0, 0] = 1e4
    assert model.active_z1(frames) == 1
