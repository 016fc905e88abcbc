"""Gymnasium environments from pixels: the paper's MuJoCo tasks and generic ids (no mocks)."""

import numpy as np
import pytest
from conftest import run

from slac import envs
from slac.envs import EnvError
from slac.tasks import TASKS, get_task

PAPER = {"gym:HalfCheetah-v5": 1, "gym:Walker2d-v5": 4, "gym:Hopper-v5": 2, "gym:Ant-v5": 4}


def test_paper_gym_protocol_defaults():
    for task, repeat in PAPER.items():
        spec = TASKS[task]
        assert spec.action_repeat == repeat and spec.decoder_var == 0.1
        assert spec.random_steps == 10_000 * repeat and spec.random_action == "uniform"
        assert spec.pretrain_updates == 100_000 and spec.updates_per_step == 3


@pytest.mark.parametrize("task", list(PAPER))
def test_paper_gym_task_renders_and_repeats(task):
    env = envs.make(task, seed=0)
    try:
        obs = env.reset()
        assert obs.shape == (3, 64, 64) and obs.dtype == np.uint8
        assert obs.std() > 5
        # the body fills a useful part of the frame: many pixels differ from the background
        body = np.abs(obs.astype(int) - np.median(obs, axis=(1, 2), keepdims=True)).sum(0) > 60
        assert body.mean() > 0.03, f"{task}: body covers {body.mean():.1%} of the frame"
        step = env.step(np.zeros(env.action_dim))
        assert step.env_steps == PAPER[task] or step.done
    finally:
        env.close()


def test_dmc_and_gym_renderers_do_not_corrupt_each_other():
    def roll(env):
        frames = [env.reset()]
        frames += [env.step(np.full(env.action_dim, 0.3)).obs for _ in range(4)]
        return np.stack(frames)

    alone = []
    for task in ("cheetah-run", "gym:Hopper-v5"):
        env = envs.make(task, seed=0)
        alone.append(roll(env))
        env.close()
    a, b = envs.make("cheetah-run", seed=0), envs.make("gym:Hopper-v5", seed=0)
    try:
        fa, fb = [a.reset()], [b.reset()]
        for _ in range(4):
            fa.append(a.step(np.full(a.action_dim, 0.3)).obs)
            fb.append(b.step(np.full(b.action_dim, 0.3)).obs)
    finally:
        a.close()
        b.close()
    assert np.array_equal(np.stack(fa), alone[0]) and np.array_equal(np.stack(fb), alone[1])


def rollout_pair(seed: int, agent_steps: int = 300):
    """Walker2d at the paper's action repeat (4) and at repeat 1, same seed, same actions (each
    repeated 4 times at repeat 1): per agent step, (repeated step, the single steps it covers)."""
    rep = envs.make("gym:Walker2d-v5", seed=seed)
    one = envs.make("gym:Walker2d-v5", seed=seed, action_repeat=1)
    rng = np.random.default_rng(seed)
    pairs = []
    try:
        assert np.array_equal(rep.reset(), one.reset())
        for _ in range(agent_steps):
            action = rng.uniform(-1, 1, rep.action_dim)
            step, singles = rep.step(action), []
            for _ in range(rep.action_repeat):
                singles.append(one.step(action))
                if singles[-1].done:
                    break
            pairs.append((step, singles))
            if step.done:
                break
    finally:
        rep.close()
        one.close()
    return pairs


def test_action_repeat_matches_single_steps_and_stops_when_the_episode_ends():
    """Each repeated step is its single steps: the reward their sum, the frame the last one's,
    the simulator steps counted as taken; and a termination inside a repeat stops it there
    (a seed whose episode ends mid-repeat is searched for)."""
    for seed in range(10):
        pairs = rollout_pair(seed)
        for step, singles in pairs:
            assert step.env_steps == len(singles)
            assert step.reward == pytest.approx(sum(s.reward for s in singles), abs=1e-9)
            assert np.array_equal(step.obs, singles[-1].obs)
            assert (step.terminated, step.truncated) == (singles[-1].terminated,
                                                         singles[-1].truncated)
        last = pairs[-1][0]
        assert last.terminated and not last.truncated  # Walker2d falls under random actions
        if last.env_steps < 4:
            return
    raise AssertionError("no seed ended its episode inside a repeat")


def test_truncation_is_not_termination():
    env = envs.make("gym:Pendulum-v1", seed=0)  # 200-step time limit, never terminates
    try:
        env.reset()
        steps = 0
        while True:
            step = env.step(np.zeros(env.action_dim))
            steps += step.env_steps
            if step.done:
                break
        assert steps == 200 and step.truncated and not step.terminated
    finally:
        env.close()


def test_generic_gym_ids_rescale_actions():
    env = envs.make("gym:Pendulum-v1", seed=0)
    try:
        assert env.action_dim == 1 and env.action_repeat == 1
        obs = env.reset()
        assert obs.shape == (3, 64, 64) and obs.std() > 5
        env.step(np.ones(1))
        assert env._env.unwrapped.last_u == pytest.approx(2.0)  # [-1, 1] -> [-2, 2]
    finally:
        env.close()
    env = envs.make("gym:InvertedPendulum-v5", seed=0)
    try:
        assert env.reset().std() > 5
    finally:
        env.close()


def test_gym_state_roundtrip_is_exact():
    a = envs.make("gym:Hopper-v5", seed=3)
    b = envs.make("gym:Hopper-v5", seed=4)
    try:
        a.reset()
        b.reset()
        a.step(np.full(a.action_dim, 0.5))
        b.set_state(a.get_state())
        for _ in range(5):
            sa, sb = a.step(np.full(a.action_dim, -0.2)), b.step(np.full(b.action_dim, -0.2))
            assert np.array_equal(sa.obs, sb.obs) and sa.reward == sb.reward
    finally:
        a.close()
        b.close()


def test_bad_gym_ids():
    with pytest.raises(EnvError, match="Discrete action space"):
        envs.make("gym:CartPole-v1", seed=0)
    with pytest.raises(EnvError, match="unknown Gymnasium environment"):
        envs.make("gym:NoSuchEnv-v0", seed=0)
    assert get_task("gym:Pendulum-v1").action_repeat == 1


@pytest.mark.e2e
def test_bad_gym_ids_on_the_command_line(tmp_path):
    for task, message in (("gym:CartPole-v1", "needs continuous (Box) actions"),
                          ("gym:NoSuchEnv-v0", "unknown Gymnasium environment")):
        done = run("train", "--task", task, "--run-dir", str(tmp_path / "r"))
        assert done.returncode == 2 and message in done.stderr, done.stderr
        assert done.stderr.count("\n") == 1 and not (tmp_path / "r").exists()


@pytest.mark.e2e
def test_short_cli_run_on_hopper(tmp_path):
    run_dir = tmp_path / "hopper"
    done = run("train", "--task", "gym:Hopper-v5", "--seed", "0", "--run-dir", str(run_dir),
               "--env-steps", "600", "--random-steps", "200", "--pretrain-updates", "5",
               "--batch-size", "16", "--model-batch-size", "8", "--eval-every", "300",
               "--eval-episodes", "1", "--threads", "1", "--updates-per-step", "1",
               "--replay-capacity", "2000")
    assert done.returncode == 0, done.stderr[-3000:]
    rows = (run_dir / "eval.csv").read_text().splitlines()
    assert rows[0].startswith("env_step,return_mean,return_std") and len(rows) >= 3
    assert (run_dir / "agent.pt").exists()
