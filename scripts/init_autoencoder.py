"""Why `--init glorot` is the default: an autoencoder of SLAC's own encoder and decoder, trained
on one fixed batch of real cartpole frames from each initialisation, and how well it draws the
cart (pixels that differ from the background) versus the background.

    .venv/bin/python scripts/init_autoencoder.py [--steps 1300] [--lr 1e-3] [--width 16]

Prints, per initialisation, how much the encoder's features vary across frames at the start
(relative to their size), then the squared error on cart and background pixels every 100 steps,
beside two baselines that know nothing of the cart's position (the per-pixel median and mean
frame). docs/notes/2026-11-init-autoencoder.md quotes its output (seed 0, 1 thread).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from slac import envs
from slac.agent import glorot_init
from slac.networks import Decoder, Encoder
from slac.replay import Replay


def frames_batch(seed: int = 0) -> torch.Tensor:
    """32 sequences of 9 frames (uint8, B T H W 3) from two random-action cartpole episodes."""
    env = envs.make("cartpole-swingup", seed, 4, "paper")
    replay, rng = Replay(1_000, 1, seed=seed), np.random.default_rng(seed)
    for _ in range(2):
        replay.start_episode(env.reset())
        for _ in range(250):
            a = np.tanh(rng.normal(0.0, 2.0, 1)).astype(np.float32)
            s = env.step(a)
            replay.add(a, s.reward, s.obs, s.terminated)
    env.close()
    return replay.sample(32, 8).frames


def run(init: str, frames: torch.Tensor, steps: int, lr: float, width: int) -> None:
    torch.manual_seed(0)
    encoder, decoder, link = Encoder(256, width), Decoder(288, width), torch.nn.Linear(256, 288)
    if init == "glorot":
        for net in (encoder, decoder, link):
            net.apply(glorot_init)
    target = frames.float() / 255
    background = target.reshape(-1, *target.shape[-3:]).median(0).values
    cart = (target - background).abs().amax(-1) > 0.15  # (B, T, H, W): pixels of the cart
    with torch.no_grad():
        f = encoder(frames).reshape(-1, 256)
    print(f"{init}: encoder features vary {(f.std(0).mean() / f.abs().mean()).item():.3f}x "
          "their size across frames at the start")
    params = [*encoder.parameters(), *decoder.parameters(), *link.parameters()]
    opt = torch.optim.Adam(params, lr=lr)
    t0 = time.time()
    for i in range(steps + 1):
        x = decoder(link(encoder(frames))).permute(0, 1, 3, 4, 2)
        loss = ((x - target) ** 2).sum((2, 3, 4)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i % 100 == 0:
            err = ((x.detach() - target) ** 2).mean(-1)
            print(f"{init} step {i:5d}: squared error cart {err[cart].mean().item():.4f}, "
                  f"background {err[~cart].mean().item():.5f} ({time.time() - t0:.0f} s)",
                  flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=1300)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--width", type=int, default=16, help="the cpu preset's conv width")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    frames = frames_batch()
    target = frames.float() / 255
    cart = (target - target.reshape(-1, 64, 64, 3).median(0).values).abs().amax(-1) > 0.15
    for name, base in (("median", target.reshape(-1, 64, 64, 3).median(0).values),
                       ("mean", target.reshape(-1, 64, 64, 3).mean(0))):
        err = ((target - base) ** 2).mean(-1)
        print(f"baseline: the {name} frame, squared error cart {err[cart].mean().item():.4f}")
    for init in ("torch", "glorot"):
        run(init, frames, args.steps, args.lr, args.width)


if __name__ == "__main__":
    main()
