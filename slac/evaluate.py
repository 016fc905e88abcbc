"""Evaluation: episodes of the same stochastic policy used for collection (Appendix C)."""

from __future__ import annotations

import numpy as np

from slac.agent import PolicyHistory, SLACAgent
from slac.envs import PixelEnv


def run_episode(agent: SLACAgent, env: PixelEnv, on_frame=None) -> tuple[float, int]:
    """One episode with the stochastic policy; returns (return, environment steps)."""
    history = PolicyHistory(agent.cfg.sequence_length, agent.action_dim)
    obs = env.reset()
    history.reset(obs)
    if on_frame is not None:
        on_frame(obs)
    total, steps = 0.0, 0
    while True:
        action = agent.act(history.frames, history.actions)
        step = env.step(action)
        total += step.reward
        steps += step.env_steps
        history.push(action, step.obs)
        if on_frame is not None:
            on_frame(step.obs)
        if step.done:
            return total, steps


def evaluate(agent: SLACAgent, env: PixelEnv, episodes: int) -> np.ndarray:
    """Returns of ``episodes`` episodes."""
    return np.array([run_episode(agent, env)[0] for _ in range(episodes)])
