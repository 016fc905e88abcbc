"""Runs a sweep's queued runs on Ray: resources, retries, the record and the progress board.

By default a local Ray is started inside the command with this machine's cores; ``address``
joins a running cluster. Each run asks Ray for its CPUs, GPUs and memory (its replay and the
process around it), so Ray never starts more runs than the machine holds.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from slac import sweep
from slac.config import ConfigError
from slac.logger import duration

STOP_TIMEOUT = 300  # seconds a stopping sweep waits for its runs' checkpoints


@dataclass
class Resources:
    cpus: float = 1.0
    gpus: float = 0.0
    memory_gb: float | None = None  # per run; None: estimated from its settings

    @property
    def threads(self) -> int:
        return max(1, int(self.cpus))

    @property
    def device(self) -> str:
        return "cuda" if self.gpus > 0 else "cpu"


class Board:
    """One line per active run and the counts: redrawn in place on a terminal, printed as
    plain lines every ``every`` seconds otherwise; events are always printed as lines."""

    def __init__(self, stream=None, every: float = 60.0):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every = 1.0 if self.tty else every
        self.drawn = 0  # lines of the board on the terminal
        self.last = 0.0

    def _erase(self) -> None:
        if self.tty and self.drawn:
            self.stream.write(f"\033[{self.drawn}F\033[J")
            self.drawn = 0

    def event(self, text: str) -> None:
        self._erase()
        self.stream.write(text + "\n")
        self.stream.flush()
        self.last = 0.0  # redraw the board after it

    def show(self, lines: list[str], force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < self.every:
            return
        self.last = now
        self._erase()
        stamp = "" if self.tty else time.strftime("%H:%M:%S ")
        self.stream.write("".join(f"{stamp}{ln}\n" for ln in lines))
        self.stream.flush()
        self.drawn = len(lines) if self.tty else 0


def check_address(address: str | None) -> None:
    """A ConfigError now if nothing listens at ``address`` (Ray would retry for minutes)."""
    if not address or address == "auto":
        return
    host, sep, port = address.split("://")[-1].rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"--address {address}: give HOST:PORT (or auto)")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise ConfigError(f"cannot reach the Ray cluster at {address}: {e}") from None


def _start_ray(address: str | None):
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address:  # `ray start` enables token authentication, a joining driver must send it
        os.environ.setdefault("RAY_AUTH_MODE", "token")
    import ray

    try:
        ray.init(address=address or "local", include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING, configure_logging=True)
    except (ConnectionError, ValueError, RuntimeError) as e:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise ConfigError(f"cannot start {where}: {str(e).splitlines()[0]}") from None
    return ray


def _capacity(ray, res: Resources, memory: int) -> str:
    """What the cluster offers and how many runs fit at once; a ConfigError if none fits."""
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    fits = [int(min(n.get("CPU", 0) // max(res.cpus, 1e-9),
                    n.get("memory", 0) // memory,
                    n.get("GPU", 0) // res.gpus if res.gpus else 1 << 30)) for n in nodes]
    if sum(fits) == 0:
        best = max(nodes, key=lambda n: n.get("memory", 0))
        raise ConfigError(
            f"no Ray node can hold a run ({res.cpus:g} CPUs, {res.gpus:g} GPUs, "
            f"{memory / 2**30:.1f} GiB each); the largest offers {best.get('CPU', 0):g} CPUs, "
            f"{best.get('GPU', 0):g} GPUs, {best.get('memory', 0) / 2**30:.1f} GiB")
    cpus = sum(n.get("CPU", 0) for n in nodes)
    mem = sum(n.get("memory", 0) for n in nodes)
    return (f"Ray: {len(nodes)} node{'s' * (len(nodes) > 1)}, {cpus:g} CPUs, "
            f"{mem / 2**30:.1f} GiB for tasks; a run takes {res.cpus:g} CPU, {res.gpus:g} GPU, "
            f"{memory / 2**30:.1f} GiB: {sum(fits)} at once")


def run(out: Path, state: dict, res: Resources, address: str | None, retries: int,
        override: bool, board: Board | None = None) -> int:
    """Run every run of ``state`` that is not finished; 0 when all finished, 1 otherwise."""
    board = board or Board()
    runs = state["runs"]
    todo = [n for n, r in runs.items() if r["state"] != "finished"]
    done_before = len(runs) - len(todo)
    if not todo:
        board.event(f"slac sweep: all {len(runs)} runs of {out} are finished; nothing to run")
        return 0
    memory = max(int(res.memory_gb * 2**30) if res.memory_gb else
                 sweep.memory_bytes(runs[n]["settings"]) for n in todo)
    ray = _start_ray(address)
    previous = None
    if threading.current_thread() is threading.main_thread():  # a batch system's stop signal
        previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        board.event(_capacity(ray, res, memory))
        board.event(f"slac sweep: {len(todo)} runs to do, {done_before} finished before "
                    f"({out / sweep.SWEEP_FILE})")
        return _drive(ray, out, state, todo, res, memory, retries, override, board)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        ray.shutdown()


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt  # stop as on Ctrl-C: record, then stop the runs at checkpoints


def _drive(ray, out, state, todo, res, memory, retries, override, board) -> int:
    runs = state["runs"]
    (out / "logs").mkdir(exist_ok=True)
    task = ray.remote(sweep.run_one).options(num_cpus=res.cpus, num_gpus=res.gpus,
                                             memory=memory, max_retries=0)
    pending: dict = {}
    tries = {n: 0 for n in todo}

    def submit(name: str) -> None:
        tries[name] += 1
        r = runs[name]
        r["attempts"] += 1
        r["state"], r["error"] = "queued", None
        args = sweep.train_args(r["settings"], str(out / name), res.threads, res.device)
        if override:
            args.append("--override")
        pending[task.remote(args, str(out / name), str(out / "logs" / f"{name}.log"),
                            r["attempts"], str(out / sweep.STOP))] = name

    (out / sweep.STOP).unlink(missing_ok=True)  # a previous driver's stop
    for name in todo:
        submit(name)
    sweep.save_state(out, state)
    started = time.monotonic()
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in ready:
                name = pending.pop(ref)
                _finished(ray, ref, out, name, runs[name])
                r = runs[name]
                if r["state"] == "failed" and tries[name] <= retries:
                    board.event(f"failed  {name} (attempt {tries[name]}): {r['error']}; "
                                "retrying")
                    submit(name)
                elif r["state"] == "failed":
                    board.event(f"failed  {name} after {tries[name]} attempts: {r['error']} "
                                f"(log: {out / 'logs' / (name + '.log')})")
                else:
                    board.event(f"done    {name}: last eval {r['last_eval']:.1f}")
                sweep.save_state(out, state)
            changed = _mark_running(out, runs, pending.values())
            if changed:
                sweep.save_state(out, state)
            board.show(_lines(out, runs, pending.values(), started), force=changed)
    except KeyboardInterrupt:
        for name in pending.values():
            runs[name]["state"] = "queued"
        sweep.save_state(out, state)
        board.event(f"slac sweep: stopping; {len(pending)} runs write a checkpoint first ...")
        (out / sweep.STOP).touch()  # each task stops its run with SIGTERM and waits for it
        ray.wait(list(pending), num_returns=len(pending), timeout=STOP_TIMEOUT)
        board.event("slac sweep: stopped. Run the same command again to resume.")
        return 130
    return 0 if all(r["state"] == "finished" for r in runs.values()) else 1


def _finished(ray, ref, out: Path, name: str, r: dict) -> None:
    """Record how a run's task ended."""
    try:
        code = ray.get(ref)
    except Exception as e:  # noqa: BLE001 - a worker crash or a lost node: a failed attempt
        r["state"], r["error"] = "failed", f"{type(e).__name__}: {str(e).splitlines()[0]}"
        return
    r["last_eval"] = sweep.last_eval(out / name)
    if code == 0:
        r["state"] = "finished"
        return
    line = sweep.last_line(out / "logs" / f"{name}.log")
    r["state"], r["error"] = "failed", f"exit code {code}: {line.strip()[-200:]}"


def _mark_running(out: Path, runs: dict, names) -> bool:
    """Queued runs whose task has begun its attempt (its log says so) become running."""
    changed = False
    for name in names:
        r = runs[name]
        if r["state"] == "queued":
            start = sweep.last_line(out / "logs" / f"{name}.log", sweep.START)
            if start.startswith(f"{sweep.START} {r['attempts']} "):
                r["state"], changed = "running", True
    return changed


def _lines(out: Path, runs: dict, active, started: float) -> list[str]:
    counts = {s: 0 for s in ("finished", "running", "queued", "failed")}
    for r in runs.values():
        counts[r["state"]] += 1
    lines = []
    for name in active:
        r = runs[name]
        if r["state"] != "running":
            continue
        s = r["settings"]
        status = sweep.last_line(out / "logs" / f"{name}.log", f"[{s['task']} s{s['seed']}]")
        status = status.split("] ", 1)[-1].split(" | return")[0] if status else "starting"
        ev = sweep.last_eval(out / name)
        shown = ev is None or "last eval" in status
        lines.append(f"  {s['task']} seed {s['seed']} [{r['variant']}]: {status}"
                     f"{'' if shown else f' | last eval {ev:.1f}'}")
    lines.append(", ".join(f"{v} {k}" for k, v in counts.items())
                 + f" | {duration(time.monotonic() - started)}")
    return lines
