"""Algorithm 1 as a resumable run: random collection, model pretraining, then per agent step one
environment step and ``updates_per_step`` updates; evaluation, logs and checkpoints on the way.

Everything that decides the future of a run is in its checkpoint (networks, optimisers, every
random generator, the environments mid-episode, counters, log positions) or in its memory-mapped
replay, so rerunning the same command on the same run directory continues it exactly.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import torch

from slac import checkpoint, envs, runtime
from slac.agent import PolicyHistory, SLACAgent
from slac.config import Config, to_dict
from slac.evaluate import evaluate
from slac.logger import Logger, Progress
from slac.replay import Replay
from slac.tasks import get_task


class NonFiniteLoss(FloatingPointError):
    pass


class _Stop(Exception):
    pass


ACTIVE_UNIT_FRAMES = 256  # frames of the replay the active_z1 column of train.csv is measured on


def random_action(kind: str, rng: np.random.Generator, action_dim: int) -> np.ndarray:
    """An action of the random-data phase: the task's ``random_action`` protocol."""
    if kind == "tanh_normal":  # DMC: a = tanh(u), u ~ N(0, 2^2)
        return np.tanh(rng.normal(0.0, 2.0, action_dim)).astype(np.float32)
    return rng.uniform(-1.0, 1.0, action_dim).astype(np.float32)  # Gym: uniform


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: no CUDA device is available (use auto or cpu)")
    return torch.device(name)


def replay_margin(cfg: Config) -> int:
    """Slots written in two checkpoint intervals at most (a step writes <= 2 frames)."""
    return 2 * (2 * math.ceil(cfg.checkpoint_every / cfg.action_repeat) + 2)


class Trainer:
    """Owns a run: environments, replay, agent, counters, logs. ``cfg`` must be resolved;
    ``resume`` is a checkpoint of the same run."""

    VIZ_STEPS = 16  # steps of the model-prediction grid logged at each evaluation

    def __init__(self, cfg: Config, resume: dict | None = None):
        self.cfg = cfg
        self.spec = get_task(cfg.task)
        self.run_dir = Path(cfg.run_dir)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.device = resolve_device(cfg.device)
        if self.device.type == "cpu":
            runtime.keep_freed_memory()
        torch.manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)  # random-phase actions
        # Train and evaluation environments never share a seed.
        self.env = envs.make(cfg.task, cfg.seed, cfg.action_repeat, cfg.render_quality)
        self.eval_env = envs.make(cfg.task, cfg.seed + 1_000_000, cfg.action_repeat,
                                  cfg.render_quality)
        self.action_dim = self.env.action_dim
        self.run_dir.mkdir(parents=True, exist_ok=True)  # after the environments proved usable
        if resume is None:
            for stale in ("replay", "tb", checkpoint.CHECKPOINT_DIR):
                shutil.rmtree(self.run_dir / stale, ignore_errors=True)
        self.replay = Replay(cfg.replay_capacity, self.action_dim, seed=cfg.seed,
                             directory=self.run_dir / "replay", margin=replay_margin(cfg))
        self.agent = SLACAgent(cfg, self.action_dim, self.device, self.spec.policy_std_scale)
        self.history = PolicyHistory(cfg.sequence_length, self.action_dim)
        self.phase = "random"
        self.env_step = self.agent_step = self.updates = self.pretrained = 0
        self.in_episode = False
        self.episode_return, self.last_return = 0.0, float("nan")
        self.last_eval = float("nan")
        self.evals_done = self.checkpoints_done = 0
        self.last_eval_step = -1
        self.physics_errors = 0
        self.wall_offset = 0.0
        self._sums: dict[str, torch.Tensor] = {}
        self._n = 0
        self._last_log_step = 0
        if resume is not None:
            self._restore(resume)
        self._write_config()  # the resolved config as this session runs it
        self._session_start = time.monotonic()
        self._window_t, self._window_env_step = time.monotonic(), self.env_step
        self.logger = Logger(self.run_dir, resume["logs"] if resume else None)
        self.progress = Progress(f"[{cfg.task} s{cfg.seed}]")
        self._stop_signal = 0

    @property
    def wall_time(self) -> float:
        return self.wall_offset + time.monotonic() - self._session_start

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
        self.in_episode = True

    def _random_action(self) -> np.ndarray:
        return random_action(self.spec.random_action, self.rng, self.action_dim)

    def _env_step(self, action: np.ndarray) -> None:
        step = self.env.step(action)
        self.replay.add(action, step.reward, step.obs, step.terminated)
        self.history.push(action, step.obs)
        self.env_step += step.env_steps
        self.agent_step += 1
        self.episode_return += step.reward
        if step.physics_error:
            self.physics_errors += 1
            self.progress.message(f"physics error at env step {self.env_step} "
                                  f"({step.physics_error}); episode ended, training goes on")
        if step.done:
            self.last_return = self.episode_return
            self.in_episode = False

    # ------------------------------------------------------------------ phases
    def collect_random(self) -> None:
        while self.env_step < self.cfg.random_steps:
            if not self.in_episode:
                self._begin_episode()
            self._env_step(self._random_action())
            self._after_env_step()
            self.progress.update("random", self.env_step, self.cfg.random_steps)
        self.phase = "pretrain"

    def pretrain(self) -> None:
        cfg = self.cfg
        self.agent.set_model_lr(cfg.pretraining_model_lr)
        while self.pretrained < cfg.pretrain_updates:
            batch = self.replay.sample(cfg.model_batch_size, cfg.sequence_length)
            self._accumulate(self.agent.update_model(batch))
            self.pretrained += 1
            if self.pretrained % 500 == 0 or self.pretrained == cfg.pretrain_updates:
                self._log_train("pretrain")
            self.progress.update("pretrain", self.pretrained, cfg.pretrain_updates)
            if self.pretrained < cfg.pretrain_updates:
                if self.pretrained % cfg.pretrain_checkpoint_every == 0:
                    self.save_checkpoint()
                self._check_stop()
        self.phase = "train"
        self._maybe_evaluate()
        self.save_checkpoint()

    def train(self) -> None:
        cfg = self.cfg
        self.agent.set_model_lr(cfg.model_lr)
        while self.env_step < cfg.env_steps:
            if not self.in_episode:
                self._begin_episode()
            self._env_step(self.agent.act(self.history.frames, self.history.actions))
            for _ in range(cfg.updates_per_step):
                stats = self.agent.update(self.replay.sample(cfg.batch_size, cfg.sequence_length))
                self.updates += 1
                self._accumulate(stats)
            if self.env_step // cfg.log_every > self._logged or self.env_step >= cfg.env_steps:
                self._log_train("train")
            self._maybe_evaluate()
            self._after_env_step()
            self.progress.update(
                "train", self.env_step, cfg.env_steps,
                f"return {self.last_return:.1f} eval {self.last_eval:.1f} "
                f"alpha {self.agent.alpha.item():.3g}",
            )

    @property
    def _logged(self) -> int:
        return self._last_log_step // self.cfg.log_every

    def run(self) -> int:
        """Algorithm 1 from wherever this run stands; returns the process exit code."""
        cfg = self.cfg
        resumed = self.env_step > 0 or self.pretrained > 0
        self.progress.message(
            f"{'resuming' if resumed else 'run dir'} {self.run_dir} at env step {self.env_step} "
            f"({self.phase}) | device {self.device} | action repeat {cfg.action_repeat} | "
            f"decoder var {cfg.decoder_var} | MUJOCO_GL={os.environ.get('MUJOCO_GL')}"
        )
        handlers = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            if self.phase == "random":
                self.collect_random()
            if self.phase == "pretrain":
                self.pretrain()
            self.train()
            if self.last_eval_step != self.env_step:
                self._evaluate()
            self.save_checkpoint()
            self.progress.message(
                f"done: {self.env_step} env steps, {_hms(self.wall_time)} of training; "
                f"last eval {self.last_eval:.1f}"
            )
            return 0
        except _Stop:
            self.save_checkpoint()
            self.progress.message(f"stopped at env step {self.env_step}; checkpoint saved. "
                                  "Run the same command again to resume.")
            return 128 + self._stop_signal
        except NonFiniteLoss as e:
            self.progress.message(f"error: {e}. Stopped; the last good checkpoint is kept.")
            return 1
        except OSError as e:
            self.progress.message(f"error: cannot write the run directory {self.run_dir}: {e}. "
                                  "Stopped; the last complete checkpoint is intact.")
            return 1
        finally:
            for s, h in handlers.items():
                signal.signal(s, h)
            self.close()

    # ------------------------------------------------------------------ bookkeeping
    def _on_signal(self, signum, frame) -> None:
        self._stop_signal = signum  # acted on at the next consistent point

    def _check_stop(self) -> None:
        if self._stop_signal:
            raise _Stop

    def _after_env_step(self) -> None:
        due = self.env_step // self.cfg.checkpoint_every
        if due > self.checkpoints_done:
            self.save_checkpoint()
            self.checkpoints_done = due
        self._check_stop()

    def _maybe_evaluate(self) -> None:
        due = self.env_step // self.cfg.eval_every
        if due > self.evals_done:
            self._evaluate()
            self.evals_done = due

    def _evaluate(self) -> None:
        self.progress.message(f"evaluating at {self.env_step} env steps ...")
        returns, episode = evaluate(self.agent, self.eval_env, self.cfg.eval_episodes,
                                    record_first=True)
        self._picture(episode)
        self.last_eval = float(returns.mean())
        self.last_eval_step = self.env_step
        self.logger.log_eval({
            "env_step": self.env_step,
            "return_mean": float(returns.mean()),
            "return_std": float(returns.std()),
            "return_min": float(returns.min()),
            "return_max": float(returns.max()),
            "episodes": len(returns),
            "agent_step": self.agent_step,
            "updates": self.updates,
            "wall_time": self.wall_time,
        })
        self.progress.message(
            f"eval at {self.env_step}: return {returns.mean():.1f} +- {returns.std():.1f}"
        )
        checkpoint.save_agent(self.run_dir, self.agent, {
            "env_step": self.env_step, "action_dim": self.action_dim, "config": to_dict(self.cfg),
        })

    def _picture(self, episode) -> None:
        """Model predictions (Appendix E) to TensorBoard; the episode as a video if asked."""
        from slac import viz

        n = min(self.VIZ_STEPS, len(episode.actions))
        rows = viz.predictions(self.agent.model, episode.frames[:n + 1], episode.actions[:n])
        self.logger.tb.add_image("model/predictions", viz.grid(rows), self.env_step,
                                 dataformats="HWC")
        if self.cfg.video:
            (self.run_dir / "videos").mkdir(exist_ok=True)
            big = [f.repeat(4, 0).repeat(4, 1) for f in episode.frames]
            viz.save_video(big, self.run_dir / "videos" / f"eval-{self.env_step:09d}.mp4", fps=25)

    def _accumulate(self, stats: dict[str, torch.Tensor]) -> None:
        values = torch.stack([v.float() for v in stats.values()])
        if not bool(torch.isfinite(values).all()):  # one check per update, not per loss
            bad = {k: float(v) for k, v in stats.items() if not math.isfinite(float(v))}
            name, value = next(iter(bad.items()))
            raise NonFiniteLoss(f"{name} became {value} at env step {self.env_step} "
                                f"(update {self.updates}, pretraining update {self.pretrained})")
        for k, v in stats.items():
            self._sums[k] = self._sums.get(k, 0.0) + v
        self._n += 1

    def _log_train(self, phase: str) -> None:
        now = time.monotonic()
        dt = max(now - self._window_t, 1e-9)
        row = {k: float(v) / max(self._n, 1) for k, v in self._sums.items()}
        row.update({
            "env_step": self.env_step, "agent_step": self.agent_step,
            "updates": self.pretrained if phase == "pretrain" else self.updates,
            "phase": phase, "wall_time": self.wall_time,
            "env_steps_per_s": (self.env_step - self._window_env_step) / dt,
            "updates_per_s": self._n / dt, "episode_return": self.last_return,
            "physics_errors": self.physics_errors,
            # z1 units the posterior takes from the image; 0 = posterior collapse (README)
            "active_z1": self.agent.model.active_z1(
                self.replay.spread_frames(ACTIVE_UNIT_FRAMES).to(self.device)),
        })
        self.logger.log_train(row)
        self._sums, self._n = {}, 0
        self._window_t, self._window_env_step = now, self.env_step
        self._last_log_step = self.env_step

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        return {
            "version": 1,
            "config": to_dict(self.cfg),
            "counters": {k: getattr(self, k) for k in (
                "phase", "env_step", "agent_step", "updates", "pretrained", "in_episode",
                "episode_return", "last_return", "last_eval", "evals_done", "checkpoints_done",
                "last_eval_step", "physics_errors", "_last_log_step")},
            "wall_time": self.wall_time,
            "log_window": ({k: float(v) for k, v in self._sums.items()}, self._n),
            "agent": self.agent.state_dict(),
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                "numpy": self.rng.bit_generator.state,
            },
            "replay": self.replay.state_dict(),
            "env": self.env.get_state(),
            "eval_env": self.eval_env.get_state(),
            "history": (self.history.frames, self.history.actions),
            "logs": self.logger.state_dict(self.env_step, self.pretrained),
        }

    def save_checkpoint(self) -> None:
        self.replay.flush()  # the checkpoint must never refer to unflushed steps
        checkpoint.save_checkpoint(self.run_dir, self.state_dict(),
                                   (self.env_step, self.pretrained))

    def _restore(self, state: dict) -> None:
        for k, v in state["counters"].items():
            setattr(self, k, v)
        self.wall_offset = state["wall_time"]
        sums, self._n = state["log_window"]
        self._sums = {k: torch.tensor(v) for k, v in sums.items()}
        self.agent.load_state_dict(state["agent"])
        torch.set_rng_state(state["rng"]["torch"])
        if state["rng"]["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.rng.bit_generator.state = state["rng"]["numpy"]
        self.replay.load_state_dict(state["replay"])
        self.env.set_state(state["env"])
        if not state["env"].get("exact", True):  # this environment restarts its episode
            self.in_episode = False
        self.eval_env.set_state(state["eval_env"])
        self.history.frames, self.history.actions = state["history"]

    def close(self) -> None:
        self.logger.close()
        self.env.close()
        self.eval_env.close()


def _hms(seconds: float) -> str:
    h, rem = divmod(int(seconds), 3600)
    return f"{h}h{rem // 60:02d}m{rem % 60:02d}s"
