"""Evaluation: episodes of the same stochastic policy used for collection (Appendix C)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from slac.agent import PolicyHistory, SLACAgent
from slac.envs import PixelEnv


@dataclass
class Episode:
    total_return: float
    env_steps: int
    frames: np.ndarray | None = None  # (T+1, H, W, 3) uint8 when recorded
    actions: np.ndarray | None = None  # (T, A)


def run_episode(agent: SLACAgent, env: PixelEnv, record: bool = False,
                max_steps: int | None = None) -> Episode:
    """One episode (or its first ``max_steps`` agent steps) with the stochastic policy."""
    history = PolicyHistory(agent.cfg.sequence_length, agent.action_dim)
    obs = env.reset()
    history.reset(obs)
    frames, actions = [history.frames[-1]], []
    total, steps = 0.0, 0
    while max_steps is None or len(actions) < max_steps:
        action = agent.act(history.frames, history.actions)
        step = env.step(action)
        total += step.reward
        steps += step.env_steps
        history.push(action, step.obs)
        if record:
            frames.append(history.frames[-1])
            actions.append(action)
        if step.done:
            break
    if not record:
        return Episode(total, steps)
    return Episode(total, steps, np.stack(frames), np.stack(actions).astype(np.float32))


def evaluate(agent: SLACAgent, env: PixelEnv, episodes: int,
             record_first: bool = False) -> tuple[np.ndarray, Episode | None]:
    """Returns of ``episodes`` episodes, and the first one's frames and actions if asked."""
    runs = [run_episode(agent, env, record=record_first and i == 0) for i in range(episodes)]
    return np.array([r.total_return for r in runs]), (runs[0] if record_first else None)
