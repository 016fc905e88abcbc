"""Gymnasium environments from pixels: MuJoCo v5 tasks (the paper's Gym benchmark, whose v2
versions no longer install) and any environment that renders ``rgb_array`` with Box actions.

MuJoCo-based environments are rendered by our own persistent ``mujoco.Renderer`` with a tracking
camera, as the DeepMind Control module does: Gymnasium's default cameras leave Walker2d and Hopper
a few pixels tall at 64x64 (HalfCheetah and Ant are not even tracked), and a second renderer of
Gymnasium's own in one process with a dm_control one corrupts frames under EGL. Other
environments use their own ``render()``, resized to 64x64.
"""

from __future__ import annotations

import os

import mujoco
import numpy as np

from slac.envs import EnvError, Step, mj

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame-based renderers, headless

# Tracking cameras for the paper's tasks (body followed, distance, elevation), chosen so the body
# fills a useful part of a 64x64 frame.
CAMERAS: dict[str, dict] = {
    "HalfCheetah-v5": {"trackbodyid": 1, "distance": 3.0, "elevation": -15.0},
    "Walker2d-v5": {"trackbodyid": 1, "distance": 3.0, "elevation": -10.0},
    "Hopper-v5": {"trackbodyid": 1, "distance": 2.8, "elevation": -10.0},
    "Ant-v5": {"trackbodyid": 1, "distance": 3.5, "elevation": -35.0},
}


class GymError(EnvError):
    pass


class GymEnv:
    def __init__(self, env_id: str, seed: int, action_repeat: int, quality: str, size: int,
                 observation: str = "pixels"):
        import gymnasium as gym

        try:
            spec = gym.spec(env_id)
        except gym.error.Error as e:
            raise GymError(f"unknown Gymnasium environment {env_id!r} ({e})") from None
        del spec
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an unsupported render mode is checked below
            self._env = gym.make(env_id, render_mode="rgb_array")
        if "rgb_array" not in self._env.metadata.get("render_modes", []):
            self._env.close()
            raise GymError(f"gym:{env_id} cannot render rgb_array frames; SLAC learns from pixels")
        space = self._env.action_space
        if not isinstance(space, gym.spaces.Box):
            self._env.close()
            raise GymError(f"gym:{env_id} has a {type(space).__name__} action space; "
                           "SLAC needs continuous (Box) actions")
        self.env_id, self.size, self.seed = env_id, size, seed
        self._low = space.low.astype(np.float64)
        self._high = space.high.astype(np.float64)
        self.action_dim = int(np.prod(space.shape))
        self.action_repeat = action_repeat
        self._seeded = False
        inner = self._env.unwrapped
        self._mujoco = hasattr(inner, "model") and hasattr(inner, "data") and \
            isinstance(inner.model, mujoco.MjModel)
        self._renderer = None
        self._state = observation == "state"
        if self._state:  # the environment's own observation vector
            obs_space = self._env.observation_space
            if not isinstance(obs_space, gym.spaces.Box):
                self._env.close()
                raise GymError(f"gym:{env_id} has a {type(obs_space).__name__} observation "
                               "space; state SAC needs a Box of numbers")
            self.obs_shape, self.obs_dtype = (int(np.prod(obs_space.shape)),), np.float32
            self._last_obs = np.zeros(self.obs_shape, np.float32)
            return
        self.obs_shape, self.obs_dtype = (size, size, 3), np.uint8
        if self._mujoco:
            self._renderer = mj.make_renderer(inner.model, size, quality)
            self._camera = self._make_camera(env_id, inner)
        self._last_obs = np.zeros((3, size, size), np.uint8)

    @staticmethod
    def _make_camera(env_id: str, inner) -> mujoco.MjvCamera:
        cfg = CAMERAS.get(env_id)
        if cfg is None:  # generic: the environment's own default camera settings
            cfg = dict(getattr(getattr(inner, "mujoco_renderer", None), "default_cam_config",
                               None) or {})
        cam = mujoco.MjvCamera()
        mujoco.mjv_defaultFreeCamera(inner.model, cam)
        if "trackbodyid" in cfg and cfg["trackbodyid"] >= 0:
            cam.type = mujoco.mjtCamera.mjCAMERA_TRACKING
            cam.trackbodyid = int(cfg["trackbodyid"])
        for key in ("distance", "elevation", "azimuth"):
            if key in cfg:
                setattr(cam, key, float(cfg[key]))
        if "lookat" in cfg:
            cam.lookat[:] = cfg["lookat"]
        return cam

    def _observe(self, obs: np.ndarray) -> np.ndarray:
        if self._state:
            return np.asarray(obs, np.float32).ravel()
        if self._renderer is None:
            from PIL import Image

            frame = Image.fromarray(self._env.render()).resize((self.size, self.size),
                                                               Image.Resampling.BILINEAR)
            return np.ascontiguousarray(np.asarray(frame).transpose(2, 0, 1))
        inner = self._env.unwrapped
        self._renderer.update_scene(inner.data, camera=self._camera)
        return np.ascontiguousarray(self._renderer.render().transpose(2, 0, 1))

    def reset(self) -> np.ndarray:
        if not self._seeded:  # seed once; later resets continue the environment's generator
            obs, _ = self._env.reset(seed=self.seed)
            self._env.action_space.seed(self.seed)
            self._seeded = True
        else:
            obs, _ = self._env.reset()
        self._last_obs = self._observe(obs)
        return self._last_obs

    def step(self, action: np.ndarray) -> Step:
        space = self._env.action_space
        action = mj.rescale(action, self._low, self._high).reshape(space.shape).astype(space.dtype)
        reward, steps = 0.0, 0
        terminated = truncated = False
        for _ in range(self.action_repeat):  # stops early when the episode ends inside
            obs, r, terminated, truncated, _ = self._env.step(action)
            reward += float(r)
            steps += 1
            if terminated or truncated:
                break
        self._last_obs = self._observe(obs)
        return Step(self._last_obs, reward, bool(terminated), bool(truncated and not terminated),
                    steps)

    def get_state(self) -> dict:
        inner = self._env.unwrapped
        state = {"np_random": inner.np_random.bit_generator.state, "seeded": self._seeded,
                 "elapsed": _time_limit(self._env)._elapsed_steps, "last_obs": self._last_obs,
                 "exact": self._mujoco}
        if self._mujoco:
            state["physics"] = mj.get_physics(inner.model, inner.data)
        return state

    def set_state(self, state: dict) -> None:
        """Exact for MuJoCo environments; others restart their episode (``restart`` is set)."""
        inner = self._env.unwrapped
        self._seeded = state["seeded"]
        if self._seeded and "physics" not in state:
            self._env.reset()
        if "physics" in state:
            mj.set_physics(inner.model, inner.data, state["physics"])
            _time_limit(self._env)._elapsed_steps = state["elapsed"]
        inner.np_random.bit_generator.state = state["np_random"]
        self._last_obs = state["last_obs"]

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self._env.close()


def _time_limit(env):
    """The TimeLimit wrapper (it counts the steps of an episode), or the env if there is none."""
    import gymnasium as gym

    while isinstance(env, gym.Wrapper):
        if isinstance(env, gym.wrappers.TimeLimit):
            return env
        env = env.env
    return env
