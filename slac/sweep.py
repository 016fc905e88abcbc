"""``slac sweep``: a grid of runs, each an ordinary run directory, run as Ray tasks.

The grid is tasks x seeds x every ``slac train`` flag given as a comma list. ``DIR/sweep.json``
records the grid, the command and each run's state; rerunning the command skips finished runs
and resumes the others from their checkpoints, so a sweep is as durable as its runs. Each Ray
task starts ``slac train`` as a child process, its output in ``DIR/logs/NAME.log``; a stopping
driver has each run stopped with SIGTERM (a checkpoint, then exit), and a run ends with its
worker.
On a cluster, ``DIR`` must be on a file system every node sees at the same path, and every
node needs this package installed.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from slac import rundir
from slac.config import Config, ConfigError, field_type, resolve, with_preset
from slac.replay import Replay

SWEEP_FILE = "sweep.json"
LOCK = ".slac-sweep"  # the sweep's lock file
STOP = ".stop"  # a stopping driver creates it: the runs stop at checkpoints
NOT_SWEPT = ("task", "seed", "run_dir", "threads", "device")  # set by the sweep itself
PROCESS_BYTES = 2 * 2**30  # a run's memory besides its replay, with room (docs/sweeps.md)
START = "== slac sweep: attempt"  # first line the task writes into a run's log per attempt


@dataclass
class Grid:
    tasks: list[str]
    seeds: list[int]
    axes: dict[str, list]  # Config field -> its values (the flags given as comma lists)
    fixed: dict[str, object]  # Config field -> value (the flags given once)

    def runs(self) -> dict[str, dict]:
        """Run name -> the ``slac train`` settings of that run (without run_dir and machine)."""
        out = {}
        names = list(self.axes)
        for task in self.tasks:
            for values in itertools.product(*(self.axes[n] for n in names)):
                for seed in self.seeds:
                    varied = dict(zip(names, values, strict=True))
                    parts = [task.replace("/", "-")]
                    parts += [f"{n.replace('_', '-')}={v}" for n, v in varied.items()]
                    out["_".join([*parts, f"seed{seed}"])] = {
                        "task": task, "seed": seed, **self.fixed, **varied}
        return out

    def variant(self, settings: dict) -> str:
        """The values of the grid's axes in ``settings``, as a label ('slac' with no axes)."""
        return ", ".join(f"{n.replace('_', '-')} {settings[n]}" for n in self.axes) or "slac"

    def differences(self, other: Grid) -> list[str]:
        a, b = dataclasses.asdict(self), dataclasses.asdict(other)
        return [f"{k}: {a[k]} (sweep has {b[k]})" for k in a if a[k] != b[k]]


# ----------------------------------------------------------------------------- parsing
def parse_seeds(text: str) -> list[int]:
    """'0-9', '0,3,5' or '0-2,7' -> the seeds, in order, each once."""
    seeds: list[int] = []
    for part in text.split(","):
        lo, sep, hi = part.strip().partition("-")
        try:
            first, last = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise ConfigError(f"--seeds: {part!r} is not a seed or a range like 0-9") from None
        if first < 0 or last < first:
            raise ConfigError(f"--seeds: {part!r} is not a range of seeds >= 0 like 0-9")
        seeds += [s for s in range(first, last + 1) if s not in seeds]
    return seeds


def parse_values(name: str, text: str) -> list:
    """A flag's comma list converted to its Config field's type; one-line errors."""
    f = {f.name: f for f in dataclasses.fields(Config)}[name]
    kind = field_type(f)
    flag = f"--{name.replace('_', '-')}"
    values = []
    for item in text.split(","):
        item = item.strip()
        try:
            value = kind(item)
        except ValueError:
            raise ConfigError(f"{flag}: {item!r} is not {'an' if kind is int else 'a'} "
                              f"{kind.__name__}") from None
        choices = f.metadata.get("choices")
        if choices and value not in choices:
            raise ConfigError(f"{flag}: {item!r} is not one of {', '.join(choices)}")
        if value in values:
            raise ConfigError(f"{flag}: {item!r} is given twice")
        values.append(value)
    return values


def make_grid(tasks: str, seeds: str, flags: dict[str, object]) -> Grid:
    """The grid of ``slac sweep``'s arguments; every run's settings checked as ``slac train``
    would, so a bad value stops the sweep before any run starts."""
    task_list = [t.strip() for t in tasks.split(",") if t.strip()]
    if not task_list:
        raise ConfigError("--tasks: give at least one task")
    axes, fixed = {}, {}
    for name, value in flags.items():
        values = parse_values(name, value) if isinstance(value, str) else [value]
        (axes if len(values) > 1 else fixed)[name] = values if len(values) > 1 else values[0]
    grid = Grid(task_list, parse_seeds(seeds), axes, fixed)
    for settings in grid.runs().values():
        resolve(Config(**with_preset(settings)))
    return grid


# ----------------------------------------------------------------------------- the record
def load_state(out: Path) -> dict | None:
    path = out / SWEEP_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path} cannot be read ({e}); move it away to start anew") from None


def save_state(out: Path, state: dict) -> None:
    """Atomically, so a killed driver leaves the previous record or this one."""
    tmp = out / (SWEEP_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    os.replace(tmp, out / SWEEP_FILE)


def check_out(out: Path) -> None:
    """A ConfigError unless ``out`` is new, empty (but for its lock) or a sweep."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a sweep directory")
    if out.exists() and not (out / SWEEP_FILE).exists() \
            and any(p.name != LOCK for p in out.iterdir()):
        raise ConfigError(f"{out} holds files that are not a slac sweep; use a new or empty "
                          "--out")


def open_sweep(out: Path, grid: Grid, command: str, override: bool) -> dict:
    """The sweep's record: new, or the existing one if its grid is this grid (with
    ``override``, the grid is replaced and runs whose settings changed run again)."""
    check_out(out)
    state = load_state(out)
    runs = grid.runs()
    if state is None:
        state = {"version": 1, "runs": {}}
    else:
        old = Grid(**state["grid"])
        diffs = grid.differences(old)
        if diffs and not override:
            raise ConfigError(f"{out} is a sweep of another grid: {'; '.join(diffs)}; "
                              "add --override to change it")
    previous = state["runs"]
    state["grid"] = dataclasses.asdict(grid)
    state["command"] = command
    state["runs"] = {}
    for name, settings in runs.items():
        old = previous.get(name, {})
        same = old.get("settings") == settings
        finished = (same and old.get("state") == "finished"
                    and (out / name / "eval.csv").exists())
        state["runs"][name] = {
            "settings": settings, "variant": grid.variant(settings),
            "state": "finished" if finished else "queued",
            "attempts": old.get("attempts", 0) if same else 0,
            "error": None, "last_eval": old.get("last_eval") if finished else None}
    out.mkdir(parents=True, exist_ok=True)
    save_state(out, state)
    return state


def lock(out: Path) -> rundir.RunLock:
    """The sweep directory's lock, held while its driver runs: one driver per sweep."""
    try:
        return rundir.RunLock(out, LOCK, "slac sweep").acquire()
    except rundir.RunDirError as e:
        raise ConfigError(str(e)) from None


def train_args(settings: dict, run_dir: str, threads: int, device: str) -> list[str]:
    """``slac train`` arguments of one run."""
    args = ["--run-dir", run_dir, "--threads", str(threads), "--device", device]
    for name, value in settings.items():
        flag = f"--{name.replace('_', '-')}"
        if isinstance(value, bool):
            args.append(flag if value else f"--no-{flag[2:]}")
        else:
            args += [flag, str(value)]
    return args


def memory_bytes(settings: dict, action_dim: int = 32) -> int:
    """What one run holds in memory: its replay (mapped whole) and the process around it."""
    cfg = resolve(Config(**with_preset(settings)))
    return Replay.bytes_needed(cfg.replay_capacity, action_dim) + PROCESS_BYTES


# ----------------------------------------------------------------------------- one run
def _die_with_parent() -> None:  # in the child, before exec: SIGTERM when the worker dies
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def run_one(args: list[str], run_dir: str, log: str, attempt: int, stop: str) -> int:
    """``slac train ARGS`` as a child process, its output appended to ``log``; its exit code.
    When the file ``stop`` appears (the driver is stopping), the run gets SIGTERM: it writes
    a checkpoint and exits. A child left by a killed driver may still hold the run: wait."""
    rundir.wait_free(run_dir, timeout=900)
    if os.path.exists(stop):  # the sweep stopped before this run began
        return 128 + signal.SIGTERM
    with open(log, "a") as f:
        f.write(f"{START} {attempt} on {socket.gethostname()} at "
                f"{time.strftime('%Y-%m-%d %H:%M:%S')} ==\n")
        f.flush()
        # its own session: a terminal's Ctrl-C reaches it through the stop file, in order
        proc = subprocess.Popen([sys.executable, "-m", "slac.cli", "train", *args], stdout=f,
                                stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
                                start_new_session=True)
        while proc.poll() is None:
            if os.path.exists(stop):
                proc.send_signal(signal.SIGTERM)
                return proc.wait()
            time.sleep(0.5)
        return proc.returncode


def last_line(log: Path, prefix: str = "") -> str:
    """The log's last line that starts with ``prefix`` (its tail only is read)."""
    try:
        with open(log, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - 8192))
            lines = f.read().decode(errors="replace").replace("\r", "\n").splitlines()
    except OSError:
        return ""
    return next((ln for ln in reversed(lines) if ln.strip() and ln.startswith(prefix)), "")


def last_eval(run_dir: Path) -> float | None:
    try:
        rows = (run_dir / "eval.csv").read_text().splitlines()
    except OSError:
        return None
    if len(rows) < 2:
        return None
    header, last = rows[0].split(","), rows[-1].split(",")
    return float(last[header.index("return_mean")])
