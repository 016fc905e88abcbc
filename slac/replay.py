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

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


@dataclass
class Batch:
    frames: torch.Tensor  # uint8 (B, L+1, H, W, 3)
    actions: torch.Tensor  # float (B, L, A); a_t is taken from frame t, zero where none
    rewards: torch.Tensor  # float (B, L)
    terminals: torch.Tensor  # float (B, L): 1 where transition t ended in a terminal state
    first: torch.Tensor  # bool (B, L+1): frame t starts an episode (t = 0 always does)
    valid: torch.Tensor  # bool (B, L+1): frame t belongs to the newest episode in the sequence

    def to(self, device: torch.device) -> Batch:
        fields = self.__annotations__
        return Batch(*(getattr(self, f).to(device, non_blocking=True) for f in fields))

    def rows(self, start: int, stop: int | None = None) -> Batch:
        """Sequences ``start:stop`` of the batch (views)."""
        return Batch(*(getattr(self, f)[start:stop] for f in self.__annotations__))


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


class Replay:
    """``capacity`` agent steps of sequences, in memory or memory-mapped under ``directory``.

    With a directory (a run's replay), appending writes into files and a checkpoint only flushes
    them and records two counters. ``margin`` extra slots sit beyond the sampled window, so the
    frames written after a checkpoint never overwrite what that checkpoint can sample: a run
    killed between checkpoints resumes with exactly the replay it had.
    """

    FIELDS = ("frames", "actions", "rewards", "terminals", "first", "has_action")

    def __init__(self, capacity: int, action_dim: int, frame_shape=(64, 64, 3), seed: int = 0,
                 directory: str | os.PathLike | None = None, margin: int = 0):
        self.window = capacity + 1  # + the frame waiting for its action
        self.capacity = n = self.window + margin  # physical slots
        self.directory = Path(directory) if directory is not None else None
        shapes = {
            "frames": ((n, *frame_shape), np.uint8), "actions": ((n, action_dim), np.float32),
            "rewards": ((n,), np.float32), "terminals": ((n,), np.bool_),
            "first": ((n,), np.bool_), "has_action": ((n,), np.bool_),
        }
        for name, (shape, dtype) in shapes.items():
            setattr(self, name, self._alloc(name, shape, dtype))
        self.size = 0  # slots in the sampled window
        self.next = 0  # slot written next
        self.rng = np.random.default_rng(seed)

    def _alloc(self, name: str, shape: tuple, dtype) -> np.ndarray:
        if self.directory is None:
            return np.zeros(shape, dtype=dtype)
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{name}.bin"
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        mode = "r+" if path.exists() and path.stat().st_size == nbytes else "w+"
        return np.memmap(path, dtype=dtype, mode=mode, shape=shape)

    def flush(self) -> None:
        """Make the stored steps durable (before a checkpoint refers to them)."""
        for name in self.FIELDS:
            arr = getattr(self, name)
            if isinstance(arr, np.memmap):
                arr.flush()

    def state_dict(self) -> dict:
        return {"size": self.size, "next": self.next, "window": self.window,
                "capacity": self.capacity, "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        if (state["window"], state["capacity"]) != (self.window, self.capacity):
            raise ValueError("replay layout differs from the checkpoint's")
        self.size, self.next = state["size"], state["next"]
        self.rng.bit_generator.state = state["rng"]
        if self.size:  # the newest frame had no action yet; a killed run may have written one
            i = (self.next - 1) % self.capacity
            self.has_action[i], self.actions[i], self.rewards[i], self.terminals[i] = (
                False, 0.0, 0.0, False)

    def __len__(self) -> int:
        return self.size

    def _write_frame(self, frame_chw: np.ndarray, first: bool) -> None:
        i = self.next
        self.frames[i] = frame_chw.transpose(1, 2, 0)
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
