"""Gradient isolation, the one-batch schedule, and the actor's history at episode starts."""

import copy
import dataclasses
import threading
import time

import numpy as np
import pytest
import torch

from slac.agent import PolicyHistory, SLACAgent, actor_history
from slac.replay import Replay


def make_batch(cfg, action_dim=1, seed=0):
    rng = np.random.default_rng(seed)
    r = Replay(200, action_dim, seed=seed)
    for length in (7, 12, 9, 30):
        r.start_episode(rng.integers(0, 256, (3, 64, 64), dtype=np.uint8))
        for _ in range(length):
            r.add(rng.uniform(-1, 1, action_dim).astype(np.float32), float(rng.normal()),
                  rng.integers(0, 256, (3, 64, 64), dtype=np.uint8), False)
    return r.sample(cfg.batch_size, cfg.sequence_length)


def params(module):
    return [p.detach().clone() for p in module.parameters()]


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_actor_critic_step_leaves_model_unchanged(small_cfg):
    agent = SLACAgent(small_cfg, 1, torch.device("cpu"))
    b = make_batch(small_cfg)
    with torch.no_grad():
        feats = agent.model.encoder(b.frames)
        z = agent.model.filter(feats, b.actions, b.first).z
    model_before, actor_before = params(agent.model), params(agent.actor)
    critic_before = params(agent.critic)
    agent.update_actor_critic(feats, z, b)
    assert same(model_before, params(agent.model)), "actor/critic losses changed the model"
    assert not same(actor_before, params(agent.actor))
    assert not same(critic_before, params(agent.critic))


def test_actor_loss_gradient_does_not_reach_encoder_or_critic(small_cfg):
    agent = SLACAgent(small_cfg, 1, torch.device("cpu"))
    b = make_batch(small_cfg)
    feats = agent.model.encoder(b.frames)  # with a graph: isolation must come from the agent
    z = agent.model.filter(feats, b.actions, b.first).z
    agent.model.zero_grad(set_to_none=True)
    agent.update_actor_critic(feats.detach(), z.detach(), b)
    assert all(p.grad is None for p in agent.model.parameters())


def test_full_update_uses_parameters_from_before_the_update(small_cfg):
    """Features and latents of all B sequences come from the pre-update model (released code)."""
    agent = SLACAgent(small_cfg, 1, torch.device("cpu"))
    before = copy.deepcopy(agent)
    b = make_batch(small_cfg)
    seen = {}
    original = agent.update_actor_critic

    def spy(features, z, batch):
        seen["features"], seen["z"] = features.clone(), z.clone()
        return original(features, z, batch)

    agent.update_actor_critic = spy
    g_model, g_ac = (torch.Generator().set_state(g.get_state()) for g in agent.generators())
    stats = agent.update(b)
    assert set(stats) >= {"model_loss", "critic_loss", "actor_loss", "alpha", "entropy"}
    assert not same(params(before.model), params(agent.model))

    mb = small_cfg.model_batch_size
    with torch.no_grad():  # the same random draws: the model stream's and the actor-critic's
        f_head = before.model.encoder(b.frames[:mb])
        z_head = before.model.filter(f_head, b.actions[:mb], b.first[:mb], g_model).z
        f_tail = before.model.encoder(b.frames[mb:])
        z_tail = before.model.filter(f_tail, b.actions[mb:], b.first[mb:], g_ac).z
    torch.testing.assert_close(seen["features"], torch.cat([f_head, f_tail]))
    torch.testing.assert_close(seen["z"], torch.cat([z_head, z_tail]))
    assert seen["features"].shape[0] == small_cfg.batch_size


def test_model_update_changes_only_the_model(small_cfg):
    agent = SLACAgent(small_cfg, 1, torch.device("cpu"))
    b = make_batch(small_cfg)
    actor_before, critic_before = params(agent.actor), params(agent.critic)
    model_before = params(agent.model)
    agent.update_model(b)
    assert same(actor_before, params(agent.actor)) and same(critic_before, params(agent.critic))
    assert not same(model_before, params(agent.model))


def test_actor_history_masks_before_the_episode_start():
    feats = torch.arange(5, dtype=torch.float32).view(1, 5, 1).repeat(1, 1, 3)
    actions = torch.ones(1, 4, 2)
    first = torch.tensor([[True, False, True, False, False]])
    valid = torch.tensor([[False, False, True, True, True]])
    f, a = actor_history(feats, actions, first, valid)
    assert f[0, :, 0].tolist() == [2, 2, 2, 3, 4]  # earlier frames become the first frame
    assert a[0, :, 0].tolist() == [0, 0, 1, 1]  # earlier actions become zero


def test_policy_history_at_reset_matches_training_mask():
    h = PolicyHistory(4, 2)
    x0 = np.full((3, 64, 64), 9, np.uint8)
    h.reset(x0)
    assert h.frames.shape == (4, 64, 64, 3) and np.all(h.frames == 9)
    assert h.actions.shape == (3, 2) and np.all(h.actions == 0)
    h.push(np.ones(2, np.float32), np.full((3, 64, 64), 5, np.uint8))
    assert np.all(h.frames[-1] == 5) and np.all(h.frames[:-1] == 9)
    assert np.all(h.actions[-1] == 1) and np.all(h.actions[:-1] == 0)


def test_td_target_bootstraps_through_truncation_not_termination(small_cfg):
    agent = SLACAgent(small_cfg, 1, torch.device("cpu"))
    B, L = 5, small_cfg.sequence_length
    z = torch.randn(B, small_cfg.z1_dim + small_cfg.z2_dim)
    h = (torch.randn(B, L, small_cfg.feature_dim), torch.rand(B, L - 1, 1))
    r = torch.randn(B)
    terminal = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0])
    g = torch.Generator().set_state(agent.rng_actor_critic.get_state())
    got = agent.td_target(z, h, r, terminal)
    with torch.no_grad():
        a, logp = agent.actor.sample(*h, generator=g)
        q = torch.min(*agent.critic_target(z, a)) - agent.alpha * logp
    want = r + small_cfg.gamma * q
    assert torch.equal(got[terminal == 1], r[terminal == 1])  # terminated: reward alone
    torch.testing.assert_close(got[terminal == 0], want[terminal == 0])  # truncated or not done


def test_glorot_init_matches_its_closed_form_and_targets_copy_it(small_cfg):
    import dataclasses

    agent = SLACAgent(dataclasses.replace(small_cfg, init="glorot"), 1, torch.device("cpu"))
    layers = [m for net in (agent.model, agent.actor, agent.critic) for m in net.modules()
              if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    for m in layers:
        fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(m.weight)
        bound = (6.0 / (fan_in + fan_out)) ** 0.5  # Glorot uniform: U(-bound, bound)
        assert m.weight.abs().max() <= bound and m.weight.abs().max() > 0.9 * bound
        assert torch.count_nonzero(m.bias) == 0
    for p, p_t in zip(agent.critic.parameters(), agent.critic_target.parameters(), strict=True):
        assert torch.equal(p, p_t)
    assert small_cfg.init == "glorot"  # the default, as in the authors' code
    plain = SLACAgent(dataclasses.replace(small_cfg, init="torch"), 1, torch.device("cpu"))
    assert torch.count_nonzero(plain.critic.q1[0].bias) > 0  # torch's defaults are different


def twin_agents(cfg):
    """Two agents in the same state, generators included."""
    agents = [SLACAgent(cfg, 1, torch.device("cpu")) for _ in range(2)]
    agents[1].load_state_dict(copy.deepcopy(agents[0].state_dict()))
    return agents


@pytest.fixture
def restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("slower", ["actor-critic", "model"])
def test_overlapped_update_is_the_sequential_update(small_cfg, monkeypatch, restore_threads,
                                                    slower):
    """--overlap runs the actor-critic stream on a worker thread, the two streams sharing the
    encoding and the filtering of the other sequences piece by piece: the same losses, the same
    parameters afterwards, the same generator states, bit for bit (one thread per stream),
    whichever stream is the slower one and so however the work is shared."""
    torch.set_num_threads(1)
    seq, ovl = twin_agents(small_cfg)
    monkeypatch.setattr(ovl, "encoder_chunks", lambda n, steps: [(i, i + 1) for i in range(n)])
    main = threading.current_thread()
    if slower == "actor-critic":  # its encoding is slow: the model stream takes chunks
        encode = ovl._encode
        monkeypatch.setattr(ovl, "_encode", lambda b: (
            time.sleep(0.2) if threading.current_thread() is not main else None) or encode(b))
    else:  # the model stream starts late: the actor-critic stream encodes everything
        head_posterior = ovl._head_posterior
        monkeypatch.setattr(ovl, "_head_posterior", lambda h: time.sleep(0.5)
                            or head_posterior(h))
    b = make_batch(small_cfg)
    mb = small_cfg.model_batch_size
    for _ in range(2):
        s_seq = seq.update(b)  # 1 thread: the sequential path
        s_ovl = ovl._update_overlapped(b, b.rows(0, mb), b.rows(mb))
    assert s_seq.keys() == s_ovl.keys()
    for k in s_seq:
        assert torch.equal(s_seq[k], s_ovl[k]), k
    for net in ("model", "actor", "critic", "critic_target"):
        assert same(params(getattr(seq, net)), params(getattr(ovl, net))), net
    for g_seq, g_ovl in zip(seq.generators(), ovl.generators(), strict=True):
        assert torch.equal(g_seq.get_state(), g_ovl.get_state())
    # the model stream took encoder chunks and a piece of the filter iff the other was slower
    assert (ovl.model_stream_encoded > 0) == (slower == "actor-critic")
    assert (ovl.model_stream_filtered > 0) == (slower == "actor-critic")
    # and with two threads one of the two-thread schedules is the one taken
    torch.set_num_threads(2)
    called = []
    monkeypatch.setattr(ovl, "_update_overlapped", lambda *a: called.append("overlap") or {})
    monkeypatch.setattr(ovl, "_update_split_model", lambda *a: called.append("split") or {})
    ovl.update(b)
    assert called == ["split"]  # 2 model sequences and 4 others: the model's part dominates


def test_split_model_update_is_the_sequential_update_up_to_rounding(small_cfg, restore_threads):
    """When the model's part dominates, its sequences are split over the two threads: the same
    draws, the model's gradient and every loss equal to the one-thread update's up to fp32
    rounding, and the generators left in the same state."""
    torch.set_num_threads(1)
    seq, split = twin_agents(small_cfg)
    b = make_batch(small_cfg)
    mb = small_cfg.model_batch_size
    s_seq = seq.update(b)
    s_split = split._update_split_model(b, b.rows(0, mb), b.rows(mb))
    assert s_seq.keys() == s_split.keys()
    for k in s_seq:
        torch.testing.assert_close(s_split[k], s_seq[k], rtol=1e-4, atol=1e-4)
    for p_seq, p_split in zip(seq.model.parameters(), split.model.parameters(), strict=True):
        torch.testing.assert_close(p_split.grad, p_seq.grad, rtol=1e-3, atol=1e-5)
    for g_seq, g_split in zip(seq.generators(), split.generators(), strict=True):
        assert torch.equal(g_seq.get_state(), g_split.get_state())


@pytest.mark.parametrize("schedule, broken_part", [
    ("_update_overlapped", "_model_step"),  # the model stream, on the calling thread
    ("_update_overlapped", "_filter_piece"),  # the work both streams share
    ("_update_overlapped", "update_actor_critic"),  # the worker's stream
    ("_update_split_model", "_half_model_grads"),  # both threads
])
def test_two_thread_updates_pass_on_errors_and_leave_no_worker_waiting(small_cfg, schedule,
                                                                      broken_part,
                                                                      restore_threads):
    torch.set_num_threads(2)
    agent = SLACAgent(small_cfg, 1, torch.device("cpu"))
    b = make_batch(small_cfg)

    def broken(*_, **__):
        raise RuntimeError("a stream failed")

    setattr(agent, broken_part, broken)
    mb = small_cfg.model_batch_size
    with pytest.raises(RuntimeError, match="a stream failed"):
        getattr(agent, schedule)(b, b.rows(0, mb), b.rows(mb))
    assert torch.get_num_threads() == 2  # restored
    assert agent._pool is not None and agent._pool.submit(int).result() == 0  # worker is free


def test_model_update_on_two_threads_is_the_one_thread_update(small_cfg, restore_threads):
    """Pretraining with --overlap: the batch's halves on one thread each, gradients summed. The
    same draws and the same gradient as the whole batch on one thread, up to fp32 rounding."""
    cfg = dataclasses.replace(small_cfg, model_batch_size=5)  # unequal halves: 2 and 3
    agents = twin_agents(cfg)
    b = make_batch(cfg).rows(0, 5)
    torch.set_num_threads(1)
    s_one = agents[0].update_model(b)
    torch.set_num_threads(2)
    s_two = agents[1].update_model(b)
    assert agents[1]._pool is not None  # the split path ran
    for k in s_one:
        torch.testing.assert_close(s_two[k], s_one[k], rtol=1e-5, atol=1e-4)
    for p_one, p_two in zip(agents[0].model.parameters(), agents[1].model.parameters(),
                            strict=True):
        torch.testing.assert_close(p_two.grad, p_one.grad, rtol=1e-3, atol=1e-5)
    assert torch.equal(agents[0].rng_model.get_state(), agents[1].rng_model.get_state())


def test_schedule_follows_the_cost_ratio(small_cfg, restore_threads):
    agent = SLACAgent(small_cfg, 1, torch.device("cpu"))
    torch.set_num_threads(2)
    assert agent.schedule(32, 224) == "overlap"  # the paper's batch: two balanced streams
    assert agent.schedule(32, 32) == "split"  # the cpu preset's: the model's part dominates
    assert agent.schedule(32, 0) == "sequential"
    torch.set_num_threads(1)
    assert agent.schedule(32, 224) == "sequential"
    agent.cfg = dataclasses.replace(small_cfg, overlap=False)
    torch.set_num_threads(2)
    assert agent.schedule(32, 224) == "sequential"


def test_encoder_chunks_cover_the_sequences_in_whole_chunks(small_cfg):
    """The pieces the two streams share: every sequence once, in order, in whole encoder chunks
    (8 sequences of 9 frames at the paper's sizes) where the sequence length allows."""
    agent = SLACAgent(small_cfg, 1, torch.device("cpu"))
    chunk = agent.model.encoder.CHUNK
    for n, steps in ((224, 9), (100, 9), (7, 9), (50, 8), (30, 7), (1, 9)):
        pieces = agent.encoder_chunks(n, steps)
        assert [i for lo, hi in pieces for i in range(lo, hi)] == list(range(n))
        for lo, hi in pieces[:-1]:
            frames = (hi - lo) * steps
            assert frames % chunk == 0 or frames <= chunk, (n, steps, lo, hi)
    assert agent.encoder_chunks(224, 9) == [(i, i + 8) for i in range(0, 224, 8)]
