"""Gradient isolation, the one-batch schedule, and the actor's history at episode starts."""

import copy
import dataclasses
import threading
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from slac import parallel
from slac.agent import SLACAgent, actor_history
from slac.policy import PolicyHistory
from slac.replay import Replay


def make_batch(cfg, action_dim=1, seed=0, terminal=False):
    """A batch sampled from episodes of 7, 12, 9 and 30 random steps; with ``terminal``, the
    first three end in a terminal state (the last is cut off, as by a time limit)."""
    rng = np.random.default_rng(seed)
    r = Replay(200, action_dim, seed=seed)
    for i, length in enumerate((7, 12, 9, 30)):
        r.start_episode(rng.integers(0, 256, (3, 64, 64), dtype=np.uint8))
        for t in range(length):
            r.add(rng.uniform(-1, 1, action_dim).astype(np.float32), float(rng.normal()),
                  rng.integers(0, 256, (3, 64, 64), dtype=np.uint8),
                  terminal and i < 3 and t == length - 1)
    return r.sample(cfg.batch_size, cfg.sequence_length)


def params(module):
    return [p.detach().clone() for p in module.parameters()]


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def critic_loss_alone(agent, b):
    """Eq. (8) as the agent's update computes it, on a copy of the agent in the same state."""
    mb = agent.cfg.model_batch_size
    features, post = agent.model_posterior(b.rows(0, mb))
    tail = agent.latents(b.rows(mb))
    f, z = agent.actor_critic_inputs(features, post, tail)
    feats, acts = actor_history(f, b.actions, b.first, b.valid)
    target = agent.td_target((z[:, -1],), (feats[:, 1:], acts[:, 1:]), b.rewards[:, -1],
                             b.terminals[:, -1])
    q1, q2 = agent.critic(z[:, -2], b.actions[:, -1])
    return 0.5 * (F.mse_loss(q1, target) + F.mse_loss(q2, target))


def test_update_gives_the_model_the_gradient_of_its_own_loss_alone(small_cfg):
    """The actor-critic's inputs come from the same encoder pass and posterior sample that the
    model loss differentiates (with gradients); the agent must stop them, so after
    ``agent.update`` the model's gradient is Eq. (7)'s alone."""
    agent = SLACAgent(small_cfg, 1, torch.device("cpu"))
    twin = copy.deepcopy(agent)
    b = make_batch(small_cfg)
    agent.update(b)
    head = b.rows(0, small_cfg.model_batch_size)
    _, post = twin.model_posterior(head)
    loss, _ = twin.model.loss(head.frames, head.actions, head.rewards, head.first, post)
    want = torch.autograd.grad(loss, list(twin.model.parameters()))
    for (name, p), g in zip(agent.model.named_parameters(), want, strict=True):
        assert torch.equal(p.grad, g), name


def test_update_gives_the_critics_the_gradient_of_their_own_loss_alone(small_cfg):
    """The actor loss (Eq. 10) reads the critics; after ``agent.update`` their gradient must
    be Eq. (8)'s alone, and the target critics have none."""
    agent = SLACAgent(small_cfg, 1, torch.device("cpu"))
    twin = copy.deepcopy(agent)
    b = make_batch(small_cfg)
    agent.update(b)
    want = torch.autograd.grad(critic_loss_alone(twin, b), list(twin.critic.parameters()))
    for (name, p), g in zip(agent.critic.named_parameters(), want, strict=True):
        assert torch.equal(p.grad, g), name
    assert all(p.grad is None for p in agent.critic_target.parameters())


def test_polyak_update_moves_the_target_critics_tau_of_the_way(small_cfg):
    """theta' <- (1 - tau) theta' + tau theta after the critics' step (direction and rate)."""
    cfg = dataclasses.replace(small_cfg, tau=0.25)
    agent = SLACAgent(cfg, 1, torch.device("cpu"))
    with torch.no_grad():  # targets apart from the critics, so the direction shows
        for p in agent.critic_target.parameters():
            p.add_(1.0)
    target_before = params(agent.critic_target)
    agent.update(make_batch(cfg))
    for old, new, critic in zip(target_before, params(agent.critic_target),
                                params(agent.critic), strict=True):
        torch.testing.assert_close(new, 0.75 * old + 0.25 * critic, rtol=0, atol=1e-6)
        assert not torch.equal(new, old)


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
    assert h.start == 3  # the episode's first frame: the newest
    h.push(np.ones(2, np.float32), np.full((3, 64, 64), 5, np.uint8))
    assert np.all(h.frames[-1] == 5) and np.all(h.frames[:-1] == 9)
    assert np.all(h.actions[-1] == 1) and np.all(h.actions[:-1] == 0)
    assert h.start == 2
    for _ in range(4):
        h.push(np.ones(2, np.float32), np.full((3, 64, 64), 5, np.uint8))
    assert h.start == 0


def test_latent_actor_acts_on_the_posterior_filtered_from_the_episode_start(small_cfg):
    """With --actor-input latent the actor sees z_t of the posterior over its history,
    restarted at the episode's first frame: the padding before it does not matter."""
    cfg = dataclasses.replace(small_cfg, actor_input="latent", feature_dim=32, conv_width=4)
    agent = SLACAgent(cfg, 2, torch.device("cpu"))
    assert agent.actor.net[0].in_features == agent.model.latent_dim
    L, rng = cfg.sequence_length, np.random.default_rng(0)
    frames = rng.integers(0, 256, (L, 64, 64, 3), dtype=np.uint8)
    actions = rng.uniform(-1, 1, (L - 1, 2)).astype(np.float32)
    other_frames, other_actions = frames.copy(), actions.copy()
    other_frames[:3] = 0
    other_actions[:3] = 0.5  # a_t is taken from frame t: these are before the start, 3

    def act(f, a, start):
        torch.manual_seed(1)  # the posterior's draws: the same in each call
        return agent.act(f, a, deterministic=True, start=start)

    np.testing.assert_array_equal(act(frames, actions, 3), act(other_frames, other_actions, 3))
    assert not np.array_equal(act(frames, actions, 0), act(other_frames, other_actions, 0))


def test_td_target_bootstraps_through_truncation_not_termination(small_cfg):
    agent = SLACAgent(small_cfg, 1, torch.device("cpu"))
    B, L = 5, small_cfg.sequence_length
    z = torch.randn(B, small_cfg.z1_dim + small_cfg.z2_dim)
    h = (torch.randn(B, L, small_cfg.feature_dim), torch.rand(B, L - 1, 1))
    r = torch.randn(B)
    terminal = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0])
    g = torch.Generator().set_state(agent.rng_actor_critic.get_state())
    got = agent.td_target((z,), h, r, terminal)
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
    schedule = parallel.choose(ovl, "overlap")
    frames = small_cfg.sequence_length + 1
    for agent in (seq, ovl):  # one sequence per encoder pass, so the streams can share passes
        monkeypatch.setattr(agent.model.encoder, "CHUNK", frames)
    main = threading.current_thread()
    if slower == "actor-critic":  # its encoding is slow: the model stream takes chunks
        encode = ovl.encode
        monkeypatch.setattr(ovl, "encode", lambda b: (
            time.sleep(0.2) if threading.current_thread() is not main else None) or encode(b))
    else:  # the model stream starts late: the actor-critic stream encodes everything
        model_posterior = ovl.model_posterior
        monkeypatch.setattr(ovl, "model_posterior", lambda h: time.sleep(0.5)
                            or model_posterior(h))
    b = make_batch(small_cfg)
    for _ in range(2):
        s_seq = seq.update(b)  # the agent's own update: one thread, one stream after the other
        s_ovl = schedule.update(b)
    assert s_seq.keys() == s_ovl.keys()
    for k in s_seq:
        assert torch.equal(s_seq[k], s_ovl[k]), k
    for net in ("model", "actor", "critic", "critic_target"):
        assert same(params(getattr(seq, net)), params(getattr(ovl, net))), net
    for g_seq, g_ovl in zip(seq.generators(), ovl.generators(), strict=True):
        assert torch.equal(g_seq.get_state(), g_ovl.get_state())
    # the model stream took encoder chunks and a piece of the filter iff the other was slower
    assert (schedule.model_stream_encoded > 0) == (slower == "actor-critic")
    assert (schedule.model_stream_filtered > 0) == (slower == "actor-critic")
    schedule.close()


def test_split_model_update_is_the_sequential_update_up_to_rounding(small_cfg, restore_threads):
    """When the model's part dominates, its sequences are split over the two threads: the same
    draws, the model's gradient and every loss equal to the one-thread update's up to fp32
    rounding, and the generators left in the same state."""
    torch.set_num_threads(1)
    seq, split = twin_agents(small_cfg)
    b = make_batch(small_cfg)
    s_seq = seq.update(b)
    s_split = parallel.choose(split, "split").update(b)
    assert s_seq.keys() == s_split.keys()
    for k in s_seq:
        torch.testing.assert_close(s_split[k], s_seq[k], rtol=1e-4, atol=1e-4)
    for p_seq, p_split in zip(seq.model.parameters(), split.model.parameters(), strict=True):
        torch.testing.assert_close(p_split.grad, p_seq.grad, rtol=1e-3, atol=1e-5)
    for g_seq, g_split in zip(seq.generators(), split.generators(), strict=True):
        assert torch.equal(g_seq.get_state(), g_split.get_state())


@pytest.mark.parametrize("name, broken_part", [
    ("overlap", "model_step"),  # the model stream, on the calling thread
    ("overlap", "filter_piece"),  # the work both streams share
    ("overlap", "update_actor_critic"),  # the worker's stream
    ("split", "model_gradients"),  # both threads
])
def test_two_thread_updates_pass_on_errors_and_leave_no_worker_waiting(small_cfg, name,
                                                                      broken_part,
                                                                      restore_threads):
    torch.set_num_threads(2)
    agent = SLACAgent(small_cfg, 1, torch.device("cpu"))
    schedule = parallel.choose(agent, name)
    b = make_batch(small_cfg)

    def broken(*_, **__):
        raise RuntimeError("a stream failed")

    setattr(agent, broken_part, broken)
    with pytest.raises(RuntimeError, match="a stream failed"):
        schedule.update(b)
    assert torch.get_num_threads() == 2  # restored
    assert schedule.worker.submit(int).result() == 0  # the worker is free
    schedule.close()


def test_model_update_on_two_threads_is_the_one_thread_update(small_cfg, restore_threads):
    """Pretraining with --overlap: the batch's halves on one thread each, gradients summed. The
    same draws and the same gradient as the whole batch on one thread, up to fp32 rounding."""
    cfg = dataclasses.replace(small_cfg, model_batch_size=5)  # unequal halves: 2 and 3
    agents = twin_agents(cfg)
    b = make_batch(cfg).rows(0, 5)
    torch.set_num_threads(2)
    s_one = agents[0].update_model(b)
    schedule = parallel.choose(agents[1])
    assert schedule.name == "split"  # 5 model sequences, no others: the model's part dominates
    s_two = schedule.update_model(b)
    assert schedule.worker.pool is not None  # the second thread ran
    schedule.close()
    for k in s_one:
        torch.testing.assert_close(s_two[k], s_one[k], rtol=1e-5, atol=1e-4)
    for p_one, p_two in zip(agents[0].model.parameters(), agents[1].model.parameters(),
                            strict=True):
        torch.testing.assert_close(p_two.grad, p_one.grad, rtol=1e-3, atol=1e-5)
    assert torch.equal(agents[0].rng_model.get_state(), agents[1].rng_model.get_state())


def test_schedule_follows_the_cost_ratio(small_cfg, restore_threads):
    def chosen(batch, model, overlap=True):
        cfg = dataclasses.replace(small_cfg, batch_size=batch, model_batch_size=model,
                                  overlap=overlap)
        return parallel.choose(SLACAgent(cfg, 1, torch.device("cpu"))).name

    torch.set_num_threads(2)
    assert chosen(256, 32) == "overlap"  # the paper's batch: two balanced streams
    assert chosen(64, 32) == "split"  # the cpu preset's: the model's part dominates
    assert chosen(32, 32) == "split"  # no other sequences: pretraining's split, full updates
    assert chosen(256, 32, overlap=False) == "sequential"
    torch.set_num_threads(1)
    assert chosen(256, 32) == "sequential"
    with pytest.raises(ValueError, match="unknown schedule"):
        parallel.choose(SLACAgent(small_cfg, 1, torch.device("cpu")), "fast")


def test_encoder_chunks_cover_the_sequences_in_whole_chunks(small_cfg):
    """The pieces the two streams share: every sequence once, in order, in whole encoder chunks
    (8 sequences of 9 frames at the paper's sizes) where the sequence length allows."""
    agent = SLACAgent(small_cfg, 1, torch.device("cpu"))
    chunk = agent.model.encoder.CHUNK
    for n, steps in ((224, 9), (100, 9), (7, 9), (50, 8), (30, 7), (1, 9)):
        pieces = parallel.encoder_chunks(agent, n, steps)
        assert [i for lo, hi in pieces for i in range(lo, hi)] == list(range(n))
        for lo, hi in pieces[:-1]:
            frames = (hi - lo) * steps
            assert frames % chunk == 0 or frames <= chunk, (n, steps, lo, hi)
    assert parallel.encoder_chunks(agent, 224, 9) == [(i, i + 8) for i in range(0, 224, 8)]


def test_overlapped_schedule_chosen_with_two_threads_is_the_one_thread_update(small_cfg,
                                                                             restore_threads):
    """As training runs it: two threads, sizes that choose the overlapped schedule, the
    encoder's own chunks (the other sequences span several): bit for bit the agent's
    one-thread update."""
    cfg = dataclasses.replace(small_cfg, batch_size=40, model_batch_size=2)
    seq, ovl = twin_agents(cfg)
    b = make_batch(cfg)
    torch.set_num_threads(2)
    schedule = parallel.choose(ovl)
    assert schedule.name == "overlap"
    assert len(parallel.encoder_chunks(ovl, 38, cfg.sequence_length + 1)) > 1
    for _ in range(2):
        torch.set_num_threads(1)
        s_seq = seq.update(b)
        torch.set_num_threads(2)
        s_ovl = schedule.update(b)
        assert torch.get_num_threads() == 2  # restored after the update
        for k in s_seq:
            assert torch.equal(s_seq[k], s_ovl[k]), k
    for net in ("model", "actor", "critic", "critic_target"):
        assert same(params(getattr(seq, net)), params(getattr(ovl, net))), net
    schedule.close()
