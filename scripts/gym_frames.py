"""Draws docs/gym_frames.png: what SLAC sees of each Gym task (64x64 frames, shown 3x),
a few random-action steps apart. Usage: .venv/bin/python scripts/gym_frames.py"""

from pathlib import Path

import imageio.v2 as imageio
import numpy as np

from slac import envs

TASKS = ["gym:HalfCheetah-v5", "gym:Walker2d-v5", "gym:Hopper-v5", "gym:Ant-v5"]
rows = []
for task in TASKS:
    env = envs.make(task, seed=0)
    rng = np.random.default_rng(0)
    frames = [env.reset()]
    while len(frames) < 6:
        step = env.step(rng.uniform(-1, 1, env.action_dim) * 0.5)
        frames.append(step.obs)
        if step.done:
            frames.append(env.reset())
    env.close()
    rows.append(np.concatenate([f.transpose(1, 2, 0) for f in frames[:6]], 1))
out = Path(__file__).resolve().parent.parent / "docs" / "gym_frames.png"
imageio.imwrite(out, np.concatenate(rows, 0).repeat(3, 0).repeat(3, 1))
print(out)
