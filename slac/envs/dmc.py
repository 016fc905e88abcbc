"""DeepMind Control Suite from pixels (or, for the state-SAC baseline, from its state vector).

One persistent ``mujoco.Renderer`` per environment renders camera 0 once per agent step (only
the last frame of an action repeat is observed), unlike ``physics.render``, which builds a
scene each call.
"""

from __future__ import annotations

import numpy as np
from absl import logging as absl_logging
from dm_control import suite
from dm_control.rl.control import PhysicsError

from slac.envs import Step, mj

absl_logging.set_verbosity(absl_logging.ERROR)  # dm_control's deprecation chatter


class DMCEnv:
    def __init__(self, name: str, seed: int, action_repeat: int, quality: str, size: int,
                 observation: str = "pixels"):
        domain, task = name.split("/")
        self._env = suite.load(domain, task, task_kwargs={"random": seed})
        spec = self._env.action_spec()
        self._low, self._high = spec.minimum.astype(np.float64), spec.maximum.astype(np.float64)
        self.action_dim = int(spec.shape[0])
        self.action_repeat = action_repeat
        physics = self._env.physics
        self._renderer = None
        if observation == "state":  # the suite's own observation vector, flattened
            dim = sum(int(np.prod(s.shape)) for s in self._env.observation_spec().values())
            self.obs_shape, self.obs_dtype = (dim,), np.float32
            self._last_obs = np.zeros(dim, np.float32)
        else:
            self._renderer = mj.make_renderer(physics.model.ptr, size, quality)
            self.obs_shape, self.obs_dtype = (size, size, 3), np.uint8
            self._last_obs = np.zeros((3, size, size), np.uint8)

    def _observe(self, time_step) -> np.ndarray:
        if self._renderer is None:
            return np.concatenate([np.asarray(v, np.float32).ravel()
                                   for v in time_step.observation.values()])
        physics = self._env.physics
        self._renderer.update_scene(physics.data.ptr, camera=0)
        return np.ascontiguousarray(self._renderer.render().transpose(2, 0, 1))

    def reset(self) -> np.ndarray:
        self._last_obs = self._observe(self._env.reset())
        return self._last_obs

    def step(self, action: np.ndarray) -> Step:
        action = mj.rescale(action, self._low, self._high)
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
        self._last_obs = self._observe(time_step)
        return Step(self._last_obs, reward, terminated, last and not terminated, steps)

    def get_state(self) -> dict:
        """Everything that decides the future of this environment, mid-episode included."""
        physics = self._env.physics
        return {
            "physics": mj.get_physics(physics.model.ptr, physics.data.ptr),
            "step_count": self._env._step_count,
            "reset_next_step": self._env._reset_next_step,
            "task_random": self._env.task.random.get_state(),
            "last_obs": self._last_obs,
            "exact": True,
        }

    def set_state(self, state: dict) -> None:
        physics = self._env.physics
        mj.set_physics(physics.model.ptr, physics.data.ptr, state["physics"])
        self._env._step_count = state["step_count"]
        self._env._reset_next_step = state["reset_next_step"]
        self._env.task.random.set_state(state["task_random"])
        self._last_obs = state["last_obs"]

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
