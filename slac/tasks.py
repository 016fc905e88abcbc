"""Per-task defaults: the one place that knows a task's action repeat, decoder variance and
random-data protocol (paper Appendix C, Table 1; decoder variances are the published best)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskSpec:
    suite: str  # "dmc" (one module per suite under slac.envs)
    name: str  # the suite's own name, e.g. ("cheetah", "run")
    action_repeat: int
    decoder_var: float
    episode_steps: int  # environment (simulator) steps per episode
    random_episodes: int = 10  # DMC: 10 episodes of a = tanh(u), u ~ N(0, 2^2)
    random_action: str = "tanh_normal"
    policy_std_scale: float = 2.0  # DMC: the pre-tanh policy scale starts scaled by 2

    @property
    def random_steps(self) -> int:
        """Environment steps of random collection by default."""
        return self.random_episodes * self.episode_steps


TASKS: dict[str, TaskSpec] = {
    "cheetah-run": TaskSpec("dmc", "cheetah/run", 4, 0.1, 1000),
    "walker-walk": TaskSpec("dmc", "walker/walk", 2, 0.4, 1000),
    "ball_in_cup-catch": TaskSpec("dmc", "ball_in_cup/catch", 4, 0.04, 1000),
    "finger-spin": TaskSpec("dmc", "finger/spin", 1, 0.1, 1000),
    "cartpole-swingup": TaskSpec("dmc", "cartpole/swingup", 4, 0.1, 1000),
    "reacher-easy": TaskSpec("dmc", "reacher/easy", 4, 0.01, 1000),
}


class UnknownTaskError(ValueError):
    pass


def get_task(task: str) -> TaskSpec:
    try:
        return TASKS[task]
    except KeyError:
        raise UnknownTaskError(
            f"unknown task {task!r}; choose from: {', '.join(TASKS)}"
        ) from None
