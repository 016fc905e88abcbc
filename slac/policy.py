"""A trained policy as an object that keeps its own history: ``slac.load(run_dir)``.

The actor sees the last L frames and L-1 actions (Section 5); :class:`Policy` keeps them, so a
caller only hands it each observation as the environment returns it:

    policy = slac.load("runs/cheetah-run-seed0")
    obs, info = env.reset(seed=0)
    policy.reset(obs)
    while True:
        obs, reward, terminated, truncated, info = env.step(policy.act(obs))
        if terminated or truncated:
            break
"""

from __future__ import annotations

import os

import numpy as np

from slac import checkpoint, runtime
from slac.agent import SLACAgent, make_agent
from slac.config import Config, from_dict


def hwc(frame: np.ndarray) -> np.ndarray:
    """An RGB frame as (H, W, 3) uint8, given as (H, W, 3) or channels-first (3, H, W)."""
    frame = np.asarray(frame)
    if frame.ndim != 3 or 3 not in (frame.shape[0], frame.shape[-1]) or frame.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 frame (H, W, 3) or (3, H, W), got "
                         f"{frame.dtype} {frame.shape}")
    return frame if frame.shape[-1] == 3 else frame.transpose(1, 2, 0)


class PolicyHistory:
    """The last L frames (HWC uint8) and L-1 actions the actor sees when acting.

    At an episode start it holds L copies of the first frame and zero actions, matching the
    masking of histories that cross an episode start in training (``agent.actor_history``).
    """

    def __init__(self, length: int, action_dim: int, pixels: bool = True):
        self.length, self.action_dim = length, action_dim
        self.observe = hwc if pixels else lambda x: np.asarray(x, np.float32)  # state vectors
        self.frames: np.ndarray | None = None
        self.actions = np.zeros((length - 1, action_dim), dtype=np.float32)
        self.start = 0  # index of the episode's first frame in ``frames`` (0 once it left)

    def reset(self, frame: np.ndarray) -> None:
        """Start an episode at ``frame`` (HWC or CHW)."""
        self.frames = np.repeat(self.observe(frame)[None], self.length, 0)
        self.actions[:] = 0.0
        self.start = self.length - 1

    def push(self, action: np.ndarray, frame: np.ndarray) -> None:
        """``action`` was taken and ``frame`` (HWC or CHW) observed after it."""
        self.frames = np.concatenate([self.frames[1:], self.observe(frame)[None]])
        self.actions = np.concatenate([self.actions[1:], action[None].astype(np.float32)])
        self.start = max(self.start - 1, 0)


class Policy:
    """SLAC's actor with its history of frames and actions, for one environment at a time.

    ``reset(obs)`` at each episode start, then ``act(obs)`` with each observation, the first
    one included; observations are RGB uint8 frames, (H, W, 3) as :func:`slac.make_env` returns
    them or (3, H, W). ``config`` is the run's configuration, ``step`` the environment steps it
    had trained for.
    """

    def __init__(self, agent: SLACAgent, step: int = 0):
        self.agent, self.step = agent, step
        self.history = PolicyHistory(agent.cfg.sequence_length, agent.action_dim,
                                     pixels=agent.cfg.observation == "pixels")
        self.last_action: np.ndarray | None = None

    @property
    def config(self) -> Config:
        return self.agent.cfg

    @property
    def action_dim(self) -> int:
        return self.agent.action_dim

    @property
    def model(self):
        """The run's latent variable model (for pictures of its predictions)."""
        return self.agent.model

    def reset(self, observation: np.ndarray) -> None:
        """Begin an episode whose first observation is ``observation``."""
        self.history.reset(observation)
        self.last_action = None

    def act(self, observation: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """The action in [-1, 1] (float32, shape (A,)) for ``observation``, the frame the
        environment returned last: a sample of the stochastic policy (as the paper evaluates),
        or its mode tanh(mean) with ``deterministic``."""
        if self.history.frames is None:
            raise RuntimeError("call reset(first_observation) before act()")
        if self.last_action is not None:
            self.history.push(self.last_action, observation)
        action = self.agent.act(self.history.frames, self.history.actions, deterministic,
                                self.history.start)
        self.last_action = action
        return action


def load(run_dir: str | os.PathLike, device: str = "auto") -> Policy:
    """The policy of the run in ``run_dir``: its ``agent.pt`` (saved at every evaluation) or,
    before the first evaluation, the agent in its newest checkpoint. ``device``: auto, cpu or
    cuda. Raises ``FileNotFoundError`` when the directory holds no agent."""
    dev = runtime.resolve_device(device)
    state = checkpoint.load_agent_state(run_dir, dev)
    cfg = from_dict(state["config"])
    if cfg.amp and not runtime.bf16_supported(dev):
        cfg.amp = False  # a run trained with --amp acts in fp32 where bfloat16 is not in hardware
    agent = make_agent(cfg, state["action_dim"], dev, state.get("state_dim", 0))
    agent.load_state_dict(state["agent"])
    return Policy(agent, int(state["env_step"]))

