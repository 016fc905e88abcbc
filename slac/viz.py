"""What the model learned, as pictures (Appendix E): for one sequence and its actions, the true
frames, posterior reconstructions, predictions of the prior conditioned on the first frame, and
samples of the unconditioned prior; as a PNG grid and as a video."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from slac.model import LatentModel

ROWS = ("true frames", "posterior", "prior | first frame", "prior")


@torch.no_grad()
def predictions(model: LatentModel, frames: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """frames (T+1, H, W, 3) uint8 and actions (T, A) -> uint8 (4, T+1, H, W, 3), rows as ROWS.

    Runs on a forked random generator, so drawing pictures never changes a training run.
    """
    device = next(model.parameters()).device
    x = torch.from_numpy(np.ascontiguousarray(frames)).to(device)[None]
    a = torch.from_numpy(np.asarray(actions, np.float32)).to(device)[None]
    T = x.shape[1]
    first = torch.zeros(1, T, dtype=torch.bool, device=device)
    first[:, 0] = True
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        post = model.filter(model.encoder(x), a, first)
        conditional = [(post.z1[:, 0], post.z2[:, 0])]
        unconditional = [model.prior_start(1, device)]
        for t in range(T - 1):
            conditional.append(model.prior_step(*conditional[-1], a[:, t]))
            unconditional.append(model.prior_step(*unconditional[-1], a[:, t]))

        def decode(zs) -> torch.Tensor:
            z = torch.stack([torch.cat(p, -1) for p in zs], 1)
            return model.decoder(z)[0]

        images = [x[0].permute(0, 3, 1, 2).float() / 255.0, model.decoder(post.z)[0],
                  decode(conditional), decode(unconditional)]
    out = torch.stack(images).clamp(0, 1).mul(255).round().byte()
    return out.permute(0, 1, 3, 4, 2).cpu().numpy()


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType
        return ImageFont.load_default()


def grid(rows: np.ndarray, scale: int = 2, label_width: int = 170) -> np.ndarray:
    """(R, T, H, W, 3) uint8 -> one HWC image: a caption column naming each row, frames upscaled
    ``scale`` times (nearest neighbour), a thin gap between frames."""
    from PIL import Image, ImageDraw

    R, T, H, W, _ = rows.shape
    h, w, gap = H * scale, W * scale, 2
    canvas = np.full((R * (h + gap) + gap, label_width + T * (w + gap) + gap, 3), 255, np.uint8)
    big = rows.repeat(scale, 2).repeat(scale, 3)
    for r in range(R):
        for t in range(T):
            y, x = gap + r * (h + gap), label_width + gap + t * (w + gap)
            canvas[y:y + h, x:x + w] = big[r, t]
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    font = _font(max(12, h // 6))
    for r, name in enumerate(ROWS[:R]):
        draw.text((8, gap + r * (h + gap) + h // 2), name, fill=(0, 0, 0), font=font, anchor="lm")
    return np.asarray(image)


def video_frames(rows: np.ndarray, scale: int = 3, caption: int = 32) -> list[np.ndarray]:
    """One picture per time step: the rows side by side, each captioned (sizes multiple of 16)."""
    from PIL import Image, ImageDraw

    R, T, H, W, _ = rows.shape
    h, w = H * scale, W * scale
    big = rows.repeat(scale, 2).repeat(scale, 3)
    font = _font(14)
    out = []
    for t in range(T):
        canvas = np.full((h + caption, R * w, 3), 255, np.uint8)
        for r in range(R):
            canvas[caption:, r * w:(r + 1) * w] = big[r, t]
        image = Image.fromarray(canvas)
        draw = ImageDraw.Draw(image)
        for r, name in enumerate(ROWS[:R]):
            draw.text((r * w + w // 2, caption // 2), f"{name} t={t}", fill=(0, 0, 0), font=font,
                      anchor="mm")
        out.append(np.asarray(image))
    return out


def save_png(image: np.ndarray, path: str | os.PathLike) -> Path:
    import imageio.v2 as imageio

    imageio.imwrite(path, image)
    return Path(path)


def save_video(frames: list[np.ndarray], path: str | os.PathLike, fps: int = 10) -> Path:
    """An mp4 when an ffmpeg encoder is installed (imageio-ffmpeg), a GIF otherwise; returns the
    path written."""
    import imageio.v2 as imageio

    path = Path(path)
    try:
        writer = imageio.get_writer(path.with_suffix(".mp4"), fps=fps, macro_block_size=16)
    except (ImportError, ValueError, RuntimeError):
        path = path.with_suffix(".gif")
        imageio.mimsave(path, frames, duration=1000 / fps, loop=0)
        return path
    with writer:
        for f in frames:
            writer.append_data(f)
    return path.with_suffix(".mp4")


def log_episode(tb, model: LatentModel, frames: np.ndarray, actions: np.ndarray, step: int,
                video: str | os.PathLike | None = None, steps: int = 16) -> None:
    """The model's predictions on the first ``steps`` steps of an episode (frames (T+1, H, W,
    3), actions (T, A)) to TensorBoard as ``model/predictions``; the whole episode as a video at
    ``video`` if given."""
    n = min(steps, len(actions))
    rows = predictions(model, frames[:n + 1], actions[:n])
    tb.add_image("model/predictions", grid(rows), step, dataformats="HWC")
    if video is not None:
        Path(video).parent.mkdir(parents=True, exist_ok=True)
        save_video([f.repeat(4, 0).repeat(4, 1) for f in frames], video, fps=25)
