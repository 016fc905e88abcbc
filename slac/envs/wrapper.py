"""Any task of ``slac`` as a standard ``gymnasium.Env``: ``slac.make_env(task, seed)``.

Observations are the frames SLAC learns from, (64, 64, 3) uint8; actions are in [-1, 1] and
rescaled to the task's range; the task's action repeat is applied inside ``step``, whose reward
is the sum over the repeats; terminated and truncated are kept apart (a time limit or a physics
error truncates). ``info["env_steps"]`` counts the simulator steps a step took.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from slac import envs


class GymnasiumEnv(gym.Env):
    """A ``slac`` task behind Gymnasium's API (``reset`` -> ``(obs, info)``, ``step`` -> the
    five-tuple); ``render()`` returns the last observation."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, task: str, seed: int = 0, action_repeat: int | None = None,
                 render_quality: str = "paper", size: int = 64):
        self.task, self.seed_, self.size = task, seed, size
        self.action_repeat_arg, self.render_quality = action_repeat, render_quality
        self.env = envs.make(task, seed, action_repeat, render_quality, size)
        self.action_repeat = self.env.action_repeat
        self.render_mode = "rgb_array"
        self.observation_space = gym.spaces.Box(0, 255, (size, size, 3), np.uint8, seed=seed)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (self.env.action_dim,), np.float32,
                                           seed=seed)
        self.last_obs: np.ndarray | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        """A new episode; with ``seed``, the task is rebuilt with that seed first (the same seed
        gives the same episodes)."""
        super().reset(seed=seed)
        if seed is not None:
            self.env.close()
            self.seed_ = seed
            self.env = envs.make(self.task, seed, self.action_repeat_arg, self.render_quality,
                                 self.size)
        self.last_obs = np.ascontiguousarray(self.env.reset().transpose(1, 2, 0))
        return self.last_obs, {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self.last_obs is None:
            raise RuntimeError("call reset() before step()")
        a = np.asarray(action, np.float32).reshape(self.action_space.shape)
        s = self.env.step(np.clip(a, -1.0, 1.0))
        self.last_obs = np.ascontiguousarray(s.obs.transpose(1, 2, 0))
        info: dict[str, Any] = {"env_steps": s.env_steps}
        if s.physics_error:
            info["physics_error"] = s.physics_error
        return self.last_obs, float(s.reward), bool(s.terminated), bool(s.truncated), info

    def render(self) -> np.ndarray | None:
        return self.last_obs

    def close(self) -> None:
        self.env.close()


def make_env(task: str, seed: int = 0, action_repeat: int | None = None,
             render_quality: str = "paper") -> GymnasiumEnv:
    """``task`` (see ``slac tasks``: ``cheetah-run``, ``gym:Hopper-v5``, ...) as a
    ``gymnasium.Env`` seeded with ``seed``; ``action_repeat`` defaults to the paper's."""
    return GymnasiumEnv(task, seed, action_repeat, render_quality)
