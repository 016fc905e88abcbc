"""Replay: storage per step, sequences across episode starts, masks."""

import numpy as np
import pytest
import torch

from slac.replay import Batch, Replay, ReplayDamaged, episode_masks


def frame(value: int) -> np.ndarray:
    return np.full((3, 64, 64), value % 256, dtype=np.uint8)


def fill(replay: Replay, episode_lengths: list[int], action_dim: int = 2) -> None:
    """Episodes whose frames count up: frame value = global frame index."""
    k = 0
    for length in episode_lengths:
        replay.start_episode(frame(k))
        k += 1
        for t in range(length):
            replay.add(np.full(action_dim, k, np.float32), float(k), frame(k), t == length - 1)
            k += 1


def test_memory_per_agent_step_under_13kb():
    r = Replay(capacity=1000, action_dim=6)
    assert r.nbytes() / 1000 <= 13_000
    assert r.frames.dtype == np.uint8 and r.frames.shape[1:] == (64, 64, 3)


def test_every_frame_is_stored_once():
    r = Replay(capacity=100, action_dim=2)
    fill(r, [10, 10])
    assert len(r) == 22  # 2 x (10 transitions + 1 first frame)


def test_episode_masks():
    first = torch.tensor([[False, False, False, True, False], [False] * 5])
    f, valid = episode_masks(first)
    assert f[:, 0].all()
    assert valid.tolist() == [[False, False, False, True, True], [True] * 5]


def test_sequences_cross_episode_starts_with_masks():
    r = Replay(capacity=500, action_dim=2, seed=3)
    fill(r, [5, 5, 5, 5, 5, 5])
    b = r.sample(512, 4)
    assert b.frames.shape == (512, 5, 64, 64, 3)
    assert b.actions.shape == (512, 4, 2) and b.rewards.shape == (512, 4)
    crossing = b.first[:, 1:].any(1)
    assert crossing.any(), "some sequences must cross an episode start"
    for i in range(512):
        vals = b.frames[i, :, 0, 0, 0].long()
        first, valid = b.first[i], b.valid[i]
        assert first[0]
        assert not first[-1], "the critic's transition must be real"
        # consecutive frames in storage order
        assert torch.all(vals[1:] - vals[:-1] == 1)
        # valid marks exactly the frames at or after the newest start
        starts = torch.nonzero(first).flatten()
        assert valid.tolist() == (torch.arange(5) >= starts.max()).tolist()
        # a transition's reward and action belong to the frame it leads to; none crosses
        for t in range(4):
            expected = 0.0 if first[t + 1] else float(vals[t + 1])
            assert b.rewards[i, t] == expected and torch.all(b.actions[i, t] == expected)
        assert b.rewards[i, -1] == vals[-1]


def test_transition_into_a_new_episode_has_no_action():
    r = Replay(capacity=100, action_dim=2)
    fill(r, [3, 3])
    # slot 3 is episode 1's last frame; slot 4 is episode 2's first
    assert not r.has_action[3] and r.first[4]
    assert np.all(r.actions[3] == 0)


def test_last_transition_is_never_an_episode_boundary():
    r = Replay(capacity=200, action_dim=1, seed=0)
    fill(r, [2, 2, 2, 2, 2, 2, 2, 2], action_dim=1)
    b = r.sample(400, 2)
    assert not b.first[:, -1].any()
    # the frame before the last is never an episode's final frame (it has an action)
    assert torch.all(b.rewards[:, -1] > 0)


def test_ring_buffer_overwrites_oldest():
    r = Replay(capacity=20, action_dim=2)
    fill(r, [50])
    assert len(r) == 21
    b = r.sample(64, 8)
    oldest = 51 - 21
    assert b.frames[:, :, 0, 0, 0].min() >= oldest


def test_sample_needs_a_sequence():
    r = Replay(capacity=20, action_dim=2)
    fill(r, [3])
    with pytest.raises(ValueError):
        r.sample(4, 8)


def test_add_before_start_episode_is_an_error():
    r = Replay(capacity=20, action_dim=2)
    with pytest.raises(RuntimeError):
        r.add(np.zeros(2), 0.0, frame(0), False)


def test_spread_frames_cover_the_window_without_a_random_draw():
    r = Replay(capacity=20, action_dim=2)
    fill(r, [50])  # frames 30..50 stay in the window
    state = r.rng.bit_generator.state
    values = r.spread_frames(5)[:, 0, 0, 0].tolist()
    assert values == [30, 35, 40, 45, 50]
    assert r.spread_frames(100).shape[0] == 21  # never more frames than stored
    assert r.rng.bit_generator.state == state  # the run's sampling is untouched
    with pytest.raises(ValueError):
        Replay(capacity=20, action_dim=2).spread_frames(4)


def _fill(replay, steps, rng, episode=13):
    for i in range(steps):
        if i % episode == 0:
            replay.start_episode(rng.integers(0, 256, (3, 64, 64), dtype=np.uint8))
        replay.add(rng.uniform(-1, 1, 2).astype(np.float32), float(rng.normal()),
                   rng.integers(0, 256, (3, 64, 64), dtype=np.uint8), i % episode == 12)


def test_memory_mapped_replay_wraps_and_resumes_what_its_checkpoint_samples(tmp_path):
    """A memory-mapped replay that has wrapped around several times, checkpointed, then written
    further (as a run does before it is killed): reopened from its files and the checkpoint's
    state, it samples exactly what it sampled at the checkpoint, because the writes after it
    went into the margin."""
    rng = np.random.default_rng(0)
    replay = Replay(40, 2, seed=3, directory=tmp_path, margin=12)
    _fill(replay, 200, rng)
    assert replay.size == replay.window  # full, and wrapped around several times
    replay.flush()
    state = replay.state_dict()
    want = replay.sample(16, 8)
    _fill(replay, 5, rng)  # after the checkpoint: at most the margin's worth (2 slots a step)
    del replay
    resumed = Replay(40, 2, seed=99, directory=tmp_path, margin=12, create=False)
    resumed.load_state_dict(state)
    got = resumed.sample(16, 8)
    assert got.targets is want.targets is None  # the replay's frames are the targets
    fields = [f for f in Batch.__annotations__ if f != "targets"]
    assert all(torch.equal(getattr(got, f), getattr(want, f)) for f in fields)


def _checkpointed(tmp_path, capacity=3000):
    rng = np.random.default_rng(0)
    replay = Replay(capacity, 2, seed=3, directory=tmp_path, margin=12)
    _fill(replay, capacity + 500, rng)
    replay.flush()
    return replay.state_dict()


def test_writes_into_the_window_after_a_checkpoint_are_found(tmp_path):
    """Without a margin the writes after the checkpoint overwrite slots it can sample: the
    digests find it and the resume stops (never silent garbage)."""
    rng = np.random.default_rng(0)
    replay = Replay(40, 2, seed=3, directory=tmp_path, margin=0)
    _fill(replay, 200, rng)
    state = replay.state_dict()
    _fill(replay, 5, rng)
    with pytest.raises(ReplayDamaged, match="blocks of the replay"):
        Replay(40, 2, directory=tmp_path, margin=0, create=False).load_state_dict(state)


@pytest.mark.parametrize("damage", ["missing", "truncated", "flipped"])
def test_a_damaged_replay_stops_the_resume_or_is_left_out_with_override(tmp_path, damage):
    state = _checkpointed(tmp_path)
    path = tmp_path / ("frames.bin" if damage != "truncated" else "actions.bin")
    if damage == "missing":
        path.unlink()
    elif damage == "truncated":
        with open(path, "r+b") as f:
            f.truncate(path.stat().st_size // 2)
    else:  # one byte of one frame in the middle of the window
        with open(path, "r+b") as f:
            f.seek(1500 * 64 * 64 * 3 + 77)
            byte = f.read(1)
            f.seek(-1, 1)
            f.write(bytes([byte[0] ^ 0xFF]))
    message = {"missing": "is missing", "truncated": "bytes, not",
               "flipped": "1 of 3 blocks"}[damage]
    with pytest.raises(ReplayDamaged, match=message):
        Replay(3000, 2, directory=tmp_path, margin=12, create=False).load_state_dict(state)
    kept = Replay(3000, 2, directory=tmp_path, margin=12, create=False, on_damage="exclude")
    kept.load_state_dict(state)
    excluded, window = kept.damage()
    if damage == "flipped":
        assert excluded == kept.BLOCK  # the block of the flipped byte, no more
        bad = 1500 // kept.BLOCK
        assert kept.excluded[kept.BLOCK * bad:kept.BLOCK * (bad + 1)].all()
        flipped = torch.from_numpy(np.asarray(kept.frames[1500]))
        b = kept.sample(2048, 8)  # never a sequence through the damaged block
        assert not (b.frames == flipped).flatten(2).all(2).any()
    else:  # a file recreated empty: nothing of the window is left to sample
        assert excluded == window
        with pytest.raises(ValueError, match="no sequence"):
            kept.sample(4, 8)
    assert not (tmp_path / "frames.bin.tmp").exists()


def test_a_full_disk_fails_when_the_replay_is_created_and_leaves_no_files(tmp_path):
    """The files are allocated whole: no space shows at once (not as SIGBUS in a later
    write), and what was created is removed. Needs a small tmpfs, so root."""
    import subprocess

    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)],
                      capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        with pytest.raises(OSError, match="No space left"):
            Replay(1000, 2, directory=mnt / "replay")  # 12 MB of frames
        assert list((mnt / "replay").iterdir()) == []
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
