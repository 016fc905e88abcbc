"""Algorithm 1: random collection, model pretraining, then act and update per agent step."""

from __future__ import annotations

import json
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from slac import checkpoint, envs
from slac.agent import PolicyHistory, SLACAgent
from slac.config import Config, to_dict
from slac.evaluate import evaluate
from slac.logger import Logger, Progress
from slac.replay import Replay
from slac.tasks import get_task


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: no CUDA device is available (use auto or cpu)")
    return torch.device(name)


class Trainer:
    """Owns the run: environments, replay, agent, counters and logs. ``cfg`` must be resolved."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.spec = get_task(cfg.task)
        self.run_dir = Path(cfg.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.device = resolve_device(cfg.device)
        torch.manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        # Train and evaluation environments never share a seed.
        self.env = envs.make(cfg.task, cfg.seed, cfg.action_repeat, cfg.render_quality)
        self.eval_env = envs.make(cfg.task, cfg.seed + 1_000_000, cfg.action_repeat,
                                  cfg.render_quality)
        self.action_dim = self.env.action_dim
        self.replay = Replay(cfg.replay_capacity, self.action_dim, seed=cfg.seed)
        self.agent = SLACAgent(cfg, self.action_dim, self.device, self.spec.policy_std_scale)
        self.history = PolicyHistory(cfg.sequence_length, self.action_dim)
        self.env_step = self.agent_step = self.updates = 0
        self.episode_return, self.last_return = 0.0, float("nan")
        self.last_eval = float("nan")
        self._evals_done = 0
        self._last_eval_step = -1
        self._start = time.monotonic()
        self._window = {"t": time.monotonic(), "env_step": 0, "sums": {}, "n": 0}
        self._write_config()
        self.logger = Logger(self.run_dir)
        self.progress = Progress(f"[{cfg.task} s{cfg.seed}]")

    def _write_config(self) -> None:
        meta = {
            "config": to_dict(self.cfg),
            "action_dim": self.action_dim,
            "device": str(self.device),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "mujoco_gl": os.environ.get("MUJOCO_GL"),
        }
        (self.run_dir / "config.json").write_text(json.dumps(meta, indent=2) + "\n")

    # ------------------------------------------------------------------ environment
    def _begin_episode(self) -> None:
        obs = self.env.reset()
        self.replay.start_episode(obs)
        self.history.reset(obs)
        self.episode_return = 0.0

    def _random_action(self) -> np.ndarray:
        if self.spec.random_action == "tanh_normal":  # a = tanh(u), u ~ N(0, 2^2)
            return np.tanh(self.rng.normal(0.0, 2.0, self.action_dim)).astype(np.float32)
        return self.rng.uniform(-1.0, 1.0, self.action_dim).astype(np.float32)

    def _env_step(self, action: np.ndarray) -> None:
        step = self.env.step(action)
        self.replay.add(action, step.reward, step.obs, step.terminated)
        self.history.push(action, step.obs)
        self.env_step += step.env_steps
        self.agent_step += 1
        self.episode_return += step.reward
        if step.done:
            self.last_return = self.episode_return
            self._begin_episode()

    # ------------------------------------------------------------------ phases
    def collect_random(self) -> None:
        self._begin_episode()
        while self.env_step < self.cfg.random_steps:
            self._env_step(self._random_action())
            self.progress.update("random", self.env_step, self.cfg.random_steps)

    def pretrain(self) -> None:
        cfg = self.cfg
        for i in range(cfg.pretrain_updates):
            stats = self.agent.update_model(self.replay.sample(cfg.model_batch_size,
                                                               cfg.sequence_length))
            self._accumulate(stats)
            if (i + 1) % 500 == 0 or i + 1 == cfg.pretrain_updates:
                self._log_train("pretrain", i + 1)
            self.progress.update("pretrain", i + 1, cfg.pretrain_updates,
                                 _short(stats, ("model_loss", "kl")))

    def train(self) -> None:
        cfg = self.cfg
        while self.env_step < cfg.env_steps:
            self._env_step(self.agent.act(self.history.frames, self.history.actions))
            for _ in range(cfg.updates_per_step):
                stats = self.agent.update(self.replay.sample(cfg.batch_size, cfg.sequence_length))
                self.updates += 1
                self._accumulate(stats)
            if self.env_step // cfg.log_every > (self.env_step - 1) // cfg.log_every or \
                    self.env_step >= cfg.env_steps:
                self._log_train("train")
            self._maybe_evaluate()
            self.progress.update(
                "train", self.env_step, cfg.env_steps,
                f"return {self.last_return:.1f} eval {self.last_eval:.1f} alpha "
                f"{self.agent.alpha.item():.3g}",
            )

    def run(self) -> None:
        """The whole of Algorithm 1, then a final evaluation if the last step was not one."""
        cfg = self.cfg
        self.progress.message(
            f"run dir {self.run_dir} | device {self.device} | action repeat {cfg.action_repeat} | "
            f"decoder var {cfg.decoder_var} | MUJOCO_GL={os.environ.get('MUJOCO_GL')}"
        )
        try:
            self.collect_random()
            self.pretrain()
            self._maybe_evaluate()
            self.train()
            if self._evals_done == 0 or self._last_eval_step != self.env_step:
                self._evaluate()
            self._save()
            self.progress.message(
                f"done: {self.env_step} env steps in {_hms(time.monotonic() - self._start)}; "
                f"last eval {self.last_eval:.1f}"
            )
        finally:
            self.close()

    # ------------------------------------------------------------------ evaluation and logs
    def _maybe_evaluate(self) -> None:
        due = self.env_step // self.cfg.eval_every
        if due > self._evals_done:
            self._evaluate()
            self._evals_done = due

    def _evaluate(self) -> None:
        self.progress.message(f"evaluating at {self.env_step} env steps ...")
        returns = evaluate(self.agent, self.eval_env, self.cfg.eval_episodes)
        self.last_eval = float(returns.mean())
        self._last_eval_step = self.env_step
        self.logger.log_eval({
            "env_step": self.env_step,
            "return_mean": float(returns.mean()),
            "return_std": float(returns.std()),
            "return_min": float(returns.min()),
            "return_max": float(returns.max()),
            "episodes": len(returns),
            "agent_step": self.agent_step,
            "updates": self.updates,
            "wall_time": time.monotonic() - self._start,
        })
        self.progress.message(
            f"eval at {self.env_step}: return {returns.mean():.1f} +- {returns.std():.1f}"
        )
        self._save()

    def _save(self) -> None:
        checkpoint.save_agent(self.run_dir, self.agent, {
            "env_step": self.env_step, "action_dim": self.action_dim, "config": to_dict(self.cfg),
        })

    def _accumulate(self, stats: dict[str, torch.Tensor]) -> None:
        sums = self._window["sums"]
        for k, v in stats.items():
            sums[k] = sums.get(k, 0.0) + v
        self._window["n"] += 1

    def _log_train(self, phase: str, updates: int | None = None) -> None:
        w, now = self._window, time.monotonic()
        dt = max(now - w["t"], 1e-9)
        upd = self.updates if updates is None else updates
        row = {k: float(v) / max(w["n"], 1) for k, v in w["sums"].items()}
        for k, v in row.items():
            if not math.isfinite(v):
                raise FloatingPointError(f"{k} is {v} at env step {self.env_step} ({phase})")
        row.update({
            "env_step": self.env_step, "agent_step": self.agent_step, "updates": upd,
            "phase": phase, "wall_time": now - self._start,
            "env_steps_per_s": (self.env_step - w["env_step"]) / dt,
            "updates_per_s": w["n"] / dt,
            "episode_return": self.last_return,
        })
        self.logger.log_train(row)
        self._window = {"t": now, "env_step": self.env_step, "sums": {}, "n": 0}

    def close(self) -> None:
        self.logger.close()
        self.env.close()
        self.eval_env.close()


def _short(stats: dict, keys: tuple[str, ...]) -> str:
    return " ".join(f"{k} {float(stats[k]):.4g}" for k in keys if k in stats)


def _hms(seconds: float) -> str:
    h, rem = divmod(int(seconds), 3600)
    return f"{h}h{rem // 60:02d}m{rem % 60:02d}s"
