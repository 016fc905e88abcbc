"""How soon SLAC's latent model starts to read the images: model-only updates (the pretraining
of Algorithm 1, the training code's own `update_model`) on random-action data of one task,
printing every --every updates:

- image_nll, kl: the model loss's terms, averaged over the updates since the last line;
- err object / background: squared error of the posterior reconstructions of 16 fixed sequences
  on the pixels that differ from the median frame by more than 0.15 (the cup, ball and string;
  the cart and pole) and on the rest, beside the error of the median frame itself, which knows
  nothing of where the objects are;
- feature spread: how much the encoder's features differ between frames (standard deviation
  across 256 replay frames, averaged over features) beside their size;
- active_z1: train.csv's column, the z1 units whose first-step posterior mean varies across
  those frames (variance > 0.01); 0 while the model draws only the average scene.

    .venv/bin/python scripts/model_collapse.py [--task ball_in_cup-catch] [--updates 6000]
        [--model-lr 1e-4] [--decoder-var V] [--conv-width 16] [--random-steps N] [--threads 1]
        [--model-batch-size 8]
        [--out DIR]

Random data: the task's protocol, as `slac train` collects it (DMC: 10 episodes of a = tanh(u),
u ~ N(0, 2^2)), ~2 minutes for ball_in_cup at 1 thread here. Other sizes are the cpu preset's.
A picture of true frames and posterior reconstructions goes to --out every --picture-every
updates.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from slac import envs
from slac.agent import SLACAgent
from slac.config import Config, resolve, with_preset
from slac.replay import Replay
from slac.tasks import get_task, random_action
from slac.viz import grid, save_png


def collect(cfg: Config) -> Replay:
    env = envs.make(cfg.task, cfg.seed, cfg.action_repeat, cfg.render_quality)
    replay = Replay(2 * cfg.random_steps // cfg.action_repeat, env.action_dim, seed=cfg.seed)
    rng, action_dim = np.random.default_rng(cfg.seed), env.action_dim
    kind = get_task(cfg.task).random_action
    agent_steps = 0
    while agent_steps * cfg.action_repeat < cfg.random_steps:
        replay.start_episode(env.reset())
        done = False
        while not done and agent_steps * cfg.action_repeat < cfg.random_steps:
            a = random_action(kind, rng, action_dim)
            s = env.step(a)
            replay.add(a, s.reward, s.obs, s.terminated)
            done = s.done
            agent_steps += 1
    env.close()
    return replay


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="ball_in_cup-catch")
    p.add_argument("--updates", type=int, default=6000)
    p.add_argument("--model-lr", type=float, default=1e-4)
    p.add_argument("--decoder-var", type=float, default=None, help="default: the task's")
    p.add_argument("--conv-width", type=int, default=16, help="the cpu preset's")
    p.add_argument("--random-steps", type=int, default=None, help="default: the task's")
    p.add_argument("--model-batch-size", type=int, default=None, help="default: the preset's")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--every", type=int, default=250)
    p.add_argument("--picture-every", type=int, default=2000)
    p.add_argument("--out", default="model-collapse")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    given = {"task": args.task, "preset": "cpu", "seed": args.seed, "model_lr": args.model_lr,
             "conv_width": args.conv_width, "threads": args.threads,
             "decoder_var": args.decoder_var, "random_steps": args.random_steps,
             "model_batch_size": args.model_batch_size}
    cfg = resolve(Config(**with_preset({k: v for k, v in given.items() if v is not None})))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"{cfg.task}: model lr {cfg.model_lr}, decoder var {cfg.decoder_var}, conv width "
          f"{cfg.conv_width}, model batch {cfg.model_batch_size}, {args.threads} thread(s), "
          f"seed {cfg.seed}", flush=True)
    t0 = time.time()
    replay = collect(cfg)
    action_dim = replay.actions.shape[1]
    print(f"random data: {len(replay)} frames in {time.time() - t0:.0f} s", flush=True)

    torch.manual_seed(cfg.seed)
    agent = SLACAgent(dataclasses.replace(cfg), action_dim, torch.device("cpu"))
    model = agent.model
    fixed = replay.sample(16, cfg.sequence_length)  # the sequences whose reconstructions count
    target = fixed.frames.float() / 255
    median = target.reshape(-1, *target.shape[-3:]).median(0).values
    objects = (target - median).abs().amax(-1) > 0.15  # (B, T, H, W)
    base = ((target - median) ** 2).mean(-1)
    print(f"median frame: err object {base[objects].mean():.4f}, background "
          f"{base[~objects].mean():.5f} ({objects.float().mean():.1%} of pixels are objects)")
    spread_frames = replay.spread_frames(256)
    sums: dict[str, float] = {}
    t0 = time.time()
    for i in range(1, args.updates + 1):
        for k, v in agent.update_model(replay.sample(cfg.model_batch_size,
                                                     cfg.sequence_length)).items():
            sums[k] = sums.get(k, 0.0) + float(v)
        if i % args.every and i % args.picture_every:
            continue
        with torch.no_grad(), torch.random.fork_rng():
            post = model.filter(model.encoder(fixed.frames), fixed.actions, fixed.first)
            recon = model.decoder(post.z).permute(0, 1, 3, 4, 2)
            err = ((recon - target) ** 2).mean(-1)
            f = model.encoder(spread_frames)
        if i % args.every == 0:
            n = args.every
            print(f"{i:6d} {time.time() - t0:6.0f} s  image_nll {sums['image_nll'] / n:9.1f}  "
                  f"kl {sums['kl'] / n:6.1f}  err object {err[objects].mean():.4f} background "
                  f"{err[~objects].mean():.5f}  feature spread {f.std(0).mean():.4f} of size "
                  f"{f.abs().mean():.3f}  active_z1 {model.active_z1(spread_frames)}", flush=True)
            sums = {}
        if i % args.picture_every == 0 or i == args.updates:
            rows = torch.stack([target[:2].flatten(0, 1), recon[:2].flatten(0, 1).clamp(0, 1)])
            rows = rows.mul(255).round().byte().numpy()
            save_png(grid(rows, scale=2), out / f"posterior-{i:06d}.png")


if __name__ == "__main__":
    main()
