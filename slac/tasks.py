"""Per-task defaults: the one place that knows a task's action repeat, decoder variance and
data protocol (paper Appendix C, Table 1; DMC decoder variances are the published best).

DeepMind Control tasks are named ``domain-task``; Gymnasium environments ``gym:<id>``: the
paper's four MuJoCo tasks with their own action repeats, any other id with the Gym protocol and
action repeat 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TaskSpec:
    suite: str  # "dmc" or "gym" (one module per suite under slac.envs)
    name: str  # the suite's own name, e.g. "cheetah/run" or "Hopper-v5"
    action_repeat: int
    decoder_var: float
    random_steps: int  # environment steps of random data before learning
    random_action: str  # "tanh_normal": a = tanh(u), u ~ N(0, 2^2); "uniform": U(-1, 1)
    pretrain_updates: int
    updates_per_step: int
    policy_std_scale: float  # DMC: the pre-tanh policy scale starts scaled by 2


def dmc(name: str, repeat: int, decoder_var: float) -> TaskSpec:
    # 10 random episodes of 1000 steps, 50k pretraining updates, 1 update per step.
    return TaskSpec("dmc", name, repeat, decoder_var, 10 * 1000, "tanh_normal", 50_000, 1, 2.0)


def gym(name: str, repeat: int = 1) -> TaskSpec:
    # 10,000 agent steps of uniform actions, 100k pretraining updates, 3 updates per step.
    return TaskSpec("gym", name, repeat, 0.1, 10_000 * repeat, "uniform", 100_000, 3, 1.0)


TASKS: dict[str, TaskSpec] = {
    "cheetah-run": dmc("cheetah/run", 4, 0.1),
    "walker-walk": dmc("walker/walk", 2, 0.4),
    "ball_in_cup-catch": dmc("ball_in_cup/catch", 4, 0.04),
    "finger-spin": dmc("finger/spin", 1, 0.1),
    "cartpole-swingup": dmc("cartpole/swingup", 4, 0.1),
    "reacher-easy": dmc("reacher/easy", 4, 0.01),
    "gym:HalfCheetah-v5": gym("HalfCheetah-v5", 1),
    "gym:Walker2d-v5": gym("Walker2d-v5", 4),
    "gym:Hopper-v5": gym("Hopper-v5", 2),
    "gym:Ant-v5": gym("Ant-v5", 4),
}


class UnknownTaskError(ValueError):
    pass


def get_task(task: str) -> TaskSpec:
    if task in TASKS:
        return TASKS[task]
    if task.startswith("gym:") and len(task) > 4:
        return gym(task[4:])  # any Gymnasium id: checked when the environment is made
    raise UnknownTaskError(
        f"unknown task {task!r}; choose from: {', '.join(TASKS)}, or gym:<Gymnasium id>"
    )


def random_action(kind: str, rng: np.random.Generator, action_dim: int) -> np.ndarray:
    """An action of the random-data phase by the task's ``random_action`` protocol."""
    if kind == "tanh_normal":  # DMC: a = tanh(u), u ~ N(0, 2^2)
        return np.tanh(rng.normal(0.0, 2.0, action_dim)).astype(np.float32)
    return rng.uniform(-1.0, 1.0, action_dim).astype(np.float32)  # Gym: uniform
