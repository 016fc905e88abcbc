"""The latent model ablations of Figure 5a: each variant's defining property and its ELBO."""

import dataclasses
import math

import pytest
import torch

from slac.agent import SLACAgent
from slac.config import FIXED, MODELS, Config
from slac.model import VARIANTS, build, gaussian_kl
from slac.viz import predictions

A, F, T, B = 2, 32, 5, 3


def model(small_cfg: Config, name: str):
    return build(dataclasses.replace(small_cfg, model=name, feature_dim=F, conv_width=4), A)


def inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    first = torch.zeros(B, T, dtype=torch.bool)
    first[:, 0] = True
    return torch.randn(B, T, F, generator=g), torch.rand(B, T - 1, A, generator=g) * 2 - 1, first


def test_every_model_the_cli_offers_is_built():
    assert set(MODELS) == set(VARIANTS) | {"planet"}
    assert "model" in FIXED  # resuming with another model is refused even with --override


@pytest.mark.parametrize("name", MODELS)
def test_each_model_filters_trains_and_draws(small_cfg, name):
    m = model(small_cfg, name)
    feats, actions, first = inputs()
    post = m.filter(feats, actions, first)
    assert post.z.shape == (B, T, m.latent_dim)
    frames = torch.randint(0, 256, (B, T, 64, 64, 3), dtype=torch.uint8)
    loss, stats = m.loss(frames, actions, torch.randn(B, T - 1), first, post)
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(v) for v in stats.values())
    grads = {n: p.grad for n, p in m.named_parameters() if not n.startswith("encoder.")}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())  # all used
    rows = predictions(m, frames[0].numpy(), actions[0].numpy())
    assert rows.shape == (4, T, 64, 64, 3)


def test_single_latent_models_have_one_latent_of_z2_dim_units(small_cfg):
    for name in ("vae", "filtering"):
        m = model(small_cfg, name)
        post = m.filter(*inputs())
        assert post.z2.shape[-1] == 0 and post.z1.shape[-1] == small_cfg.z2_dim
        assert m.latent_dim == small_cfg.z2_dim
    assert model(small_cfg, "slac").latent_dim == small_cfg.z1_dim + small_cfg.z2_dim


def changed_before(t: int):
    feats, actions, first = inputs()
    feats2, actions2 = feats.clone(), actions.clone()
    feats2[:, :t] += 1.0
    actions2[:, : t - 1] *= -1
    return (feats, actions, first), (feats2, actions2, first)


@pytest.mark.parametrize("name", ["vae", "factored-vae"])
def test_non_sequential_latents_ignore_earlier_frames_and_actions(small_cfg, name):
    m = model(small_cfg, name)
    noise = m.noise(B, T)
    a, b = changed_before(3)
    za, zb = m.filter(*a, noise=noise).z, m.filter(*b, noise=noise).z
    torch.testing.assert_close(za[:, 3:], zb[:, 3:], rtol=0, atol=0)
    assert not torch.allclose(za[:, :3], zb[:, :3])
    # and the prior is N(0, I) at every step
    post = m.filter(*a)
    assert torch.all(post.p_mean == 0) and torch.all(post.p_std == 1)


@pytest.mark.parametrize("name", ["slac", "filtering", "partially-stochastic", "deterministic",
                                  "planet"])
def test_sequential_latents_depend_on_earlier_frames(small_cfg, name):
    m = model(small_cfg, name)
    noise = m.noise(B, T)
    a, b = changed_before(3)
    za, zb = m.filter(*a, noise=noise).z, m.filter(*b, noise=noise).z
    assert not torch.allclose(za[:, 3:], zb[:, 3:])


def test_deterministic_model_gives_the_same_latents_for_any_noise(small_cfg):
    m = model(small_cfg, "deterministic")
    x = inputs()
    z1 = m.filter(*x, noise=m.noise(B, T)).z
    z2 = m.filter(*x, noise=m.noise(B, T)).z
    torch.testing.assert_close(z1, z2, rtol=0, atol=0)
    s = model(small_cfg, "slac")
    za, zb = (s.filter(*x, noise=s.noise(B, T)).z for _ in range(2))
    assert not torch.allclose(za, zb)  # while SLAC's do differ


def test_partially_stochastic_model_has_a_deterministic_z2_path(small_cfg):
    m = model(small_cfg, "partially-stochastic")
    x = inputs()
    e1, e2 = m.noise(B, T)
    a = m.filter(*x, noise=(e1, e2))
    b = m.filter(*x, noise=(e1, torch.randn_like(e2)))
    torch.testing.assert_close(a.z, b.z, rtol=0, atol=0)  # z2 takes no noise
    c = m.filter(*x, noise=(torch.randn_like(e1), e2))
    assert not torch.allclose(a.z1, c.z1) and not torch.allclose(a.z2[:, 1:], c.z2[:, 1:])


def loss_terms(m, post, actions, first):
    frames = torch.randint(0, 256, (B, T, 64, 64, 3), dtype=torch.uint8)
    return m.loss(frames, actions, torch.zeros(B, T - 1), first, post)[1]


def test_vae_kl_is_against_the_standard_normal_at_every_step(small_cfg):
    m = model(small_cfg, "vae")
    feats, actions, first = inputs()
    post = m.filter(feats, actions, first)
    mean, std = m.z1_posterior_init(feats)
    # closed form of KL(N(mu, s^2) || N(0, 1)) per unit: (s^2 + mu^2 - 1)/2 - log s
    kl = ((std**2 + mean**2 - 1) / 2 - std.log()).sum(-1).sum(1).mean()
    torch.testing.assert_close(loss_terms(m, post, actions, first)["kl"], kl.detach())


def test_slac_kl_is_analytic_between_posterior_and_prior(small_cfg):
    m = model(small_cfg, "slac")
    feats, actions, first = inputs()
    post = m.filter(feats, actions, first)
    kl = gaussian_kl(post.q_mean, post.q_std, post.p_mean, post.p_std).sum(1).mean()
    torch.testing.assert_close(loss_terms(m, post, actions, first)["kl"], kl.detach())


def test_deterministic_model_trains_its_prior_to_predict_the_posterior_latent(small_cfg):
    m = model(small_cfg, "deterministic")
    feats, actions, first = inputs()
    first[1, 2] = True  # an episode start inside a sequence: the fixed prior there is skipped
    post = m.filter(feats, actions, first)
    assert torch.all(post.q_std == 0) and torch.all(post.p_std == 1)
    # -log N(z1; mu_p, 1) = (z1 - mu_p)^2 / 2 + log(2 pi) / 2 per unit, none at episode starts
    nll = ((post.z1 - post.p_mean) ** 2 / 2 + math.log(2 * math.pi) / 2).sum(-1)
    expected = (nll * ~first).sum(1).mean()
    torch.testing.assert_close(loss_terms(m, post, actions, first)["kl"], expected.detach())


def test_agent_critics_take_the_models_latent(small_cfg):
    for name in ("vae", "factored-vae"):
        agent = SLACAgent(dataclasses.replace(small_cfg, model=name), A, torch.device("cpu"))
        q = agent.critic.q1[0]
        assert q.in_features == agent.model.latent_dim + A


def test_planet_has_a_gru_state_of_200_and_a_stochastic_state_of_30(small_cfg):
    """PlaNet's RSSM: h_t = GRU(h_t-1, [s_t-1, a_t-1]) is deterministic and reads the sample
    of the step before, s_t ~ q(s_t | h_t, x_t) reads this step's draw."""
    m = model(small_cfg, "planet")
    assert isinstance(m.cell, torch.nn.GRUCell) and (m.z1_dim, m.z2_dim) == (30, 200)
    x = inputs()
    e1, e2 = m.noise(B, T)
    a = m.filter(*x, noise=(e1, e2))
    e1b = e1.clone()
    e1b[:, -1] += 1.0  # only the last step's draw
    b = m.filter(*x, noise=(e1b, e2))
    torch.testing.assert_close(a.z2, b.z2, rtol=0, atol=0)  # h_T reads s_T-1, not s_T
    torch.testing.assert_close(a.z1[:, :-1], b.z1[:, :-1], rtol=0, atol=0)
    assert not torch.allclose(a.z1[:, -1], b.z1[:, -1])
    assert torch.all(a.q_std > 0.1) and torch.all(a.p_std > 0.1)  # PlaNet's minimum std


def test_planet_kl_counts_only_above_its_free_nats(small_cfg):
    m = model(small_cfg, "planet")
    feats, actions, first = inputs()
    post = m.filter(feats, actions, first)
    kl = gaussian_kl(post.q_mean, post.q_std, post.p_mean, post.p_std)
    expected = kl.clamp(min=3.0).sum(1).mean()
    torch.testing.assert_close(loss_terms(m, post, actions, first)["kl"], expected.detach())
    assert (kl < 3.0).any()  # the clamp takes effect on this untrained model


def test_counting_active_units_draws_nothing(small_cfg):
    """Training logs active units between updates; that must not move torch's generator."""
    for name in ("slac", "planet"):
        m = model(small_cfg, name)
        frames = torch.randint(0, 256, (6, 64, 64, 3), dtype=torch.uint8)
        before = torch.get_rng_state()
        m.active_z1(frames)
        assert torch.equal(torch.get_rng_state(), before), name
