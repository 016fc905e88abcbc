"""Overlapped paper-size iterations, interleaved in one process: the streams sharing only the
encoding (slac/parallel.py at 9b08d8a, with the posterior filtered in one piece by the
actor-critic stream, as then) against sharing the encoding and the filter's two halves (now).
Usage: python fs_ab.py N. Needs old_parallel.py next to it:
    git show 9b08d8a:slac/parallel.py > docs/results/bench-filter-sharing/old_parallel.py"""

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
import old_parallel  # noqa: E402

runtime.keep_freed_memory()
torch.set_num_threads(2)
cfg = Config(task="cheetah-run").resolved()
agent = SLACAgent(cfg, 6, torch.device("cpu"), 1.0)
replay = bench.synthetic_replay(cfg, 6)
batches = [replay.sample(256, 8) for _ in range(4)]
new = agent._update_overlapped
new_fl = agent._features_and_latents


@torch.no_grad()
def whole_filter(self, b, features=None):  # slac/agent.py at 9b08d8a
    f = self._encode(b) if features is None else features
    return f, self.model.filter(f, b.actions, b.first, self.rng_actor_critic).z


old = types.MethodType(old_parallel.TwoThreadUpdates._update_overlapped, agent)
mb = cfg.model_batch_size


def run_old(b):
    agent._features_and_latents = types.MethodType(whole_filter, agent)
    try:
        old(b, b.rows(0, mb), b.rows(mb))
    finally:
        agent._features_and_latents = new_fl


def run_new(b):
    new(b, b.rows(0, mb), b.rows(mb))


variants = {"encoding shared": run_old, "encoding and filter shared": run_new}
times: dict[str, list[float]] = {k: [] for k in variants}
shared = []
for f in variants.values():
    f(batches[0])  # warm-up
for r in range(int(sys.argv[1])):
    b = batches[r % 4]
    for k, f in variants.items():
        t = time.perf_counter()
        f(b)
        times[k].append(time.perf_counter() - t)
    shared.append((agent.model_stream_encoded, agent.model_stream_filtered))
for k in variants:
    print(f"{k}: median {statistics.median(times[k]):.3f} min {min(times[k]):.3f}")
print("model stream encoded, filtered (now):", shared)
