"""The run directory as the unit of work: whose it is, and one writer at a time.

``slac train`` writes only into a directory that is new, empty, or one of its own runs,
recognised by the marker file it creates there. The same file carries an OS-level lock
(``flock``) held for the whole run, so a second ``slac train`` on the directory stops at once;
the kernel drops the lock when its process dies, so a killed run never leaves a stale one.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from pathlib import Path

MARKER = ".slac-run"  # marks a run directory as slac's, and is its lock file


class RunDirError(ValueError):
    """The run directory cannot be used: someone else's, or in use by another process."""


def is_own(run_dir: str | os.PathLike) -> bool:
    """Whether ``run_dir`` is a run of slac's: it has the marker, or (runs of versions before
    the marker) checkpoints and a config.json."""
    d = Path(run_dir)
    return (d / MARKER).exists() or ((d / "checkpoints").is_dir()
                                     and (d / "config.json").is_file())


def check_usable(run_dir: str | os.PathLike) -> None:
    """A ``RunDirError`` unless ``run_dir`` is new, empty, or one of slac's runs."""
    if str(run_dir).strip() == "":
        raise RunDirError("the run directory must not be empty (give --run-dir DIR)")
    d = Path(run_dir)
    if not d.exists():
        return
    if not d.is_dir():
        raise RunDirError(f"{run_dir} is a file, not a run directory")
    if is_own(d) or not any(d.iterdir()):
        return
    raise RunDirError(f"{run_dir} holds files that are not a slac run; use a new or empty "
                      "--run-dir")


def check_space(run_dir: str | os.PathLike, replay_bytes: int, checkpoint_bytes: int) -> None:
    """A ``RunDirError`` with the figures when the disk of ``run_dir`` cannot hold what a run
    will write there."""
    need, free = replay_bytes + checkpoint_bytes, shutil.disk_usage(run_dir).free
    if need > free:
        raise RunDirError(f"{run_dir}: the run needs about {need / 1e9:.2f} GB (replay "
                          f"{replay_bytes / 1e9:.2f} GB, checkpoints {checkpoint_bytes / 1e9:.2f}"
                          f" GB) and the disk has {free / 1e9:.2f} GB free")


class RunLock:
    """The marker of ``run_dir``, created if missing, locked for this process's run."""

    def __init__(self, run_dir: str | os.PathLike, marker: str = MARKER,
                 holder: str = "slac train"):
        self.path = Path(run_dir) / marker
        self.holder = holder  # what holds such a lock, for the error message
        self.fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock; a ``RunDirError`` naming the holder's PID if another process has it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunDirError(f"{self.path.parent} is in use by another {self.holder} "
                              f"(PID {holder}); wait for it to end or stop it") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def wait_free(run_dir: str | os.PathLike, timeout: float, poll: float = 1.0) -> bool:
    """Wait until no process holds ``run_dir``'s lock (at most ``timeout`` s); whether it is
    free. A run stopped by a signal holds it while it writes its checkpoint."""
    path = Path(run_dir) / MARKER
    deadline = time.monotonic() + timeout
    while path.exists():
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
        finally:
            os.close(fd)  # closing drops a lock taken here
        time.sleep(poll)
    return True
