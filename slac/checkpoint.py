"""Crash-safe checkpoints: atomic writes (temporary file, fsync, rename) with a checksum.

A checkpoint file is ``MAGIC``, the SHA-256 of the payload in hex, a newline, then the payload
(``torch.save`` bytes). Loading verifies the checksum; a damaged newest checkpoint is skipped
with a warning in favour of the one before it. The newest ``KEEP`` checkpoints that verify are
kept; damaged ones are deleted when a new checkpoint is written.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import warnings
from pathlib import Path

import torch

AGENT_FILE = "agent.pt"
CHECKPOINT_DIR = "checkpoints"
MAGIC = b"SLACCKPT1\n"
KEEP = 2
_NAME = re.compile(r"^ckpt-(\d+)-(\d+)\.pt$")


class CorruptCheckpoint(ValueError):
    pass


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(data: bytes, path: str | os.PathLike, chunk: int = 1 << 24) -> None:
    """``path`` holds either its old content or all of ``data``, whenever the process dies."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            for i in range(0, len(data), chunk):
                f.write(data[i:i + chunk])
                _fault_point("checkpoint-write")
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)  # no partial file left behind (a full disk, say)
        raise
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def dumps(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    payload = buf.getvalue()
    return MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload


def payload(data: bytes) -> bytes:
    """The verified payload of a checkpoint file's bytes; ``CorruptCheckpoint`` otherwise."""
    header = len(MAGIC) + 65
    if not data.startswith(MAGIC) or len(data) < header:
        raise CorruptCheckpoint("not a slac checkpoint, or truncated")
    digest, body = data[len(MAGIC):header - 1].decode(errors="replace"), data[header:]
    if hashlib.sha256(body).hexdigest() != digest:
        raise CorruptCheckpoint("checksum mismatch")
    return body


def loads(data: bytes, device: torch.device | str = "cpu"):
    return torch.load(io.BytesIO(payload(data)), map_location=device, weights_only=False)


def verifies(path: str | os.PathLike) -> bool:
    """Whether the checkpoint file at ``path`` is whole (its checksum holds)."""
    try:
        payload(Path(path).read_bytes())
    except (CorruptCheckpoint, OSError):
        return False
    return True


def atomic_save(obj, path: str | os.PathLike) -> None:
    atomic_write_bytes(dumps(obj), path)


def load(path: str | os.PathLike, device: torch.device | str = "cpu"):
    return loads(Path(path).read_bytes(), device)


def list_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """Checkpoint files of a run, newest first."""
    d = Path(run_dir) / CHECKPOINT_DIR
    if not d.is_dir():
        return []
    found = [((int(m.group(1)), int(m.group(2))), p) for p in d.iterdir()
             if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def save_checkpoint(run_dir: str | os.PathLike, state: dict, index: tuple[int, int]) -> Path:
    """Save as the checkpoint at ``index`` (environment steps, pretraining updates)."""
    d = Path(run_dir) / CHECKPOINT_DIR
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"ckpt-{index[0]:012d}-{index[1]:09d}.pt"
    atomic_save(state, path)
    kept = 1  # the one just written; then the newest older ones that verify, never a damaged one
    for old in list_checkpoints(run_dir):
        if old == path:
            continue
        if kept < KEEP and verifies(old):
            kept += 1
        else:
            old.unlink(missing_ok=True)
    return path


def newest_intact(run_dir: str | os.PathLike) -> Path | None:
    """The newest checkpoint of the run that verifies, or None."""
    return next((p for p in list_checkpoints(run_dir) if verifies(p)), None)


def describe_intact(run_dir: str | os.PathLike) -> str:
    """Which checkpoint a rerun would resume from, in words, for error messages."""
    path = newest_intact(run_dir)
    if path is None:
        return "no checkpoint was saved yet, so a rerun starts the run again"
    steps, updates = _NAME.match(path.name).groups()
    return (f"checkpoint {path.name} (env step {int(steps)}, pretraining update "
            f"{int(updates)}) is intact; rerun the same command to resume from it")


def load_latest(run_dir: str | os.PathLike, device: torch.device | str = "cpu"):
    """The newest checkpoint that loads, or None; a damaged newer one is reported and skipped."""
    for path in list_checkpoints(run_dir):
        try:
            return load(path, device)
        except (CorruptCheckpoint, OSError, RuntimeError, EOFError) as e:
            warnings.warn(f"checkpoint {path} is damaged ({e}); falling back to an older one",
                          stacklevel=2)
    return None


def save_agent(run_dir: str | os.PathLike, agent, extra: dict) -> None:
    """The trained agent alone (for ``slac eval`` and ``slac viz``), atomically."""
    atomic_save({"agent": agent.state_dict(), **extra}, Path(run_dir) / AGENT_FILE)


def load_agent_state(run_dir: str | os.PathLike, device: torch.device | str = "cpu") -> dict:
    """``agent.pt`` (written at every evaluation) or, before the first one (during model
    pretraining, say), the agent inside the newest checkpoint."""
    path = Path(run_dir) / AGENT_FILE
    if path.exists():
        return load(path, device)
    state = load_latest(run_dir, device)
    if state is None:
        raise FileNotFoundError(
            f"{run_dir}: no saved agent ({AGENT_FILE}) and no checkpoint; train first")
    frames = state["history"][0]  # (L, H, W, 3), or sac-state's (L, S)
    return {"agent": state["agent"], "config": state["config"],
            "env_step": state["counters"]["env_step"],
            "action_dim": int(state["history"][1].shape[-1]),
            "state_dim": int(frames.shape[-1]) if frames.ndim == 2 else 0}


def _fault_point(name: str) -> None:
    """Testing aid: ``SLAC_FAULT=checkpoint-write:N`` SIGKILLs this process at the N-th time it
    passes ``name``, so tests can kill a real run inside a checkpoint write;
    ``SLAC_FAULT=checkpoint-write:sleep=S`` makes each pass take S seconds more."""
    spec = os.environ.get("SLAC_FAULT")
    if not spec or not spec.startswith(name + ":"):
        return
    if spec.startswith(name + ":sleep="):
        import time

        time.sleep(float(spec.split("=")[1]))
        return
    _fault_counts[name] = _fault_counts.get(name, 0) + 1
    if _fault_counts[name] == int(spec.split(":")[1]):
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


_fault_counts: dict[str, int] = {}
