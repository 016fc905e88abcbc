"""What a run records: running means of the update statistics, CSV files, TensorBoard, and a
live progress line on the console."""

from __future__ import annotations

import csv
import math
import os
import sys
import time
from pathlib import Path

import torch

TRAIN_COLUMNS = (
    "env_step", "agent_step", "updates", "phase", "wall_time", "env_steps_per_s", "updates_per_s",
    "model_loss", "image_nll", "kl", "reward_nll", "critic_loss", "actor_loss", "alpha_loss",
    "alpha", "entropy", "q", "episode_return", "physics_errors", "active_z1",
)
EVAL_COLUMNS = (
    "env_step", "return_mean", "return_std", "return_min", "return_max", "episodes",
    "agent_step", "updates", "wall_time",
)


class NonFiniteLoss(FloatingPointError):
    """A loss or statistic of an update became NaN or infinite."""


class Metrics:
    """Sums of the update statistics since the last ``train.csv`` row, and the rates of
    environment steps and updates over the same window."""

    def __init__(self, env_step: int = 0):
        self.sums: dict[str, torch.Tensor] = {}
        self.n = 0
        self.window_t, self.window_env_step = time.monotonic(), env_step

    def add(self, stats: dict[str, torch.Tensor], where: str) -> None:
        """Add one update's statistics; ``NonFiniteLoss`` (naming the statistic and ``where``)
        if any is NaN or infinite."""
        values = torch.stack([v.float() for v in stats.values()])
        if not bool(torch.isfinite(values).all()):  # one check per update, not per loss
            bad = {k: float(v) for k, v in stats.items() if not math.isfinite(float(v))}
            name, value = next(iter(bad.items()))
            raise NonFiniteLoss(f"{name} became {value} {where}")
        for k, v in stats.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.n += 1

    def row(self, env_step: int) -> dict[str, float]:
        """The means since the last row and the window's rates; starts a new window."""
        now = time.monotonic()
        dt = max(now - self.window_t, 1e-9)
        row = {k: float(v) / max(self.n, 1) for k, v in self.sums.items()}
        row["env_steps_per_s"] = (env_step - self.window_env_step) / dt
        row["updates_per_s"] = self.n / dt
        self.sums, self.n = {}, 0
        self.window_t, self.window_env_step = now, env_step
        return row

    def state_dict(self) -> tuple[dict[str, float], int]:
        return {k: float(v) for k, v in self.sums.items()}, self.n

    def load_state_dict(self, state: tuple[dict[str, float], int]) -> None:
        sums, self.n = state
        self.sums = {k: torch.tensor(v) for k, v in sums.items()}


class CSVLog:
    """Appends rows with fixed columns; writes the header once. A file begun by an older
    version keeps its own header (columns it lacks are left out of the rows appended)."""

    def __init__(self, path: str | os.PathLike, columns: tuple[str, ...]):
        self.path = Path(path)
        new = not self.path.exists() or self.path.stat().st_size == 0
        if not new:
            with open(self.path, newline="") as f:
                columns = tuple(next(csv.reader(f), columns))
        self.columns = columns
        self._file = open(self.path, "a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=columns, extrasaction="ignore")
        if new:
            self._writer.writeheader()
            self._file.flush()

    def write(self, row: dict) -> None:
        self._writer.writerow({k: _fmt(v) for k, v in row.items()})
        self._file.flush()

    def tell(self) -> int:
        self._file.flush()
        return self._file.tell()

    def close(self) -> None:
        self._file.close()


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


def duration(seconds: float) -> str:
    """A duration for people: ``3.1 days``, ``5h07m`` or ``4m09s``."""
    if not math.isfinite(seconds):
        return "?"
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.1f} days"
    s = int(seconds)
    h, m = divmod(s // 60, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s % 60:02d}s"


class Progress:
    """A status line: redrawn in place on a terminal, printed every ``every`` s otherwise."""

    def __init__(self, prefix: str, stream=None, every: float = 30.0):
        self.prefix = prefix
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every = 0.5 if self.tty else every
        self._last = 0.0
        self._phase_start = time.monotonic()
        self._phase = ""
        self._done0 = 0

    def update(self, phase: str, done: int, total: int, extra: str = "", force: bool = False):
        now = time.monotonic()
        if phase != self._phase:
            self._phase, self._phase_start, self._done0 = phase, now, done
            force = True
        if not force and now - self._last < self.every:
            return
        self._last = now
        elapsed = now - self._phase_start
        rate = (done - self._done0) / elapsed if elapsed > 0 else 0.0
        eta = (total - done) / rate if rate > 0 else float("inf")
        line = (f"{self.prefix} {phase} {done}/{total} ({100 * done / max(total, 1):.0f}%) "
                f"{rate:.2f}/s ETA {duration(eta)}" + (f" | {extra}" if extra else ""))
        if self.tty:
            self.stream.write("\r\033[K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        self.stream.write(("\r\033[K" if self.tty else "") + f"{self.prefix} {text}\n")
        self.stream.flush()


class Logger:
    """train.csv, eval.csv and TensorBoard events under ``run_dir``.

    ``resume`` is what :meth:`state_dict` returned at a checkpoint: rows written after it are
    cut off and TensorBoard events after it purged, so a resumed run has no duplicate rows.
    """

    def __init__(self, run_dir: str | os.PathLike, resume: dict | None = None):
        from torch.utils.tensorboard import SummaryWriter

        run_dir = Path(run_dir)
        paths = {"train.csv": run_dir / "train.csv", "eval.csv": run_dir / "eval.csv"}
        for name, path in paths.items():
            if resume is None:
                path.unlink(missing_ok=True)
            elif path.exists():
                with open(path, "r+b") as f:
                    f.truncate(resume["csv_bytes"][name])
        self.train = CSVLog(paths["train.csv"], TRAIN_COLUMNS)
        self.eval = CSVLog(paths["eval.csv"], EVAL_COLUMNS)
        purge = (resume["env_step"] + 1, resume["pretrain_updates"] + 1) if resume else (None,) * 2
        self.tb = SummaryWriter(str(run_dir / "tb"), purge_step=purge[0])
        self.tb_pretrain = SummaryWriter(str(run_dir / "tb" / "pretrain"), purge_step=purge[1])

    def state_dict(self, env_step: int, pretrain_updates: int) -> dict:
        self.tb.flush()
        self.tb_pretrain.flush()
        return {
            "csv_bytes": {"train.csv": self.train.tell(), "eval.csv": self.eval.tell()},
            "env_step": env_step,
            "pretrain_updates": pretrain_updates,
        }

    def log_train(self, row: dict) -> None:
        self.train.write(row)
        pretrain = row["phase"] == "pretrain"
        writer = self.tb_pretrain if pretrain else self.tb
        step = row["updates"] if pretrain else row["env_step"]
        for k, v in row.items():
            if k not in ("env_step", "phase") and isinstance(v, (int, float)):
                writer.add_scalar(f"train/{k}", v, step)

    def log_eval(self, row: dict) -> None:
        self.eval.write(row)
        for k in ("return_mean", "return_std"):
            self.tb.add_scalar(f"eval/{k}", row[k], row["env_step"])
        self.tb.flush()

    def close(self) -> None:
        self.train.close()
        self.eval.close()
        self.tb.close()
        self.tb_pretrain.close()
