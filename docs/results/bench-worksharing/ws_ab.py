"""Overlapped paper-size iterations, interleaved in one process: the static share of the
encoding (slac/parallel.py at 1d688fe, saved next to this file as old_parallel.py) against the
work sharing that replaced it. Usage: python ws_ab.py N (N rounds of one iteration each)."""

import os
import statistics
import sys
import time
import types

import torch

from slac import bench, runtime
from slac.agent import SLACAgent
from slac.config import Config

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import old_parallel  # noqa: E402  (git show 1d688fe:slac/parallel.py > old_parallel.py)

runtime.keep_freed_memory()
torch.set_num_threads(2)
cfg = Config(task="cheetah-run").resolved()
agent = SLACAgent(cfg, 6, torch.device("cpu"), 1.0)
replay = bench.synthetic_replay(cfg, 6)
batches = [replay.sample(256, 8) for _ in range(4)]
new = agent._update_overlapped
old_cls = old_parallel.TwoThreadUpdates
agent.model_stream_share = types.MethodType(old_cls.model_stream_share, agent)
agent.ACTOR_CRITIC_COST_PER_SEQUENCE = old_cls.ACTOR_CRITIC_COST_PER_SEQUENCE
old = types.MethodType(old_cls._update_overlapped, agent)
mb = cfg.model_batch_size
variants = {"old share": old, "work sharing": new}
times: dict[str, list[float]] = {k: [] for k in variants}
encoded = []
for f in variants.values():
    f(batches[0], batches[0].rows(0, mb), batches[0].rows(mb))  # warm-up
for r in range(int(sys.argv[1])):
    b = batches[r % 4]
    for k, f in variants.items():
        t = time.perf_counter()
        f(b, b.rows(0, mb), b.rows(mb))
        times[k].append(time.perf_counter() - t)
    encoded.append(agent.model_stream_encoded)
for k in variants:
    print(f"{k}: median {statistics.median(times[k]):.3f} min {min(times[k]):.3f}")
print("model stream encoded", encoded)
