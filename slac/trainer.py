"""Algorithm 1 as a resumable run: random collection, model pretraining, then per agent step one
environment step and ``updates_per_step`` updates; evaluation, logs and checkpoints on the way.

Everything that decides the future of a run is in its checkpoint (networks, optimisers, every
random generator, the environments mid-episode, counters, log positions) or in its memory-mapped
replay, so rerunning the same command on the same run directory continues it exactly.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import torch

from slac import checkpoint, envs, parallel, runtime, viz
from slac.agent import make_agent
from slac.augment import crop_batch
from slac.config import (
    Config,
    ConfigError,
    check_writable,
    differences,
    fixed_differences,
    from_dict,
    resolve,
    save_json,
    to_dict,
    with_preset,
)
from slac.evaluate import EvaluationStopped, evaluate, summary
from slac.logger import Logger, Metrics, NonFiniteLoss, Progress, duration
from slac.policy import Policy, PolicyHistory
from slac.replay import Batch, Replay, ReplayDamaged, checkpoint_margin
from slac.rundir import RunDirError, RunLock, check_space, check_usable
from slac.tasks import get_task, random_action


class _Stop(Exception):
    pass


ESTIMATE_FROM = 100_000  # env steps from which a CPU run without a preset says how long it takes
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # HUP: the terminal closed


ACTIVE_UNIT_FRAMES = 256  # frames of the replay the active_z1 column of train.csv is measured on


class Trainer:
    """Owns a run: environments, replay, agent, counters, logs. ``cfg`` must be resolved;
    ``resume`` is a checkpoint of the same run."""

    VIZ_STEPS = 16  # steps of the model-prediction grid logged at each evaluation

    def __init__(self, cfg: Config, resume: dict | None = None, override: bool = False):
        self.cfg = cfg
        self.spec = get_task(cfg.task)
        self.run_dir = Path(cfg.run_dir)
        try:
            self.device = runtime.set_up(cfg.device, cfg.threads, cfg.seed)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        self.rng = np.random.default_rng(cfg.seed)  # random-phase actions
        # Train and evaluation environments never share a seed.
        self.env = envs.make(cfg.task, cfg.seed, cfg.action_repeat, cfg.render_quality,
                             observation=cfg.observation)
        self.eval_env = envs.make(cfg.task, cfg.seed + 1_000_000, cfg.action_repeat,
                                  cfg.render_quality, observation=cfg.observation)
        self.action_dim = self.env.action_dim
        # after the environments proved usable: the directory, and this run's lock on it
        created = not self.run_dir.exists()
        try:
            self.lock = RunLock(self.run_dir).acquire()
        except RunDirError as e:
            self.env.close()
            self.eval_env.close()
            raise ConfigError(str(e)) from None
        try:
            self._open(resume, override)
        except BaseException:
            self.env.close()
            self.eval_env.close()
            self.lock.release()
            if created:  # a new run that could not start leaves nothing behind
                shutil.rmtree(self.run_dir, ignore_errors=True)
            raise

    def _open(self, resume: dict | None, override: bool) -> None:
        cfg = self.cfg
        if resume is None:
            for stale in ("replay", "tb", checkpoint.CHECKPOINT_DIR):
                shutil.rmtree(self.run_dir / stale, ignore_errors=True)
        self.state_dim = self.env.obs_shape[0] if cfg.observation == "state" else 0
        self.agent = make_agent(cfg, self.action_dim, self.device, self.state_dim)
        margin = checkpoint_margin(cfg.checkpoint_every, cfg.action_repeat)
        obs = {"frame_shape": self.env.obs_shape, "frame_dtype": self.env.obs_dtype}
        replay_bytes = Replay.bytes_needed(cfg.replay_capacity, self.action_dim, margin, **obs)
        # checkpoints: the networks and their Adam moments, the newest two, one being written
        # and agent.pt
        weights = sum(p.numel() * p.element_size() for p in self.agent.parameters())
        try:
            check_space(self.run_dir, replay_bytes if resume is None else 0,
                        (checkpoint.KEEP + 2) * 3 * weights)
        except RunDirError as e:
            raise ConfigError(str(e)) from None
        try:
            self.replay = Replay(cfg.replay_capacity, self.action_dim, seed=cfg.seed,
                                 directory=self.run_dir / "replay", margin=margin,
                                 create=resume is None,
                                 on_damage="exclude" if override else "raise", **obs)
            if resume is not None:
                self.replay.load_state_dict(resume["replay"])
        except ReplayDamaged as e:
            raise ConfigError(f"{self.run_dir}: {e}. Start a new --run-dir, or rerun with "
                              "--override to continue on what is left (the damaged part is "
                              "left out of sampling)") from None
        except OSError as e:  # the disk filled since the check above, say
            raise ConfigError(f"cannot create the replay in {self.run_dir}: {e.strerror}; "
                              "nothing was written") from None
        self.updates_schedule = parallel.choose(self.agent)  # how updates use the threads
        self.history = PolicyHistory(cfg.sequence_length, self.action_dim,
                                     pixels=cfg.observation == "pixels")
        self.phase = "random"
        self.env_step = self.agent_step = self.updates = self.pretrained = 0
        self.in_episode = False
        self.episode_return, self.last_return = 0.0, float("nan")
        self.last_eval = float("nan")
        self.evals_done = self.checkpoints_done = 0
        self.last_eval_step = -1
        self.physics_errors = 0
        self.wall_offset = 0.0
        self.metrics = Metrics()
        self._last_log_step = 0
        if resume is not None:
            self._restore(resume)
        self._write_config()  # the resolved config as this session runs it
        self._session_start = time.monotonic()
        self.metrics.window_t, self.metrics.window_env_step = time.monotonic(), self.env_step
        self.logger = Logger(self.run_dir, resume["logs"] if resume else None)
        self.progress = Progress(f"[{cfg.task} s{cfg.seed}]")
        self._stop_signal = 0

    @property
    def wall_time(self) -> float:
        return self.wall_offset + time.monotonic() - self._session_start

    def _write_config(self) -> None:
        save_json(self.run_dir / "config.json", self.cfg, action_dim=self.action_dim,
                  **runtime.describe(self.device))

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

    def _sample(self, sequences: int) -> Batch:
        batch = self.replay.sample(sequences, self.cfg.sequence_length)
        return crop_batch(batch, self.replay.rng) if self.cfg.random_crop else batch

    def pretrain(self) -> None:
        cfg = self.cfg
        self.agent.set_model_lr(cfg.pretraining_model_lr)
        while self.pretrained < cfg.pretrain_updates:
            batch = self._sample(cfg.model_batch_size)
            self._accumulate(self.updates_schedule.update_model(batch))
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
        self._maybe_evaluate()  # one a signal interrupted before this run's checkpoint
        while self.env_step < cfg.env_steps:
            if not self.in_episode:
                self._begin_episode()
            self._env_step(self.agent.act(self.history.frames, self.history.actions,
                                          start=self.history.start))
            for _ in range(cfg.updates_per_step):
                batch = self._sample(cfg.batch_size)
                stats = self.updates_schedule.update(batch)
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
            f"({self.phase}) | device {self.device}, {self.updates_schedule.name} updates | "
            f"action repeat {cfg.action_repeat} | decoder var {cfg.decoder_var} | "
            f"MUJOCO_GL={os.environ.get('MUJOCO_GL')}"
        )
        if not resumed and self.device.type == "cpu" and cfg.preset is None \
                and cfg.env_steps >= ESTIMATE_FROM:
            self._say_how_long()
        excluded, window = self.replay.damage()
        if excluded:
            self.progress.message(f"the replay lost {excluded} of its {window} frames "
                                  "(--override): they are left out of sampling")
        handlers = {}
        if threading.current_thread() is threading.main_thread():  # only it may take signals
            handlers = {s: signal.signal(s, self._on_signal) for s in STOP_SIGNALS}
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
            try:
                self.save_checkpoint()
            except OSError as e:
                self.progress.message(f"error: cannot write the stop's checkpoint: {e}; "
                                      f"{checkpoint.describe_intact(self.run_dir)}.")
                return 1
            self.progress.message(f"stopped at env step {self.env_step}; checkpoint saved. "
                                  "Run the same command again to resume.")
            return 128 + self._stop_signal
        except NonFiniteLoss as e:
            self.progress.message(f"error: {e}. Stopped; "
                                  f"{checkpoint.describe_intact(self.run_dir)}.")
            return 1
        except OSError as e:
            self.progress.message(f"error: cannot write the run directory {self.run_dir}: {e}. "
                                  f"Stopped; {checkpoint.describe_intact(self.run_dir)}.")
            return 1
        finally:
            for s, h in handlers.items():
                signal.signal(s, h)
            self.close()

    def _say_how_long(self) -> None:
        """The protocol's estimated duration here, before a long CPU run starts."""
        from slac import bench

        self.progress.message("estimating how long this run takes on this CPU ...")
        t = bench.protocol_seconds(self.cfg, self.action_dim, self.device)
        self.progress.message(
            f"on this CPU the protocol takes about {duration(t['total_s'])} (pretraining "
            f"{duration(t['pretraining_s'])}, updates {duration(t['updates_s'])}, environment "
            f"{duration(t['environment_s'])}); `--preset cpu` runs the same method at smaller "
            "sizes within hours (docs/cpu-learning.md)")

    # ------------------------------------------------------------------ bookkeeping
    def _on_signal(self, signum, frame) -> None:
        if self._stop_signal and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: now; the last checkpoint stays valid
        if not self._stop_signal:
            self._stop_signal = signum  # acted on at the next consistent point, within seconds
            self.progress.message(f"{signal.Signals(signum).name}: stopping at the next step "
                                  "with a checkpoint (Ctrl-C again to exit at once)")

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
        # a signal discards the evaluation: its environment and generators go back to where
        # it began, so the resumed run redoes it exactly
        before = (self.eval_env.get_state(), torch.get_rng_state(),
                  torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)
        try:
            returns, episode = evaluate(Policy(self.agent, self.env_step), self.eval_env,
                                        self.cfg.eval_episodes,
                                        record_first=self.agent.model is not None,
                                        should_stop=lambda: bool(self._stop_signal))
        except EvaluationStopped:
            self.eval_env.set_state(before[0])
            torch.set_rng_state(before[1])
            if before[2] is not None:
                torch.cuda.set_rng_state_all(before[2])
            raise _Stop from None
        video = (self.run_dir / "videos" / f"eval-{self.env_step:09d}.mp4"
                 if self.cfg.video else None)
        if self.agent.model is not None:
            viz.log_episode(self.logger.tb, self.agent.model, episode.frames, episode.actions,
                            self.env_step, video, steps=self.VIZ_STEPS)
        self.last_eval = float(returns.mean())
        self.last_eval_step = self.env_step
        self.logger.log_eval({"env_step": self.env_step, **summary(returns),
                              "agent_step": self.agent_step, "updates": self.updates,
                              "wall_time": self.wall_time})
        self.progress.message(
            f"eval at {self.env_step}: return {returns.mean():.1f} +- {returns.std():.1f}"
        )
        checkpoint.save_agent(self.run_dir, self.agent, {
            "env_step": self.env_step, "action_dim": self.action_dim, "config": to_dict(self.cfg),
            "state_dim": self.state_dim,
        })

    def _accumulate(self, stats: dict[str, torch.Tensor]) -> None:
        self.metrics.add(stats, f"at env step {self.env_step} (update {self.updates}, "
                                f"pretraining update {self.pretrained})")

    def _log_train(self, phase: str) -> None:
        row = self.metrics.row(self.env_step)
        row.update({
            "env_step": self.env_step, "agent_step": self.agent_step,
            "updates": self.pretrained if phase == "pretrain" else self.updates,
            "phase": phase, "wall_time": self.wall_time, "episode_return": self.last_return,
            "physics_errors": self.physics_errors,
            # z1 units the posterior takes from the image; 0 = posterior collapse
            "active_z1": float("nan") if self.agent.model is None else self.agent.model.active_z1(
                self.replay.spread_frames(ACTIVE_UNIT_FRAMES).to(self.device)),
        })
        self.logger.log_train(row)
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
            "log_window": self.metrics.state_dict(),
            "agent": self.agent.state_dict(),
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                "numpy": self.rng.bit_generator.state,
            },
            "replay": self.replay.state_dict(),
            "env": self.env.get_state(),
            "eval_env": self.eval_env.get_state(),
            "history": (self.history.frames, self.history.actions, self.history.start),
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
        self.metrics.load_state_dict(state["log_window"])
        self.agent.load_state_dict(state["agent"])
        torch.set_rng_state(state["rng"]["torch"])
        if state["rng"]["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.rng.bit_generator.state = state["rng"]["numpy"]
        self.env.set_state(state["env"])
        if not state["env"].get("exact", True):  # this environment restarts its episode
            self.in_episode = False
        self.eval_env.set_state(state["eval_env"])
        self.history.frames, self.history.actions, *start = state["history"]
        self.history.start = start[0] if start else 0  # absent before --actor-input

    def close(self) -> None:
        self.updates_schedule.close()
        self.logger.close()
        self.env.close()
        self.eval_env.close()
        self.lock.release()


def open_run(given: dict, override: bool = False) -> tuple[Config, dict | None]:
    """The resolved config of a run and the checkpoint to resume it from (None: a new run).

    ``given`` holds the settings asked for (the flags given on the command line); the rest come
    from the preset, then from the defaults. The run directory is the unit of work: when it
    holds checkpoints, the run resumes from the newest one that loads, with its stored settings,
    and a setting in ``given`` that would change what the run learns is refused (a
    ``ConfigError``) unless ``override``.
    """
    default = Config(**with_preset(given))
    if "run_dir" in given and given["run_dir"] is not None and not str(given["run_dir"]).strip():
        raise ConfigError("--run-dir must not be empty")
    run_dir = given.get("run_dir") or os.path.join("runs", f"{default.task}-seed{default.seed}")
    try:
        check_usable(run_dir)
    except RunDirError as e:
        raise ConfigError(str(e)) from None
    resume = None
    if checkpoint.list_checkpoints(run_dir):
        resume = checkpoint.load_latest(run_dir)
        if resume is None:
            raise ConfigError(f"{run_dir}: every checkpoint is damaged; use a new --run-dir")
        stored = from_dict(resume["config"])
        fixed = fixed_differences(stored, with_preset(given))
        if fixed:
            raise ConfigError(f"{run_dir} holds a run that cannot take {'; '.join(fixed)}, "
                              "not even with --override; use a new --run-dir")
        diffs = differences(stored, given)
        if diffs and not override:
            raise ConfigError(f"{run_dir} holds a run with other settings: {'; '.join(diffs)}."
                              " Rerun without them to resume, or add --override")
        cfg = resolve(dataclasses.replace(stored, **with_preset(given)))
    else:
        cfg = resolve(default)
    check_writable(cfg.run_dir)
    try:
        runtime.resolve_device(cfg.device)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return cfg, resume


def start(given: dict, override: bool = False) -> Trainer:
    """A :class:`Trainer` for the run that ``given`` names, new or resumed (:func:`open_run`)."""
    cfg, resume = open_run(given, override)
    try:
        return Trainer(cfg, resume, override)
    except envs.EnvError as e:
        raise ConfigError(str(e)) from None


class TrainingStopped(RuntimeError):
    """A run ended before its last step; ``status`` is the exit code ``slac train`` gives."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def train(config: Config, override: bool = False) -> Path:
    """Train (or resume) the run ``config`` describes, exactly as ``slac train`` with the same
    settings does; returns its run directory.

    Fields left at their defaults are not settings asked for: they take the preset's value and,
    when ``config.run_dir`` holds a run, that run's. So ``train(Config(run_dir=d))`` resumes the
    run in ``d`` whatever it was started with, and a field set to another value than the run's
    is refused unless ``override``. A run stopped by a signal (its checkpoint saved) or by an
    error raises :class:`TrainingStopped`; calling ``train`` again resumes it.
    """
    given = {f.name: getattr(config, f.name) for f in dataclasses.fields(Config)
             if getattr(config, f.name) != f.default}
    trainer = start(given, override)
    status = trainer.run()
    if status:
        raise TrainingStopped(f"{trainer.run_dir}: stopped at env step {trainer.env_step} "
                              f"(exit status {status})", status)
    return trainer.run_dir


def _hms(seconds: float) -> str:
    h, rem = divmod(int(seconds), 3600)
    return f"{h}h{rem // 60:02d}m{rem % 60:02d}s"
