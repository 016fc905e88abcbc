"""A/B of the decoder's pixel shuffle: F.pixel_shuffle of (o, ry, rx)-ordered channels (old)
against one copy of (ry, rx, o)-ordered channels (new, slac.networks), interleaved in one
process, one thread, a paper-size model update (32 sequences).

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python docs/results/bench-ab-2026-11-29/shuffle.py
"""

import statistics
import time

import torch
import torch.nn.functional as F

from slac import bench, networks, runtime
from slac.agent import SLACAgent
from slac.config import Config

runtime.keep_freed_memory()
torch.set_num_threads(1)
cfg = Config(task="cheetah-run", overlap=False, threads=1).resolved()
agent = SLACAgent(cfg, 6, torch.device("cpu"), 1.0)
replay = bench.synthetic_replay(cfg, 6)
batches = [replay.sample(32, 8) for _ in range(4)]
new_fwd = networks._SubPixelLastLayer.forward
def old_fwd(ctx, x, weight, bias):
    ctx.save_for_backward(x, weight)
    taps = torch.tensor(networks._PHASE_TAPS, device=weight.device)
    w = F.pad(weight, (0, 1, 0, 1))[:, :, taps[:, None, :, None], taps[None, :, None, :]]
    w = w.permute(1, 2, 3, 0, 4, 5).reshape(-1, weight.shape[0], 3, 3)
    w = w.contiguous(memory_format=torch.channels_last)
    return F.pixel_shuffle(F.conv2d(x, w, bias.repeat_interleave(4), padding=1), 2)
def step(b):
    f, post = agent._head_posterior(b)
    agent._model_step(b, post)
t = {"old": [], "new": []}
for i in range(24):
    name = "old" if i % 2 == 0 else "new"
    networks._SubPixelLastLayer.forward = staticmethod(old_fwd if name == "old" else new_fwd)
    t0 = time.perf_counter()
    step(batches[i % 4])
    t[name].append(time.perf_counter() - t0)
for k, v in t.items():
    v = v[2:]
    print(k, f"median {statistics.median(v):.3f} min {min(v):.3f}")
print("ratio new/old median", statistics.median(t["new"][2:]) / statistics.median(t["old"][2:]))
