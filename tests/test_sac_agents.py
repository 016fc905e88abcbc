"""The SAC baselines: --agent sac-pixels (SAC on encoded frames, the encoder trained by the
critic loss alone) and --agent sac-state (SAC on state vectors); no latent model."""

import copy
import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_augment import batch

from slac.agent import actor_history, make_agent
from slac.config import Config, ConfigError
from slac.replay import Batch
from slac.sac_agents import SACAgent


@pytest.fixture
def cfg(small_cfg) -> Config:
    return dataclasses.replace(small_cfg, agent="sac-pixels", sequence_length=4, conv_width=4,
                               feature_dim=32).resolved()


def test_no_model_no_pretraining_and_frames_only(cfg):
    agent = make_agent(cfg, 1, torch.device("cpu"))
    assert isinstance(agent, SACAgent) and agent.model is None
    assert cfg.pretrain_updates == 0
    assert agent.actor.net[0].in_features == 4 * 32  # 4 encoded frames, no actions
    assert agent.critic.q1[0].in_features == 4 * 32 + 1
    with pytest.raises(ConfigError, match="belong to --agent slac"):
        dataclasses.replace(cfg, model="vae").resolved()


def test_the_critic_loss_alone_trains_the_encoder(cfg):
    """After an update the encoder's gradient is Eq. (8)'s alone (the actor's loss reads the
    features detached), and the critics' too."""
    agent = SACAgent(cfg, 1, torch.device("cpu"))
    twin = copy.deepcopy(agent)
    b = batch(steps=4)
    agent.update(b)
    feats, _ = actor_history(twin.encoder(b.frames), b.actions, b.first, b.valid)
    now, after = feats[:, :-1], feats[:, 1:].detach()
    target = twin.sac.td_target((after,), (after,), b.rewards[:, -1], b.terminals[:, -1])
    q1, q2 = twin.critic(now, b.actions[:, -1])
    loss = 0.5 * (F.mse_loss(q1, target) + F.mse_loss(q2, target))
    nets = [*twin.encoder.parameters(), *twin.critic.parameters()]
    want = torch.autograd.grad(loss, nets)
    got = [p.grad for p in (*agent.encoder.parameters(), *agent.critic.parameters())]
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-6, atol=1e-8)
    assert any(w.abs().sum() > 0 for w in want[:2])  # the encoder does learn from it


def test_state_sac_learns_on_state_vectors_without_an_encoder(small_cfg):
    cfg = dataclasses.replace(small_cfg, agent="sac-state", sequence_length=1).resolved()
    agent = make_agent(cfg, 2, torch.device("cpu"), state_dim=5)
    assert agent.model is None and not list(agent.encoder.parameters())
    assert agent.actor.net[0].in_features == 5 and agent.critic.q1[0].in_features == 5 + 2
    g = torch.Generator().manual_seed(0)
    first = torch.zeros(6, 2, dtype=torch.bool)
    first[:, 0] = True
    b = Batch(frames=torch.randn(6, 2, 5, generator=g), actions=torch.rand(6, 1, 2) * 2 - 1,
              rewards=torch.rand(6, 1), terminals=torch.zeros(6, 1), first=first,
              valid=torch.ones(6, 2, dtype=torch.bool))
    before = [p.clone() for p in agent.parameters()]
    stats = agent.update(b)
    assert torch.isfinite(stats["critic_loss"]) and stats["critic_loss"] > 0
    assert sum(not torch.equal(p, q) for p, q in zip(before, agent.parameters(),
                                                     strict=True)) > 0
    a = agent.act(np.zeros((1, 5), np.float32), np.zeros((0, 2), np.float32))
    assert a.shape == (2,) and np.all(np.abs(a) <= 1)
    with pytest.raises(ConfigError, match="sees no frames"):
        dataclasses.replace(cfg, random_crop=True).resolved()
    with pytest.raises(ConfigError, match="has no latent model"):
        dataclasses.replace(cfg, video=True).resolved()
