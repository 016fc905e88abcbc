"""One thread: where the actor-critic stream's time goes: encoding its sequences (no
gradients), filtering them (no gradients, in the two pieces every schedule uses), and the
update of Eq. 8-10 on those latents; medians of interleaved rounds.

    .venv/bin/python docs/results/bench-xeon-2026-12-08/ac_parts.py {paper,cpu} ROUNDS
"""
import statistics
import sys
import time

import torch

from slac import bench, runtime
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
_, z = agent.latents(tail, f)
parts = {"encode": lambda: agent.encode(tail),
         "filter": lambda: agent.latents(tail, f),
         "update": lambda: agent.update_actor_critic(f, z, tail)}
t = {k: [] for k in parts}
for r in range(int(sys.argv[2]) + 1):
    for k, fn in parts.items():
        t0 = time.perf_counter()
        fn()
        if r:
            t[k].append(time.perf_counter() - t0)
total = sum(statistics.median(v) for v in t.values())
print(f"{sys.argv[1]}: {tail.frames.shape[0]} sequences; " + ", ".join(
    f"{k} {statistics.median(v) * 1e3:.1f} ms ({statistics.median(v) / total:.0%})"
    for k, v in t.items()))
