"""Saving and loading an agent: atomic writes (temporary file, fsync, rename)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

AGENT_FILE = "agent.pt"


def atomic_save(obj, path: str | os.PathLike) -> None:
    """Write ``obj`` with ``torch.save`` so that ``path`` is either the old or the new file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save_agent(run_dir: str | os.PathLike, agent, extra: dict) -> None:
    atomic_save({"agent": agent.state_dict(), **extra}, Path(run_dir) / AGENT_FILE)


def load_agent_state(run_dir: str | os.PathLike, device: torch.device) -> dict:
    path = Path(run_dir) / AGENT_FILE
    if not path.exists():
        raise FileNotFoundError(f"{run_dir}: no saved agent ({AGENT_FILE}); train first")
    return torch.load(path, map_location=device, weights_only=False)
