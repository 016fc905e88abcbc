"""One thread, no gradients: the actor-critic's posterior filter (two pieces) with the loop's
MLPs as the stock layers (A, x @ W^T from W) or as addmm with each weight transposed once per
pass into a contiguous copy (B); checks that both give the same latents, then times them
interleaved.

    .venv/bin/python docs/results/bench-xeon-2026-12-08/checks/transposed_weights.py {paper,cpu} ROUNDS
"""
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from slac import bench, networks, runtime
from slac.agent import SLACAgent
from slac.config import Config, resolve, with_preset

runtime.keep_freed_memory()
torch.set_num_threads(1)
given = ({"task": "cheetah-run"} if sys.argv[1] == "paper"
         else {"preset": "cpu", "task": "ball_in_cup-catch"})
cfg = resolve(Config(**with_preset(given)))
agent = SLACAgent(cfg, 6, torch.device("cpu"))
tail = bench.synthetic_replay(cfg, 6).sample(cfg.batch_size, cfg.sequence_length).rows(
    cfg.model_batch_size)
f = agent.encode(tail)
noise = agent.actor_critic_noise(f.shape[0], f.shape[1])
stock = networks.Gaussian.unrolled


def transposed(self):
    if torch.is_grad_enabled():
        return stock(self)
    lin = [(m.weight.t().contiguous(), m.bias) for m in self.net[0::2]]

    def step(*xs):
        h = torch.cat(xs, -1)
        for i, (wt, b) in enumerate(lin):
            h = torch.addmm(b, h, wt)
            h = F.leaky_relu(h, networks.LEAK) if i < len(lin) - 1 else h
        return self.head(h)
    return step


def run():
    return torch.cat([agent.filter_piece(f, tail, noise, *p)
                      for p in agent.filter_pieces(f.shape[0])])


arms = {False: stock, True: transposed}
outs = []
for fn in arms.values():
    networks.Gaussian.unrolled = fn
    outs.append(run())
print("same latents bit for bit:", torch.equal(*outs))
t = {False: [], True: []}
for r in range(int(sys.argv[2])):
    for a in ((False, True) if r % 2 else (True, False)):
        networks.Gaussian.unrolled = arms[a]
        t0 = time.perf_counter()
        run()
        t[a].append(time.perf_counter() - t0)
ratios = [b / a for a, b in zip(t[False], t[True], strict=True)]
print(f"{sys.argv[1]}: A {statistics.median(t[False]) * 1e3:.1f} ms, B "
      f"{statistics.median(t[True]) * 1e3:.1f} ms; median B/A {statistics.median(ratios):.3f}, "
      f"B faster in {sum(x < 1 for x in ratios)} of {len(ratios)}")
