"""What the training loop collects: the random-data protocol, termination against truncation in
the replay and the batches (and whether the critic's target bootstraps), a resumed Gym task."""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from slac.config import Config
from slac.tasks import random_action
from slac.trainer import Trainer


def collected(tmp_path, task: str, random_steps: int, **kw) -> Trainer:
    """A trainer of ``task`` that has collected its random data (and written nothing else)."""
    cfg = Config(task=task, run_dir=str(tmp_path / "run"), random_steps=random_steps,
                 env_steps=random_steps, pretrain_updates=0, batch_size=64, model_batch_size=2,
                 hidden=32, z1_dim=4, z2_dim=8, conv_width=4, checkpoint_every=100_000,
                 threads=1, **{"replay_capacity": 4000, **kw}).resolved()
    return Trainer(cfg)


def episode_ends(replay) -> list[int]:
    """Slots of the transitions into the last frame of each finished episode, in order."""
    n = replay.size
    slots = [(replay.next - n + i) % replay.capacity for i in range(n)]
    return [slots[i] for i in range(n - 2) if replay.first[slots[i + 2]]]


def test_terminal_transitions_reach_the_batch_and_stop_the_bootstrap(tmp_path):
    """Walker2d falls under random actions: every finished episode ended in a terminal state.
    The training loop stores terminals = 1 at exactly those transitions, a sampled batch
    carries them, and the target of such a transition is its reward alone (Eq. 9)."""
    trainer = collected(tmp_path, "gym:Walker2d-v5", random_steps=600)
    try:
        trainer.collect_random()
        replay = trainer.replay
        ends = episode_ends(replay)
        assert len(ends) >= 3
        assert sorted(np.flatnonzero(replay.terminals[:replay.capacity])) == sorted(ends)
        b = replay.sample(256, trainer.cfg.sequence_length)
        done = b.terminals[:, -1] == 1
        assert done.any() and not done.all()
        z = torch.randn(256, trainer.cfg.z1_dim + trainer.cfg.z2_dim)
        h = (torch.randn(256, trainer.cfg.sequence_length, trainer.cfg.feature_dim),
             torch.zeros(256, trainer.cfg.sequence_length - 1, trainer.action_dim))
        target = trainer.agent.td_target((z,), h, b.rewards[:, -1], b.terminals[:, -1])
        assert torch.equal(target[done], b.rewards[done, -1])
        assert not torch.equal(target[~done], b.rewards[~done, -1])
    finally:
        trainer.close()


def test_time_limits_and_physics_errors_are_not_terminal(tmp_path):
    """A DMC episode ends at its time limit, another is cut short by a physics error: both
    are truncations, so the replay holds no terminal transition and every target bootstraps."""
    from dm_control.rl.control import PhysicsError

    trainer = collected(tmp_path, "cartpole-swingup", random_steps=1600, action_repeat=8)
    suite_env = trainer.env._env  # dm_control's environment inside ours
    real_step, calls = suite_env.step, {"n": 0}

    def flaky(action):
        calls["n"] += 1
        if calls["n"] == 1000 + 8 * 30:  # 30 agent steps into the second episode
            raise PhysicsError("injected: simulation became unstable")
        return real_step(action)

    suite_env.step = flaky
    try:
        trainer.collect_random()
        replay = trainer.replay
        ends = episode_ends(replay)
        assert len(ends) == 2 and trainer.physics_errors == 1
        assert not replay.terminals.any()
        b = replay.sample(64, trainer.cfg.sequence_length)
        assert not b.terminals.any()
    finally:
        trainer.close()


def test_dmc_random_actions_are_tanh_of_a_normal_with_std_2(tmp_path):
    """DMC's random phase (Appendix C): a = tanh(u), u ~ N(0, 2^2); the training loop stores
    exactly the draws of the run's own generator, in order."""
    rng = np.random.default_rng(0)
    a = np.stack([random_action("tanh_normal", rng, 3) for _ in range(20_000)])
    assert a.dtype == np.float32 and np.abs(a).max() <= 1
    # P(|u| > 2) = P(|N(0, 1)| > 1) = 0.3173 for u ~ N(0, 2^2)
    assert abs(np.mean(np.abs(a) > np.tanh(2.0)) - 0.3173) < 0.01
    assert abs(np.mean(a)) < 0.01
    trainer = collected(tmp_path, "cartpole-swingup", random_steps=400)
    try:
        trainer.collect_random()
        replay = trainer.replay
        slots = [i for i in range(replay.size) if replay.has_action[i]]
        mine = np.random.default_rng(trainer.cfg.seed)
        want = np.stack([np.tanh(mine.normal(0.0, 2.0, 1)) for _ in slots]).astype(np.float32)
        assert np.array_equal(replay.actions[slots], want)
    finally:
        trainer.close()


@pytest.mark.e2e
def test_a_non_mujoco_gym_task_resumes(tmp_path):
    """gym:Pendulum-v1 (no MuJoCo state to restore): stopped by SIGTERM mid-episode, the run
    resumes with a new episode and completes; its checkpoint marks the environment inexact."""
    from slac import checkpoint

    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "slac.cli", "train", "--task", "gym:Pendulum-v1", "--run-dir",
           str(run_dir), "--random-steps", "300", "--env-steps", "600", "--pretrain-updates",
           "2", "--batch-size", "8", "--model-batch-size", "4", "--eval-every", "600",
           "--eval-episodes", "1", "--threads", "1", "--updates-per-step", "1",
           "--conv-width", "8", "--hidden", "32", "--replay-capacity", "2000"]
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    for line in proc.stdout:
        if "random " in line:
            break
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=600)[0]
    assert proc.returncode == 128 + signal.SIGTERM, out[-2000:]
    state = checkpoint.load_latest(run_dir)
    assert state["counters"]["in_episode"] and not state["env"]["exact"]
    stopped, slot = state["counters"]["env_step"], state["replay"]["next"]
    assert 0 < stopped < 300
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"resuming {run_dir} at env step {stopped}" in done.stderr
    # the environment could not be restored mid-episode, so the resumed run began a new one
    first = np.fromfile(run_dir / "replay" / "first.bin", dtype=np.bool_)
    assert first[slot] and not first[slot - 1]
    rows = (run_dir / "eval.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["600"]
