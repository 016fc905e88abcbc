"""Real DeepMind Control environments rendering from pixels (no mocks)."""

import os

import numpy as np
import pytest

from slac import envs
from slac.tasks import TASKS


def test_backend_chosen_before_mujoco():
    assert os.environ.get("MUJOCO_GL") in ("egl", "osmesa", "glfw")


@pytest.mark.parametrize("task", [t for t, s in TASKS.items() if s.suite == "dmc"])
def test_dmc_task_renders_non_black_frames(task):
    env = envs.make(task, seed=0)
    try:
        obs = env.reset()
        assert obs.shape == (3, 64, 64) and obs.dtype == np.uint8
        assert obs.mean() > 10 and obs.std() > 5, "frame is blank"
        step = env.step(np.zeros(env.action_dim))
        assert step.env_steps == TASKS[task].action_repeat == env.action_repeat
        assert step.obs.shape == (3, 64, 64)
    finally:
        env.close()


def test_episode_is_1000_simulator_steps_and_truncates():
    env = envs.make("cartpole-swingup", seed=0)
    try:
        env.reset()
        total, agent_steps = 0, 0
        while True:
            step = env.step(np.zeros(env.action_dim))
            total += step.env_steps
            agent_steps += 1
            if step.done:
                break
        assert total == 1000 and agent_steps == 250
        assert step.truncated and not step.terminated
    finally:
        env.close()


def _rollout(seed, n=5, **kw):
    env = envs.make("cheetah-run", seed=seed, **kw)
    try:
        frames = [env.reset()]
        rng = np.random.default_rng(0)
        rewards = []
        for _ in range(n):
            s = env.step(rng.uniform(-1, 1, env.action_dim))
            frames.append(s.obs)
            rewards.append(s.reward)
        return np.stack(frames), np.array(rewards)
    finally:
        env.close()


def test_deterministic_under_a_seed_and_seed_matters():
    f1, r1 = _rollout(3)
    f2, r2 = _rollout(3)
    f3, _ = _rollout(4)
    assert np.array_equal(f1, f2) and np.array_equal(r1, r2)
    assert not np.array_equal(f1, f3)


def test_action_repeat_override_and_fast_quality():
    env = envs.make("cheetah-run", seed=0, action_repeat=2, render_quality="fast")
    try:
        obs = env.reset()
        assert obs.mean() > 10
        assert env.step(np.zeros(env.action_dim)).env_steps == 2
    finally:
        env.close()


def test_fast_quality_differs_from_paper_quality():
    paper, _ = _rollout(0, n=1)
    fast, _ = _rollout(0, n=1, render_quality="fast")
    assert not np.array_equal(paper, fast)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown task"):
        envs.make("cheetah-fly", seed=0)
    with pytest.raises(ValueError, match="render quality"):
        envs.make("cheetah-run", seed=0, render_quality="ultra")
    with pytest.raises(ValueError, match="action repeat"):
        envs.make("cheetah-run", seed=0, action_repeat=0)


def test_state_observations_are_the_suites_own_vectors_and_resume_exactly():
    """observation="state" (the state-SAC baseline): DMC gives its observation dict flattened
    as float32, Gymnasium its own observation; get_state/set_state replay a step exactly."""
    import gymnasium as gym
    from dm_control import suite

    env = envs.make("cartpole-swingup", 0, observation="state")
    ref = suite.load("cartpole", "swingup", task_kwargs={"random": 0})
    dim = sum(int(np.prod(s.shape)) for s in ref.observation_spec().values())
    obs = env.reset()
    assert env.obs_shape == (dim,) == obs.shape and obs.dtype == np.float32
    want = np.concatenate([np.ravel(v) for v in ref.reset().observation.values()])
    np.testing.assert_allclose(obs, want, rtol=1e-6)
    saved = env.get_state()
    a = np.full(env.action_dim, 0.5, np.float32)
    first = env.step(a).obs
    assert not np.array_equal(first, obs)
    env.set_state(saved)
    np.testing.assert_array_equal(env.step(a).obs, first)
    env.close()

    pend = envs.make("gym:Pendulum-v1", 3, observation="state")
    own = gym.make("Pendulum-v1")
    np.testing.assert_allclose(pend.reset(), own.reset(seed=3)[0], rtol=1e-6)
    assert pend.obs_shape == (3,)
    pend.close()
    own.close()
