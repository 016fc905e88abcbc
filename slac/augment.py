"""Random crop (Appendix D, Figure 13): each training image is replicate-padded by ``pad``
pixels and a random crop of its original size taken, as input to the model and the policy;
the reconstruction targets stay the original images, and acting never crops."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from slac.replay import Batch

PAD = 4


def random_crop(frames: torch.Tensor, rng: np.random.Generator, pad: int = PAD) -> torch.Tensor:
    """uint8 images (..., H, W, C) -> the same shape, each shifted by its own random offset in
    [-pad, pad] on both axes, the border replicated."""
    *lead, h, w, c = frames.shape
    x = frames.reshape(-1, h, w, c)
    n = x.shape[0]
    dy, dx = (torch.from_numpy(rng.integers(0, 2 * pad + 1, size=n)) for _ in range(2))
    # an index into the original image clamped to its border is the replicate-padded crop
    rows = (dy[:, None] + torch.arange(h) - pad).clamp_(0, h - 1)  # (N, H)
    cols = (dx[:, None] + torch.arange(w) - pad).clamp_(0, w - 1)  # (N, W)
    out = x[torch.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
    return out.reshape(*lead, h, w, c)


def crop_batch(batch: Batch, rng: np.random.Generator) -> Batch:
    """The batch with randomly cropped frames as inputs and the originals as image targets."""
    return dataclasses.replace(batch, frames=random_crop(batch.frames, rng),
                               targets=batch.frames)
