"""One typed config. Every field is a ``slac train`` flag; its ``help`` is the flag's one line.

Fields left ``None`` take the task's default (see :mod:`slac.tasks`) in :func:`resolve`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from slac.tasks import get_task


def _f(default, help: str, **kw):  # noqa: A002 - the flag's help line
    return field(default=default, metadata={"help": help, **kw})


# Named presets keep the method (model structure, losses, algorithm) and change only sizes,
# budgets and the model's step size. Each entry: flag -> (value, the paper's value), shown in
# `slac train --help`. cpu: a 3x model learning rate ends the posterior collapse sooner, so 10k
# pretraining updates do (docs/cpu-learning.md).
PRESETS: dict[str, dict[str, tuple]] = {
    "cpu": {
        "conv_width": (16, 32),
        "batch_size": (64, 256),
        "model_batch_size": (8, 32),
        "pretrain_updates": (10_000, 50_000),
        "model_lr": (3e-4, 1e-4),
        "env_steps": (50_000, 1_000_000),
    },
}


AGENTS = ("slac", "sac-pixels", "sac-state")
MODELS = ("slac", "vae", "factored-vae", "filtering", "partially-stochastic", "deterministic",
          "planet")


def field_type(f: dataclasses.Field) -> type:
    """The value type of a Config field: ``int`` for ``int | None``, as its flag takes it."""
    tp = eval(f.type, vars(typing)) if isinstance(f.type, str) else f.type  # noqa: S307
    if isinstance(tp, types.UnionType):
        return next(t for t in typing.get_args(tp) if t is not type(None))
    return tp


def describe_preset(name: str) -> str:
    items = PRESETS[name].items()
    return ", ".join(f"{k.replace('_', '-')} {v} (paper {p})" for k, (v, p) in items)


class ConfigError(ValueError):
    """A bad user input: reported as one line, exit code 2."""


@dataclass
class Config:
    task: str = _f("cheetah-run", "task to learn (see `slac tasks`)")
    preset: str | None = _f(None, "cpu: " + describe_preset("cpu"), choices=tuple(PRESETS))
    seed: int = _f(0, "random seed for networks, replay and the simulator")
    run_dir: str | None = _f(None, "run directory (default runs/TASK-seedSEED)")
    env_steps: int = _f(
        1_000_000, "environment (simulator) steps to train for, random ones included"
    )
    random_steps: int | None = _f(
        None, "environment steps of random collection (default: DMC 10 episodes, Gym 10k steps)"
    )
    pretrain_updates: int | None = _f(
        None, "model-only updates on the random data before acting (default: DMC 50k, Gym 100k)"
    )
    updates_per_step: int | None = _f(
        None, "gradient updates per agent step (default: DMC 1, Gym 3)"
    )
    batch_size: int = _f(256, "sequences per actor-critic batch")
    model_batch_size: int = _f(32, "sequences of that batch used by the model loss")
    sequence_length: int = _f(8, "steps per replayed sequence (frames = steps + 1)")
    decoder_var: float | None = _f(None, "fixed per-pixel decoder variance (default: per task)")
    action_repeat: int | None = _f(None, "simulator steps per agent step (default: per task)")
    replay_capacity: int = _f(100_000, "replay capacity in agent steps")
    eval_every: int = _f(10_000, "environment steps between evaluations")
    eval_episodes: int = _f(10, "episodes per evaluation (stochastic policy)")
    device: str = _f(
        "auto", "auto takes CUDA when present", choices=("auto", "cpu", "cuda")
    )
    render_quality: str = _f(
        "paper", "paper: the suite's own look; fast: no shadows or reflections",
        choices=("paper", "fast"),
    )
    threads: int = _f(0, "CPU threads for torch (0: all cores)")
    overlap: bool = _f(True, "on a CPU with 2+ threads, split each update over two threads, one "
                             "each (same results up to fp32 rounding)")
    log_every: int = _f(1_000, "environment steps between train.csv rows")
    checkpoint_every: int = _f(10_000, "environment steps between checkpoints (also on a signal)")
    pretrain_checkpoint_every: int = _f(2_000, "model pretraining updates between checkpoints")
    video: bool = _f(False, "save an mp4 of one evaluation episode per evaluation (RUN_DIR/videos)")
    model_lr: float = _f(1e-4, "Adam learning rate of the latent model")
    pretrain_model_lr: float | None = _f(
        None, "Adam learning rate of the latent model during pretraining (default: --model-lr)"
    )
    actor_lr: float = _f(3e-4, "Adam learning rate of the actor")
    critic_lr: float = _f(3e-4, "Adam learning rate of the critics")
    alpha_lr: float = _f(3e-4, "Adam learning rate of the entropy temperature")
    gamma: float = _f(0.99, "discount")
    tau: float = _f(0.005, "EMA rate of the target critics, per update")
    agent: str = _f("slac", "slac, or a baseline of Section 6.1: sac-pixels (SAC on encoded "
                    "frames, the encoder trained by the critic) or sac-state (SAC on the "
                    "simulator's state); neither has a latent model", choices=AGENTS,
                    metavar="NAME")
    model: str = _f(
        "slac", "latent variable model (Figure 5a): slac, vae (non-sequential), factored-vae, "
        "filtering (sequential, one latent), partially-stochastic (deterministic z2), "
        "deterministic, planet (PlaNet's recurrent state-space model)", choices=MODELS,
        metavar="NAME",
    )
    critic_input: str = _f("latent", "what the critics see (Figure 5b): latent (a posterior "
                           "sample z_t) or history (the actor's frames and actions)",
                           choices=("latent", "history"), metavar="INPUT")
    actor_input: str = _f("history", "what the actor sees (Figure 5b): history (encoded frames "
                          "and past actions) or latent (a posterior sample z_t)",
                          choices=("history", "latent"), metavar="INPUT")
    random_crop: bool = _f(False, "train model and policy on random crops of the frames, "
                                  "replicate-padded by 4 pixels (Figure 13); targets and "
                                  "acting use the frames as they are")
    hidden: int = _f(256, "hidden units of every MLP")
    z1_dim: int = _f(32, "size of the latent z1")
    z2_dim: int = _f(256, "size of the latent z2")
    feature_dim: int = _f(256, "size of the encoder's output")
    conv_width: int = _f(32, "channels of the first encoder conv (the rest scale: 2x, 4x, 8x)")
    init: str = _f(
        "glorot", "weight initialisation: glorot (Glorot-uniform weights, zero biases: the "
        "TensorFlow defaults of the authors' code) or torch (PyTorch's layer defaults)",
        choices=("torch", "glorot"),
    )
    amp: bool = _f(False, "bfloat16 autocast in the encoder and decoder (GPUs with bf16, CPUs "
                          "with AMX or AVX512-BF16; changes the arithmetic, so off by default)")
    compile: bool = _f(False, "torch.compile the encoder and decoder (meant for GPUs; compiling "
                              "takes minutes)")

    @property
    def observation(self) -> str:
        """What the environment gives the agent: pixels, or sac-state's state vector."""
        return "state" if self.agent == "sac-state" else "pixels"

    @property
    def pretraining_model_lr(self) -> float:
        """The latent model's Adam step size in pretraining."""
        return self.model_lr if self.pretrain_model_lr is None else self.pretrain_model_lr

    def resolved(self) -> Config:
        """A copy with task defaults filled in and every value checked."""
        return resolve(self)


POSITIVE = (
    "env_steps", "pretrain_updates", "updates_per_step", "batch_size", "model_batch_size",
    "sequence_length", "replay_capacity", "eval_every", "eval_episodes", "log_every", "hidden",
    "checkpoint_every", "pretrain_checkpoint_every", "conv_width",
    "z1_dim", "z2_dim", "feature_dim",
)
ALLOW_ZERO = ("pretrain_updates",)


def with_preset(given: dict) -> dict:
    """Flags given explicitly win over the preset's values."""
    preset = given.get("preset")
    if preset is None:
        return given
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose from: {', '.join(PRESETS)}")
    return {**{k: v for k, (v, _) in PRESETS[preset].items()}, **given}


def resolve(cfg: Config) -> Config:
    try:
        spec = get_task(cfg.task)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    c = dataclasses.replace(cfg)
    if c.action_repeat is None:
        c.action_repeat = spec.action_repeat
    if c.decoder_var is None:
        c.decoder_var = spec.decoder_var
    if c.random_steps is None:
        c.random_steps = spec.random_steps
    if c.agent != "slac":  # no latent model to pretrain
        c.pretrain_updates = 0
    elif c.pretrain_updates is None:
        c.pretrain_updates = spec.pretrain_updates
    if c.updates_per_step is None:
        c.updates_per_step = spec.updates_per_step
    if c.run_dir is None:
        c.run_dir = os.path.join("runs", f"{c.task}-seed{c.seed}")
    for name in POSITIVE + ("action_repeat", "random_steps"):
        value = getattr(c, name)
        if value < 0 or (value == 0 and name not in ALLOW_ZERO):
            kind = "non-negative" if name in ALLOW_ZERO else "positive"
            raise ConfigError(f"--{name.replace('_', '-')} must be {kind}, got {value}")
    for name in ("model_lr", "pretrain_model_lr", "actor_lr", "critic_lr", "alpha_lr",
                  "decoder_var"):
        if (value := getattr(c, name)) is not None and not (value > 0 and math.isfinite(value)):
            raise ConfigError(f"--{name.replace('_', '-')} must be positive and finite, "
                              f"got {value}")
    if not 0 <= c.gamma <= 1:  # also false for NaN
        raise ConfigError(f"--gamma must be in [0, 1], got {c.gamma}")
    if not 0 < c.tau <= 1:
        raise ConfigError(f"--tau must be in (0, 1], got {c.tau}")
    if not 0 <= c.seed < 2**31:
        raise ConfigError(f"--seed must be in [0, 2^31), got {c.seed}")
    cores = os.cpu_count() or 1
    if c.threads < 0 or c.threads > 4 * cores:
        raise ConfigError(f"--threads must be 0 (all cores) or 1..{4 * cores} on this machine "
                          f"of {cores} cores, got {c.threads}")
    for name in ("device", "render_quality", "preset", "init", "agent", "model",
                 "critic_input", "actor_input"):
        choices = Config.__dataclass_fields__[name].metadata["choices"]
        if getattr(c, name) not in choices and not (name == "preset" and c.preset is None):
            raise ConfigError(f"--{name.replace('_', '-')} must be one of {', '.join(choices)}")
    if c.agent != "slac" and (c.model, c.critic_input, c.actor_input) != (
            "slac", "latent", "history"):
        raise ConfigError(f"--model, --critic-input and --actor-input belong to --agent slac, "
                          f"not --agent {c.agent}")
    if c.agent == "sac-state" and c.random_crop:
        raise ConfigError("--random-crop crops frames; --agent sac-state sees no frames")
    if c.agent != "slac" and c.video:
        raise ConfigError(f"--video records the model's predictions; --agent {c.agent} has no "
                          "latent model")
    if c.model_batch_size > c.batch_size:
        raise ConfigError(
            f"--model-batch-size {c.model_batch_size} exceeds --batch-size {c.batch_size}; "
            "the model loss takes its sequences from the actor-critic batch"
        )
    if c.batch_size > c.replay_capacity:
        raise ConfigError(
            f"--batch-size {c.batch_size} exceeds --replay-capacity {c.replay_capacity} agent steps"
        )
    random_agent_steps = -(-c.random_steps // c.action_repeat)
    if random_agent_steps < c.sequence_length + 1:
        raise ConfigError(
            f"--random-steps {c.random_steps} gives {random_agent_steps} agent steps at action "
            f"repeat {c.action_repeat}; one sequence needs at least {c.sequence_length + 1}"
        )
    if c.replay_capacity < c.sequence_length + 2:
        raise ConfigError(f"--replay-capacity must hold one sequence: >= {c.sequence_length + 2}")
    if c.random_steps > c.env_steps:
        raise ConfigError(
            f"--random-steps {c.random_steps} exceeds --env-steps {c.env_steps}"
        )
    return c


def check_writable(run_dir: str, what: str = "run directory") -> None:
    """Fail before anything is written if ``run_dir`` cannot be created or written."""
    p = Path(run_dir).absolute()
    existing = p
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{what} {run_dir!r}: {existing} is not a directory")
    try:  # a real probe: permission bits do not tell root, read-only mounts or full disks
        os.rmdir(tempfile.mkdtemp(prefix=".slac-probe-", dir=existing))
    except OSError as e:
        raise ConfigError(f"{what} {run_dir!r} is not writable: {e.strerror}") from None


# May differ when a run is resumed: they change how long or where it runs, not what it learns.
RESUMABLE_CHANGES = (
    "run_dir", "env_steps", "threads", "overlap", "device", "log_every", "video", "compile")


# Cannot change when a run is resumed, even with --override: the networks' shapes, the task
# (its action size and data) and the replay's layout are in the checkpoint and the replay files.
FIXED = {
    "task": "the task decides the action size and the data in the replay",
    "agent": "it changes every network",
    "model": "it changes the latent model's networks",
    "critic_input": "it changes the critics' input size",
    "actor_input": "it changes the actor's input size",
    "hidden": "it changes the networks' shapes", "z1_dim": "it changes the networks' shapes",
    "z2_dim": "it changes the networks' shapes",
    "feature_dim": "it changes the networks' shapes",
    "conv_width": "it changes the networks' shapes",
    "sequence_length": "it changes the actor's input size",
    "replay_capacity": "it changes the replay's layout on disk",
    "checkpoint_every": "it sets the replay's margin, part of its layout on disk",
    "action_repeat": "it sets the replay's margin and what a stored step means",
}


def fixed_differences(stored: Config, given: dict) -> list[str]:
    """Flags given on resume that change what a run cannot change, with the reason."""
    return [f"--{k.replace('_', '-')} {v} (run has {getattr(stored, k)}: {FIXED[k]})"
            for k, v in given.items() if k in FIXED and getattr(stored, k) != v]


def differences(stored: Config, given: dict) -> list[str]:
    """Flags given on resume that change a setting the run was started with."""
    out = []
    for name, value in given.items():
        if name not in RESUMABLE_CHANGES and getattr(stored, name) != value:
            out.append(f"--{name.replace('_', '-')} {value} (run has {getattr(stored, name)})")
    return out


def to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(d: dict) -> Config:
    names = {f.name for f in dataclasses.fields(Config)}
    return Config(**{k: v for k, v in d.items() if k in names})


def save_json(path: str | os.PathLike, cfg: Config, **meta) -> None:
    """``cfg`` and ``meta`` as the JSON of a run's ``config.json``."""
    text = json.dumps({"config": to_dict(cfg), **meta}, indent=2) + "\n"
    Path(path).write_text(text)
