"""MuJoCo pieces every suite shares: the persistent renderer, action rescaling, full state."""

from __future__ import annotations

import mujoco
import numpy as np

_FULL_STATE = mujoco.mjtState.mjSTATE_INTEGRATION


def make_renderer(model: mujoco.MjModel, size: int, quality: str) -> mujoco.Renderer:
    """A renderer kept for the environment's life; ``fast`` turns shadows and reflections off."""
    renderer = mujoco.Renderer(model, size, size)
    if quality == "fast":
        renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
        renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
    return renderer


def rescale(action: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """An action in [-1, 1] (clipped) to the environment's bounds."""
    action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
    return low + (action + 1.0) * 0.5 * (high - low)


def get_physics(model: mujoco.MjModel, data: mujoco.MjData) -> np.ndarray:
    """Everything the simulator integrates from (positions, velocities, warm start, ...)."""
    state = np.empty(mujoco.mj_stateSize(model, _FULL_STATE))
    mujoco.mj_getState(model, data, state, _FULL_STATE)
    return state


def set_physics(model: mujoco.MjModel, data: mujoco.MjData, state: np.ndarray) -> None:
    mujoco.mj_setState(model, data, state, _FULL_STATE)
    mujoco.mj_forward(model, data)  # derived quantities, as after a step
    mujoco.mj_setState(model, data, state, _FULL_STATE)  # and the warm start as saved
