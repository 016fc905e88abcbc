"""Environments that SLAC learns from: 64x64 RGB frames, actions in [-1, 1], action repeat.

Every suite module returns a :class:`PixelEnv`. Steps are counted in unmodified simulator steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from slac import gl
from slac.tasks import get_task

gl.configure()  # before anything imports mujoco

RENDER_QUALITIES = ("paper", "fast")


class EnvError(ValueError):
    """An environment that cannot be used (unknown, no pixels, discrete actions): bad input."""


OBSERVATIONS = ("pixels", "state")


@dataclass
class Step:
    obs: np.ndarray  # uint8 (3, H, W): the frame after the last repeated step (or the float32
    # state vector, for an environment made with observation="state")
    reward: float  # summed over the repeats actually taken
    terminated: bool  # the episode ended in a terminal state: no bootstrapping
    truncated: bool  # the time limit ended it: bootstrap through it
    env_steps: int  # simulator steps taken by this agent step
    physics_error: str = ""  # the simulator failed: the episode was cut short here

    @property
    def done(self) -> bool:
        return self.terminated or self.truncated


class PixelEnv(Protocol):
    action_dim: int
    action_repeat: int
    obs_shape: tuple[int, ...]  # as the replay stores an observation: (H, W, 3) or (S,)
    obs_dtype: type

    def reset(self) -> np.ndarray: ...
    def step(self, action: np.ndarray) -> Step: ...
    def get_state(self) -> dict: ...
    def set_state(self, state: dict) -> None: ...
    def close(self) -> None: ...


def make(
    task: str,
    seed: int,
    action_repeat: int | None = None,
    render_quality: str = "paper",
    size: int = 64,
    observation: str = "pixels",
) -> PixelEnv:
    """Build ``task`` seeded with ``seed``; ``action_repeat`` defaults to the paper's.
    ``observation="state"``: the simulator's state vector instead of frames (nothing rendered),
    for the state-SAC baseline."""
    if observation not in OBSERVATIONS:
        raise ValueError(f"unknown observation {observation!r}")
    spec = get_task(task)
    if render_quality not in RENDER_QUALITIES:
        raise ValueError(
            f"unknown render quality {render_quality!r}; choose from: {', '.join(RENDER_QUALITIES)}"
        )
    repeat = spec.action_repeat if action_repeat is None else action_repeat
    if repeat < 1:
        raise ValueError(f"action repeat must be positive, got {repeat}")
    if spec.suite == "dmc":
        from slac.envs.dmc import DMCEnv

        return DMCEnv(spec.name, seed, repeat, render_quality, size, observation)
    if spec.suite == "gym":
        from slac.envs.gym import GymEnv

        return GymEnv(spec.name, seed, repeat, render_quality, size, observation)
    raise ValueError(f"unknown suite {spec.suite!r}")
