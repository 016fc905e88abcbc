"""Replay of frames, actions and rewards; samples 8-step sequences that may cross episodes.

Layout: one slot per frame, in the order frames arrive. Slot ``i`` holds frame ``x_i`` and, when
an action was taken from it, ``a_i``, ``r_i`` and whether that transition terminated. The last
frame of an episode has no action; the next slot is the first frame of the next episode. Every
frame is stored once, as uint8 HWC (a batch converted to float is then channels-last for free).

A sequence of ``L`` steps is ``L + 1`` consecutive slots. It may start in one episode and end in
the next (as in the released code), so the first steps of every episode are trained; the masks
say where the newest episode starts. Only its last transition must be real, since the critic
learns from it.
"""

from __future__ import annotations

import errno
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


@dataclass
class Batch:
    frames: torch.Tensor  # uint8 (B, L+1, H, W, 3); state SAC's: float (B, L+1, S)
    actions: torch.Tensor  # float (B, L, A); a_t is taken from frame t, zero where none
    rewards: torch.Tensor  # float (B, L)
    terminals: torch.Tensor  # float (B, L): 1 where transition t ended in a terminal state
    first: torch.Tensor  # bool (B, L+1): frame t starts an episode (t = 0 always does)
    valid: torch.Tensor  # bool (B, L+1): frame t belongs to the newest episode in the sequence
    targets: torch.Tensor | None = None  # uint8 images the model reconstructs: None = frames
    # (with --random-crop, ``frames`` are the cropped inputs and these the originals)

    @property
    def images(self) -> torch.Tensor:
        """The images the model's likelihood is of."""
        return self.frames if self.targets is None else self.targets

    def _map(self, fn) -> Batch:
        return Batch(*(None if (v := getattr(self, f)) is None else fn(v)
                       for f in self.__annotations__))

    def to(self, device: torch.device) -> Batch:
        return self._map(lambda v: v.to(device, non_blocking=True))

    def rows(self, start: int, stop: int | None = None) -> Batch:
        """Sequences ``start:stop`` of the batch (views)."""
        return self._map(lambda v: v[start:stop])


def episode_masks(first: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """From raw episode-start flags (B, T): the flags with t = 0 set, and the mask of frames at or
    after the last episode start (earlier frames belong to a previous episode)."""
    first = first.clone()
    first[:, 0] = True
    # valid[t] = no episode starts strictly after t
    later = torch.flip(torch.cumsum(torch.flip(first.int(), [1]), 1), [1]) - first.int()
    return first, later == 0


def checkpoint_margin(checkpoint_every: int, action_repeat: int) -> int:
    """The replay margin a run needs: the slots written in two checkpoint intervals at most (an
    agent step writes at most two frames; ``checkpoint_every`` is in environment steps)."""
    return 2 * (2 * -(-checkpoint_every // action_repeat) + 2)


class ReplayDamaged(ValueError):
    """A run's replay files are missing, cut short, or differ from what its checkpoint recorded."""


def _shapes(n: int, action_dim: int, frame_shape: tuple,
            frame_dtype: type = np.uint8) -> dict[str, tuple[tuple, type]]:
    return {
        "frames": ((n, *frame_shape), frame_dtype), "actions": ((n, action_dim), np.float32),
        "rewards": ((n,), np.float32), "terminals": ((n,), np.bool_),
        "first": ((n,), np.bool_), "has_action": ((n,), np.bool_),
    }


class Replay:
    """``capacity`` agent steps of sequences, in memory or memory-mapped under ``directory``.

    With a directory (a run's replay), appending writes into files and a checkpoint only flushes
    them and records two counters. ``margin`` extra slots sit beyond the sampled window, so the
    frames written after a checkpoint never overwrite what that checkpoint can sample: a run
    killed between checkpoints resumes with exactly the replay it had.

    The files are allocated whole when created (a full disk fails then, not in a later write),
    and each checkpoint's state carries a digest of every block of ``BLOCK`` slots of the window,
    computed again only for blocks written since the last one. Reopened for a resume
    (``create=False``), missing or cut files and blocks whose digest differs raise
    :class:`ReplayDamaged`; with ``on_damage="exclude"`` the damaged slots are left out of
    sampling instead (until new steps overwrite them).
    """

    FIELDS = ("frames", "actions", "rewards", "terminals", "first", "has_action")
    BLOCK = 1024  # slots per digest

    def __init__(self, capacity: int, action_dim: int, frame_shape=(64, 64, 3), seed: int = 0,
                 directory: str | os.PathLike | None = None, margin: int = 0,
                 create: bool = True, on_damage: str = "raise", frame_dtype: type = np.uint8):
        self.window = capacity + 1  # + the frame waiting for its action
        self.capacity = n = self.window + margin  # physical slots
        self.directory = Path(directory) if directory is not None else None
        self.on_damage = on_damage
        self.lost: list[str] = []  # files that were missing or cut, recreated empty
        shapes = _shapes(n, action_dim, frame_shape, frame_dtype)
        created: list[Path] = []
        try:
            for name, (shape, dtype) in shapes.items():
                setattr(self, name, self._alloc(name, shape, dtype, create, created))
        except BaseException:
            for path in created:  # a full disk, say: no partial replay left behind
                path.unlink(missing_ok=True)
            raise
        self.excluded = np.zeros(n, np.bool_)  # damaged slots, never sampled
        self.size = 0  # slots in the sampled window
        self.next = 0  # slot written next
        self.rng = np.random.default_rng(seed)
        self.digests: dict[int, str] = {}  # block -> digest of its slots in the window
        self.dirty: set[int] = set()  # blocks changed since the digests were computed

    @staticmethod
    def bytes_needed(capacity: int, action_dim: int, margin: int = 0,
                     frame_shape=(64, 64, 3), frame_dtype: type = np.uint8) -> int:
        """The bytes a replay of these sizes takes on disk."""
        shapes = _shapes(capacity + 1 + margin, action_dim, frame_shape, frame_dtype)
        return sum(int(np.prod(s)) * np.dtype(t).itemsize for s, t in shapes.values())

    def _alloc(self, name: str, shape: tuple, dtype, create: bool,
               created: list[Path]) -> np.ndarray:
        if self.directory is None:
            return np.zeros(shape, dtype=dtype)
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{name}.bin"
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        if path.exists() and path.stat().st_size == nbytes:
            return np.memmap(path, dtype=dtype, mode="r+", shape=shape)
        if not create:
            found = (f"has {path.stat().st_size} bytes, not {nbytes}" if path.exists()
                     else "is missing")
            if self.on_damage != "exclude":
                raise ReplayDamaged(f"replay file {path} {found}")
            self.lost.append(f"{path.name} {found}")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        created.append(path)
        try:
            os.posix_fallocate(fd, 0, nbytes)  # every block now, so no write can find no space
        except OSError as e:
            if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # not supported: sparse file
                raise
            os.ftruncate(fd, nbytes)
        finally:
            os.close(fd)
        return np.memmap(path, dtype=dtype, mode="r+", shape=shape)

    def flush(self) -> None:
        """Make the stored steps durable (before a checkpoint refers to them)."""
        for name in self.FIELDS:
            arr = getattr(self, name)
            if isinstance(arr, np.memmap):
                arr.flush()

    def state_dict(self) -> dict:
        state = {"size": self.size, "next": self.next, "window": self.window,
                 "capacity": self.capacity, "rng": self.rng.bit_generator.state,
                 "excluded": np.flatnonzero(self.excluded)}
        if self.directory is not None:
            state["blocks"] = self.block_digests()
        return state

    def load_state_dict(self, state: dict) -> None:
        if (state["window"], state["capacity"]) != (self.window, self.capacity):
            raise ValueError("replay layout differs from the checkpoint's")
        self.size, self.next = state["size"], state["next"]
        self.rng.bit_generator.state = state["rng"]
        self.excluded[:] = False
        self.excluded[state.get("excluded", [])] = True
        if self.size:  # the newest frame had no action yet; a killed run may have written one
            i = (self.next - 1) % self.capacity
            self.has_action[i], self.actions[i], self.rewards[i], self.terminals[i] = (
                False, 0.0, 0.0, False)
        if self.lost:  # files recreated empty (on_damage="exclude"): nothing of the window is left
            self._exclude(self._window_ranges())
            return
        stored = state.get("blocks")  # absent in checkpoints of versions before the digests
        if stored is None or self.directory is None:
            return
        ranges = self._window_ranges()
        bad = [b for b, digest in stored.items()
               if self._digest(self._in_block(b, ranges)) != digest]
        if bad and self.on_damage != "exclude":
            raise ReplayDamaged(f"{len(bad)} of {len(stored)} blocks of the replay in "
                                f"{self.directory} differ from what the checkpoint recorded")
        for b in bad:
            self._exclude(self._in_block(b, ranges))
        self.digests = {b: d for b, d in stored.items() if b not in bad}
        self.dirty = set(bad)

    def damage(self) -> tuple[int, int]:
        """(slots excluded from sampling, slots in the window)."""
        return int(self.excluded.sum()), self.size

    def _exclude(self, ranges: list[tuple[int, int]]) -> None:
        for lo, hi in ranges:
            self.excluded[lo:hi] = True

    def _window_ranges(self) -> list[tuple[int, int]]:
        """The window's physical slots as one or two ranges [lo, hi)."""
        if self.size == 0:
            return []
        oldest = (self.next - self.size) % self.capacity
        if oldest + self.size <= self.capacity:
            return [(oldest, oldest + self.size)]
        return [(oldest, self.capacity), (0, oldest + self.size - self.capacity)]

    def _in_block(self, block: int, ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
        lo_b, hi_b = block * self.BLOCK, min((block + 1) * self.BLOCK, self.capacity)
        return [(max(lo, lo_b), min(hi, hi_b)) for lo, hi in ranges
                if max(lo, lo_b) < min(hi, hi_b)]

    def _digest(self, ranges: list[tuple[int, int]]) -> str:
        h = hashlib.blake2b(digest_size=16)
        for lo, hi in ranges:
            h.update(f"{lo}:{hi};".encode())
            for name in self.FIELDS:
                h.update(np.ascontiguousarray(getattr(self, name)[lo:hi]).data)
        return h.hexdigest()

    def block_digests(self) -> dict[int, str]:
        """The digest of each block's slots in the window, computing only changed blocks."""
        ranges = self._window_ranges()
        for b in sorted(self.dirty):
            inside = self._in_block(b, ranges)
            if inside:
                self.digests[b] = self._digest(inside)
            else:
                self.digests.pop(b, None)
        self.dirty.clear()
        return dict(self.digests)

    def __len__(self) -> int:
        return self.size

    def _write_frame(self, frame_chw: np.ndarray, first: bool) -> None:
        i = self.next
        self.dirty.add(i // self.BLOCK)
        if self.size == self.window:  # the oldest slot leaves the window
            self.dirty.add(((i - self.size) % self.capacity) // self.BLOCK)
        self.excluded[i] = False
        # frames are stored HWC; a state vector (the state-SAC baseline's) as it is
        self.frames[i] = frame_chw.transpose(1, 2, 0) if frame_chw.ndim == 3 else frame_chw
        self.first[i] = first
        self.has_action[i] = False
        self.actions[i] = 0.0
        self.rewards[i] = 0.0
        self.terminals[i] = False
        self.next = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.window)

    def start_episode(self, frame: np.ndarray) -> None:
        """Store the first frame (uint8, 3xHxW) of an episode."""
        self._write_frame(frame, first=True)

    def add(self, action: np.ndarray, reward: float, next_frame: np.ndarray, terminated: bool):
        """Store the action taken from the newest frame, its reward, and the frame it led to."""
        i = (self.next - 1) % self.capacity
        if self.size == 0 or self.has_action[i]:
            raise RuntimeError("Replay.add before start_episode")
        self.dirty.add(i // self.BLOCK)
        self.actions[i] = action
        self.rewards[i] = reward
        self.terminals[i] = terminated
        self.has_action[i] = True
        self._write_frame(next_frame, first=False)

    def _slots(self, logical: np.ndarray) -> np.ndarray:
        oldest = (self.next - self.size) % self.capacity
        return (oldest + logical) % self.capacity

    def num_sequences(self, length: int) -> int:
        """How many start positions hold ``length + 1`` consecutive frames (before masking)."""
        return max(0, self.size - length)

    def sample(self, batch_size: int, length: int) -> Batch:
        """``batch_size`` sequences of ``length`` steps, uniformly over valid start positions."""
        n = self.num_sequences(length)
        if n <= 0:
            raise ValueError(f"replay holds {self.size} frames; a sequence needs {length + 1}")
        steps = np.arange(length + 1)
        starts = np.empty(batch_size, dtype=np.int64)
        todo = np.arange(batch_size)
        for _ in range(1000):  # rejection: only ~2 of every episode's starts are invalid
            cand = self.rng.integers(0, n, size=todo.size)
            last = self._slots(cand + length - 1)
            ok = self.has_action[last] & ~self.first[self._slots(cand + length)]
            if self.excluded.any():  # no sequence through a damaged slot
                ok &= ~self.excluded[self._slots(cand[:, None] + steps[None, :])].any(1)
            starts[todo[ok]] = cand[ok]
            todo = todo[~ok]
            if todo.size == 0:
                break
        else:
            raise ValueError("replay holds no sequence whose last transition is complete")
        idx = self._slots(starts[:, None] + steps[None, :])  # (B, L+1)
        act_idx = idx[:, :-1]
        first, valid = episode_masks(torch.from_numpy(self.first[idx]))
        return Batch(
            frames=torch.from_numpy(self.frames[idx]),
            actions=torch.from_numpy(self.actions[act_idx]),
            rewards=torch.from_numpy(self.rewards[act_idx]),
            terminals=torch.from_numpy(self.terminals[act_idx].astype(np.float32)),
            first=first,
            valid=valid,
        )

    def spread_frames(self, n: int) -> torch.Tensor:
        """Up to ``n`` frames (uint8, N H W 3) spread evenly over the stored window, chosen
        without a random draw, so diagnostics that read them never change what a run samples."""
        if self.size == 0:
            raise ValueError("replay is empty")
        logical = np.unique(np.linspace(0, self.size - 1, n).round().astype(np.int64))
        return torch.from_numpy(self.frames[self._slots(logical)])

    def nbytes(self) -> int:
        return sum(getattr(self, name).nbytes for name in self.FIELDS)
