"""The agent's update against a plain, readable computation of Eq. (7)-(10).

Same batch, same random draws (pre-drawn in the order the agent draws them), every sequence and
time step handled one at a time with torch.distributions, unchunked functional conv layers. The
losses and every gradient must agree within fp32 tolerance, so speed never changes the algorithm.
"""

import copy
import dataclasses
import math

import pytest
import torch
from test_agent import make_batch
from test_equivalence import plain_decoder, plain_encoder
from torch.distributions import Normal, kl_divergence
from torch.nn import functional as F

from slac.agent import SLACAgent


def filter_one(model, f, a, first, e1, e2):
    """Filtering posterior of one sequence: latents z_t and KL_t (Eq. 7), one step at a time."""
    zs, kls, z2 = [], [], None
    for t in range(f.shape[0]):
        restart = t == 0 or bool(first[t])
        if restart:
            q = Normal(*model.z1_posterior_init(f[t]))
            p = Normal(torch.zeros(model.z1_dim), torch.ones(model.z1_dim))
        else:
            q = Normal(*model.z1_posterior(f[t], z2, a[t - 1]))
            p = Normal(*model.z1_prior(z2, a[t - 1]))
        z1 = q.mean + q.stddev * e1[t]
        p2 = Normal(*(model.z2_prior_init(z1) if restart else model.z2_prior(z1, z2, a[t - 1])))
        z2 = p2.mean + p2.stddev * e2[t]
        zs.append(torch.cat([z1, z2]))
        kls.append(kl_divergence(q, p).sum())
    return torch.stack(zs), torch.stack(kls)


def tanh_normal(actor, inputs, eps):
    mean, std = actor(*inputs)
    u = mean[0] + std[0] * eps
    # log|d tanh(u)/du| in float64: 1 - tanh(u)^2 loses its digits in fp32 when |u| is large
    log_det = torch.log(1 - torch.tanh(u.double()) ** 2).float()
    logp = Normal(mean[0], std[0]).log_prob(u).sum() - log_det.sum()
    return torch.tanh(u), logp


A = 2  # action dimensions: every per-dimension sum and the target entropy -|A| must be right


def batch_with_masks_and_terminals(cfg):
    """The first batch (over seeds) whose both parts cross an episode start, one of whose
    actor histories ends at an episode's first frame, and whose actor-critic part ends some
    sequences in a terminal transition."""
    mb = cfg.model_batch_size
    for seed in range(1000):
        b = make_batch(cfg, action_dim=A, seed=seed, terminal=True)
        if (b.first[:mb, 1:].any() and b.first[mb:, 1:].any() and b.first[:, -2].any()
                and b.terminals[:, -1].any()):
            return b
    raise AssertionError("no such batch")


def assert_adam_step(before, after, grads, lr, eps=1e-8):
    """The parameters moved by a first Adam step from ``grads``: -lr g / (|g| + eps) per
    element. Where |g| is near eps the step is as sensitive as g's last bits, so elements
    there are only held to the step's bound, lr."""
    for p0, p1, g in zip(before, after, grads, strict=True):
        step, want = (p1 - p0).detach(), -lr * g / (g.abs() + eps)
        big = g.abs() > 1e4 * eps
        torch.testing.assert_close(step[big], want[big], rtol=1e-3, atol=lr * 1e-4)
        assert step.abs().max() <= lr * 1.001


@pytest.fixture
def one_thread():
    """The same thread count whatever ran before, so rounding is the same in every run."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("critic_input,actor_input", [
    ("latent", "history"), ("history", "history"), ("latent", "latent"), ("history", "latent")])
def test_update_matches_plain_equations(small_cfg, one_thread, critic_input, actor_input):
    """The paper's inputs (critics on latents, actor on histories) and Figure 5b's others."""
    cfg = dataclasses.replace(small_cfg, batch_size=8, model_batch_size=4,
                              critic_input=critic_input, actor_input=actor_input)
    torch.manual_seed(0)
    agent = SLACAgent(cfg, A, torch.device("cpu"))
    ref = copy.deepcopy(agent)
    b = batch_with_masks_and_terminals(cfg)
    B, T, mb = cfg.batch_size, cfg.sequence_length + 1, cfg.model_batch_size
    gm, ga = (torch.Generator().set_state(g.get_state()) for g in agent.generators())
    stats = agent.update(b)

    # the agent's draws, in its order: the model stream's, then the actor-critic stream's
    e_head = [torch.randn(mb, T, z, generator=gm) for z in (cfg.z1_dim, cfg.z2_dim)]
    e_tail = [torch.randn(B - mb, T, z, generator=ga) for z in (cfg.z1_dim, cfg.z2_dim)]
    eps_target, eps_actor = torch.randn(B, A, generator=ga), torch.randn(B, A, generator=ga)
    e1, e2 = (torch.cat([h, t]) for h, t in zip(e_head, e_tail, strict=True))

    model = ref.model
    feats = plain_encoder(model.encoder, b.frames)
    start = [max(t for t in range(T) if t == 0 or b.first[i, t]) for i in range(B)]

    # Eq. (7) with the reward model, on the first mb sequences
    loss_m, sums = 0.0, {"image_nll": 0.0, "kl": 0.0, "reward_nll": 0.0}
    latents = []
    for i in range(B):
        z, kl = filter_one(model, feats[i], b.actions[i], b.first[i], e1[i], e2[i])
        latents.append(z)
        if i >= mb:
            continue
        x = b.frames[i].permute(0, 3, 1, 2).float() / 255
        mean = plain_decoder(model.decoder, z)
        for t in range(T):  # every frame, the older episode's too (released code)
            nll = -Normal(mean[t], math.sqrt(cfg.decoder_var)).log_prob(x[t]).sum()
            sums["image_nll"] += nll / mb
            sums["kl"] += kl[t] / mb
            if t < T - 1 and not b.first[i, t + 1]:  # no reward across an episode start
                r = Normal(*model.reward(z[t], b.actions[i, t], z[t + 1]))
                sums["reward_nll"] += -r.log_prob(b.rewards[i, t : t + 1]).sum() / mb
    loss_m = sums["image_nll"] + sums["kl"] + sums["reward_nll"]
    for k, v in sums.items():
        torch.testing.assert_close(stats[k], v.detach(), rtol=1e-4, atol=1e-3)
    g_model = torch.autograd.grad(loss_m, list(model.parameters()))
    for (name, p), g in zip(agent.model.named_parameters(), g_model, strict=True):
        # Held as a whole tensor: the fast kernels round differently, and where a LeakyReLU's
        # input is near 0 that can flip its slope for an element, moving a few gradient
        # elements by one term's size; a wrong mask or loss term moves the whole tensor.
        err = float((p.grad - g).norm() / g.norm().clamp_min(1e-12))
        assert err < 1e-3, (name, err)
    # the model's Adam step from that gradient (the agent's own: held close to g_model above,
    # while a step's sign follows each element's)
    assert_adam_step(model.parameters(), agent.model.parameters(),
                     [p.grad for p in agent.model.parameters()], cfg.model_lr)

    # Eq. (8)-(9): critics on latents of the pre-update model, at the last transition
    z_all = torch.stack(latents).detach()
    f_all = feats.detach()

    def history(i, last=T - 1):  # the L frames ending at ``last`` and their L-1 actions;
        # frames before the newest episode start -> its first frame; their actions -> 0
        steps = range(last - (T - 2), last + 1)
        f = torch.stack([f_all[i, max(t, start[i])] for t in steps])
        a = torch.stack([b.actions[i, t] * (t >= start[i]) for t in steps[:-1]])
        return f, a

    def state(kind, i, step):  # what the critics or the actor see at ``step``, batch of 1
        if kind == "latent":
            return (z_all[i, step][None],)
        f, a = history(i, last=step)
        return f[None], a[None]

    alpha = ref.log_alpha.exp().detach()
    q_losses = []
    for i in range(B):
        with torch.no_grad():
            a_next, logp_next = tanh_normal(ref.actor, state(actor_input, i, T - 1),
                                            eps_target[i])
            q_next = ref.critic_target(*state(critic_input, i, T - 1), a_next[None])
            v = torch.min(*q_next) - alpha * logp_next
            y = b.rewards[i, -1] + cfg.gamma * (1 - b.terminals[i, -1]) * v
        q1, q2 = ref.critic(*state(critic_input, i, T - 2), b.actions[i, -1][None])
        q_losses.append(0.5 * ((q1 - y) ** 2 + (q2 - y) ** 2))
    critic_loss = torch.stack(q_losses).mean()
    torch.testing.assert_close(stats["critic_loss"], critic_loss.detach(), rtol=1e-4, atol=1e-5)
    g_critic = torch.autograd.grad(critic_loss, list(ref.critic.parameters()))
    for p, g in zip(agent.critic.parameters(), g_critic, strict=True):
        torch.testing.assert_close(p.grad, g, rtol=1e-3, atol=1e-6)

    # Eq. (10) and the temperature on the history at z_T-1 (it may be an episode's first step),
    # with the critics from before their step: the released code computes every loss first
    critic_before = copy.deepcopy(ref.critic)
    actor_terms, logps = [], []
    for i in range(B):
        a, logp = tanh_normal(ref.actor, state(actor_input, i, T - 2), eps_actor[i])
        q = torch.min(*critic_before(*state(critic_input, i, T - 2), a[None]))
        actor_terms.append(alpha * logp - q)
        logps.append(logp)
    assert_adam_step(ref.critic.parameters(), agent.critic.parameters(), g_critic, cfg.critic_lr)
    with torch.no_grad():
        for p, q in zip(ref.critic.parameters(), agent.critic.parameters(), strict=True):
            p.copy_(q)
    # the target critics: theta' <- (1 - tau) theta' + tau theta, after the critics' step
    for p_t, p_old, p_new in zip(agent.critic_target.parameters(),
                                 ref.critic_target.parameters(), ref.critic.parameters(),
                                 strict=True):
        torch.testing.assert_close(p_t, (1 - cfg.tau) * p_old + cfg.tau * p_new.detach(),
                                   rtol=1e-5, atol=1e-7)
    assert not all(torch.equal(p, q) for p, q in
                   zip(critic_before.parameters(), ref.critic.parameters(), strict=True))
    actor_loss = torch.stack(actor_terms).mean()
    torch.testing.assert_close(stats["actor_loss"], actor_loss.detach(), rtol=1e-4, atol=1e-5)
    g_actor = torch.autograd.grad(actor_loss, list(ref.actor.parameters()))
    for p, g in zip(agent.actor.parameters(), g_actor, strict=True):
        torch.testing.assert_close(p.grad, g, rtol=1e-3, atol=1e-6)
    assert_adam_step(ref.actor.parameters(), agent.actor.parameters(), g_actor, cfg.actor_lr)
    alpha_loss = -(ref.log_alpha * (torch.stack(logps).detach() - A)).mean()  # target -|A|
    g_alpha = torch.autograd.grad(alpha_loss, ref.log_alpha)[0]
    torch.testing.assert_close(agent.log_alpha.grad, g_alpha)
    assert_adam_step([ref.log_alpha], [agent.log_alpha], [g_alpha], cfg.alpha_lr)
    assert F.mse_loss(stats["entropy"], -torch.stack(logps).mean().detach()) < 1e-8
