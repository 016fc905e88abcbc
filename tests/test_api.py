"""The Python API (``slac.load``, ``slac.make_env``, ``slac.train``), the README's snippet, and
what the tree must look like: module boundaries, README length, housekeeping."""

import ast
import os
import re
import subprocess
from contextlib import nullcontext
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import slac
from slac.config import Config, ConfigError

ROOT = Path(__file__).resolve().parents[1]
TINY_KW = dict(env_steps=800, random_steps=400, pretrain_updates=3, batch_size=8,
               model_batch_size=4, eval_every=400, eval_episodes=1, threads=1,
               replay_capacity=2000, hidden=32, z2_dim=16, conv_width=4, feature_dim=32)


@pytest.fixture
def restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def readme_snippet() -> str:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert len(blocks) == 1, "the README has one Python snippet"
    return blocks[0]


def test_readme_snippet_runs(trained_run, tmp_path, monkeypatch, capsys, restore_threads):
    """The README's Python snippet as written, against a tiny trained run under the name it
    loads; its training call gets the tiny budget in place of the cpu preset's."""
    code = readme_snippet()
    loaded = re.search(r'slac\.load\("([^"]+)"\)', code).group(1)
    monkeypatch.chdir(tmp_path)
    Path(loaded).parent.mkdir(parents=True)
    os.symlink(trained_run, loaded)
    assert 'preset="cpu"' in code
    tiny = code.replace('preset="cpu"', "**TINY_KW")
    exec(compile(tiny, "README.md", "exec"), {"TINY_KW": TINY_KW})  # noqa: S102
    out = capsys.readouterr().out
    assert re.search(r"cartpole-swingup after 800 steps of training: return \d+\.\d", out), out
    run_dir = re.search(r'run_dir="([^"]+)"', code).group(1)
    rows = (tmp_path / run_dir / "eval.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["400", "800"]


def test_loaded_policy_keeps_its_history_and_acts_in_bounds(trained_run):
    policy = slac.load(trained_run, device="cpu")
    assert policy.config.task == "cartpole-swingup" and policy.step == 800
    env = slac.make_env(policy.config.task, seed=3)
    obs, _ = env.reset(seed=3)
    with pytest.raises(RuntimeError, match="reset"):
        slac.load(trained_run, device="cpu").act(obs)
    policy.reset(obs)
    assert (policy.history.frames == obs).all()
    torch.manual_seed(0)
    a = policy.act(obs)
    assert a.shape == (1,) and a.dtype == np.float32 and np.abs(a).max() <= 1
    obs2, *_ = env.step(a)
    policy.act(obs2)
    assert (policy.history.frames[-1] == obs2).all() and (policy.history.frames[-2] == obs).all()
    assert np.allclose(policy.history.actions[-1], a)
    # the mode is the same every time; channels-first frames are taken too
    modes = []
    for frame in (obs, obs.transpose(2, 0, 1)):
        policy.reset(frame)
        modes.append(policy.act(frame, deterministic=True))
    assert np.array_equal(modes[0], modes[1])
    with pytest.raises(ValueError, match="RGB uint8 frame"):
        policy.reset(obs.astype(np.float32))


def test_load_without_an_agent_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no saved agent"):
        slac.load(tmp_path)


def test_make_env_is_a_standard_gymnasium_env():
    from gymnasium.utils.env_checker import check_env

    env = slac.make_env("cartpole-swingup", seed=0)
    assert isinstance(env, gym.Env)
    check_env(env, skip_render_check=True)
    assert env.observation_space == gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
    assert env.action_space.shape == (1,) and env.action_space.high[0] == 1
    obs, info = env.reset(seed=7)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8 and info == {}
    steps, truncated, terminated = 0, False, False
    while not (terminated or truncated):
        obs, r, terminated, truncated, info = env.step(env.action_space.sample())
        assert info["env_steps"] == 4  # cartpole's action repeat, applied inside
        steps += 1
    assert steps == 250 and truncated and not terminated  # DMC: a time limit, not a termination
    first = env.reset(seed=7)[0]
    assert np.array_equal(first, slac.make_env("cartpole-swingup", seed=7).reset()[0])
    assert np.array_equal(env.render(), first)
    env.close()


@pytest.mark.e2e
def test_train_resumes_the_same_run_and_refuses_a_changed_setting(tmp_path, restore_threads):
    cfg = Config(task="cartpole-swingup", run_dir=str(tmp_path / "run"), **TINY_KW)
    assert slac.train(cfg) == tmp_path / "run"
    rows = (tmp_path / "run" / "eval.csv").read_text().splitlines()
    assert len(rows) == 3
    # again: the run is complete, so it resumes at its end and trains nothing more
    assert slac.train(Config(run_dir=str(tmp_path / "run"))) == tmp_path / "run"
    assert (tmp_path / "run" / "eval.csv").read_text().splitlines() == rows
    with pytest.raises(ConfigError, match="--gamma 0.9"):
        slac.train(Config(run_dir=str(tmp_path / "run"), gamma=0.9))


# --------------------------------------------------------------------------- the tree
THIRD_PARTY_PRIVATE = {  # other libraries' private names we cannot do without
    "_step_count", "_reset_next_step",  # dm_control's Environment: exact resume sets them
    "_elapsed_steps",  # gymnasium's TimeLimit: exact resume sets it
    "_linear_pointwise",  # torch's only door to oneDNN's fp32 matmul (kernels.py; torch pinned)
}


def test_no_module_reaches_into_another_modules_underscore_names():
    """Modules talk through public functions: no ``from slac.x import _y``, and no ``obj._y``
    on anything but ``self``/``cls`` (other libraries' state named above excepted)."""
    found = []
    for path in sorted((ROOT / "slac").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("slac"):
                found += [f"{path.name}: from {node.module} import {a.name}"
                          for a in node.names if a.name.startswith("_")]
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                owner = node.value
                if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                    continue
                if node.attr in THIRD_PARTY_PRIVATE:
                    continue
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: .{node.attr}")
    assert not found, found


def test_readme_is_short_and_has_what_a_user_needs():
    text = (ROOT / "README.md").read_text()
    assert len(text) <= 12_000, len(text)
    for needed in ("arxiv.org/abs/1907.00953", "@inproceedings", "make train", "make test",
                   "slac.load(", "slac.make_env(", "slac.train(", "## Results", "## Speed",
                   "docs/performance.md", "docs/cpu-learning.md"):
        assert needed in text, needed
    for link in re.findall(r"\]\(((?:docs|LICENSE)[^)#]*)\)", text):
        assert (ROOT / link).exists(), link


def test_housekeeping():
    licence = (ROOT / "LICENSE").read_text()
    assert 'license = "MIT"' in (ROOT / "pyproject.toml").read_text() and "MIT License" in licence
    assert "MUJOCO_LOG.TXT" in (ROOT / ".gitignore").read_text().split()
    if (ROOT / ".git").exists():
        tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True,
                                 text=True).stdout.split()
        assert "MUJOCO_LOG.TXT" not in tracked
        big = [f for f in tracked if f.startswith("docs/") and f.endswith((".png", ".gif"))
               and (ROOT / f).stat().st_size > 200_000]
        assert not big, big
    assert re.search(r"^test-fast:", (ROOT / "Makefile").read_text(), re.M)


@pytest.mark.parametrize("has_bf16", [True, False])
def test_a_run_trained_with_amp_loads_where_bfloat16_is_not_in_hardware(tmp_path, monkeypatch,
                                                                        has_bf16):
    """slac.load of a --amp run: bfloat16 where the CPU has the units, else fp32 (evaluating
    on another machine must not be refused as training there is)."""
    from slac import checkpoint, runtime
    from slac.agent import SLACAgent
    from slac.config import to_dict

    cfg = Config(task="cartpole-swingup", **TINY_KW).resolved()
    agent = SLACAgent(cfg, 1, torch.device("cpu"))
    cfg.amp = True
    checkpoint.save_agent(tmp_path, agent, {"env_step": 400, "action_dim": 1, "state_dim": 0,
                                            "config": to_dict(cfg)})
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: has_bf16)
    policy = slac.load(tmp_path, device="cpu")
    assert policy.config.amp is has_bf16
    assert policy.agent.model.encoder.amp is has_bf16 and policy.agent.model.decoder.amp is has_bf16
    with pytest.raises(ConfigError, match="no units") if not has_bf16 else nullcontext():
        SLACAgent(cfg, 1, torch.device("cpu"))  # training there is refused
