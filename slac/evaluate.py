"""Evaluation: episodes of the same stochastic policy used for collection (Appendix C)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from slac.envs import PixelEnv
from slac.policy import Policy


class EvaluationStopped(Exception):
    """``should_stop()`` became true during an evaluation; its episodes are discarded."""


@dataclass
class Episode:
    total_return: float
    env_steps: int
    frames: np.ndarray | None = None  # (T+1, H, W, 3) uint8 when recorded
    actions: np.ndarray | None = None  # (T, A)


def run_episode(policy: Policy, env: PixelEnv, record: bool = False,
                max_steps: int | None = None,
                should_stop: Callable[[], bool] | None = None) -> Episode:
    """One episode (or its first ``max_steps`` agent steps) with the stochastic policy;
    ``EvaluationStopped`` as soon as ``should_stop()`` is true."""
    obs = env.reset()
    policy.reset(obs)
    frames, actions = [obs], []
    total, steps = 0.0, 0
    while max_steps is None or len(actions) < max_steps:
        if should_stop is not None and should_stop():
            raise EvaluationStopped
        action = policy.act(obs)
        step = env.step(action)
        obs = step.obs
        total += step.reward
        steps += step.env_steps
        if record:
            frames.append(obs)
            actions.append(action)
        if step.done:
            break
    if not record:
        return Episode(total, steps)
    hwc = np.stack(frames).transpose(0, 2, 3, 1)
    return Episode(total, steps, np.ascontiguousarray(hwc), np.stack(actions).astype(np.float32))


def evaluate(policy: Policy, env: PixelEnv, episodes: int, record_first: bool = False,
             should_stop: Callable[[], bool] | None = None
             ) -> tuple[np.ndarray, Episode | None]:
    """Returns of ``episodes`` episodes, and the first one's frames and actions if asked."""
    runs = [run_episode(policy, env, record=record_first and i == 0, should_stop=should_stop)
            for i in range(episodes)]
    return np.array([r.total_return for r in runs]), (runs[0] if record_first else None)


def summary(returns: np.ndarray) -> dict[str, float | int]:
    """The columns of ``eval.csv`` that describe the returns of one evaluation."""
    return {
        "return_mean": float(returns.mean()),
        "return_std": float(returns.std()),
        "return_min": float(returns.min()),
        "return_max": float(returns.max()),
        "episodes": len(returns),
    }
