"""DeepMind Control Suite from pixels.

One persistent ``mujoco.Renderer`` per environment renders camera 0 once per agent step (only
the last frame of an action repeat is observed); it is ~2x faster than ``physics.render``, which
builds a scene each call.
"""

from __future__ import annotations

import mujoco
import numpy as np
from absl import logging as absl_logging
from dm_control import suite
from dm_control.rl.control import PhysicsError

from slac.envs import Step

absl_logging.set_verbosity(absl_logging.ERROR)  # dm_control's deprecation chatter
_FULL_STATE = mujoco.mjtState.mjSTATE_INTEGRATION


class DMCEnv:
    def __init__(self, name: str, seed: int, action_repeat: int, quality: str, size: int):
        domain, task = name.split("/")
        self._env = suite.load(domain, task, task_kwargs={"random": seed})
        spec = self._env.action_spec()
        self._low, self._high = spec.minimum.astype(np.float64), spec.maximum.astype(np.float64)
        self.action_dim = int(spec.shape[0])
        self.action_repeat = action_repeat
        physics = self._env.physics
        self._renderer = mujoco.Renderer(physics.model.ptr, size, size)
        self._last_obs = np.zeros((3, size, size), np.uint8)
        if quality == "fast":
            self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
            self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0

    def _render(self) -> np.ndarray:
        physics = self._env.physics
        self._renderer.update_scene(physics.data.ptr, camera=0)
        return np.ascontiguousarray(self._renderer.render().transpose(2, 0, 1))

    def reset(self) -> np.ndarray:
        self._env.reset()
        self._last_obs = self._render()
        return self._last_obs

    def step(self, action: np.ndarray) -> Step:
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        action = self._low + (action + 1.0) * 0.5 * (self._high - self._low)
        reward, steps, time_step = 0.0, 0, None
        for _ in range(self.action_repeat):
            try:
                time_step = self._env.step(action)
            except PhysicsError as e:  # unstable simulation: end the episode, keep training
                return Step(self._last_obs, reward, False, True, steps + 1, physics_error=str(e))
            reward += time_step.reward or 0.0
            steps += 1
            if time_step.last():
                break
        last = time_step.last()
        terminated = bool(last and time_step.discount == 0.0)
        self._last_obs = self._render()
        return Step(self._last_obs, reward, terminated, last and not terminated, steps)

    def get_state(self) -> dict:
        """Everything that decides the future of this environment, mid-episode included."""
        model, data = self._env.physics.model.ptr, self._env.physics.data.ptr
        physics = np.empty(mujoco.mj_stateSize(model, _FULL_STATE))
        mujoco.mj_getState(model, data, physics, _FULL_STATE)
        return {
            "physics": physics,
            "step_count": self._env._step_count,
            "reset_next_step": self._env._reset_next_step,
            "task_random": self._env.task.random.get_state(),
            "last_obs": self._last_obs,
            "exact": True,
        }

    def set_state(self, state: dict) -> None:
        model, data = self._env.physics.model.ptr, self._env.physics.data.ptr
        mujoco.mj_setState(model, data, state["physics"], _FULL_STATE)
        mujoco.mj_forward(model, data)  # derived quantities, as after a step
        mujoco.mj_setState(model, data, state["physics"], _FULL_STATE)  # warm start as saved
        self._env._step_count = state["step_count"]
        self._env._reset_next_step = state["reset_next_step"]
        self._env.task.random.set_state(state["task_random"])
        self._last_obs = state["last_obs"]

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
