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

from dataclasses import dataclass

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


def episode_masks(first: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """From raw episode-start flags (B, T): the flags with t = 0 set, and the mask of frames at or
    after the last episode start (earlier frames belong to a previous episode)."""
    first = first.clone()
    first[:, 0] = True
    # valid[t] = no episode starts strictly after t
    later = torch.flip(torch.cumsum(torch.flip(first.int(), [1]), 1), [1]) - first.int()
    return first, later == 0


class Replay:
    def __init__(self, capacity: int, action_dim: int, frame_shape=(64, 64, 3), seed: int = 0):
        self.capacity = capacity + 1  # + the frame waiting for its action
        n = self.capacity
        self.frames = np.zeros((n, *frame_shape), dtype=np.uint8)
        self.actions = np.zeros((n, action_dim), dtype=np.float32)
        self.rewards = np.zeros(n, dtype=np.float32)
        self.terminals = np.zeros(n, dtype=np.bool_)
        self.first = np.zeros(n, dtype=np.bool_)
        self.has_action = np.zeros(n, dtype=np.bool_)
        self.size = 0  # slots filled
        self.next = 0  # slot written next
        self.rng = np.random.default_rng(seed)

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
        self.size = min(self.size + 1, self.capacity)

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
        oldest = self.next if self.size == self.capacity else 0
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

    def nbytes(self) -> int:
        arrays = (self.frames, self.actions, self.rewards, self.terminals, self.first,
                  self.has_action)
        return sum(a.nbytes for a in arrays)
