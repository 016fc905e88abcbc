"""Where one thread's time goes in the two streams at the paper's sizes: per-op self time
(torch.profiler) of the model step (32 sequences) and of the actor-critic stream (224).

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python docs/results/profile-2026-11-29/parts.py
"""

import statistics
import time

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from slac import bench, runtime
from slac.agent import SLACAgent
from slac.config import Config

runtime.keep_freed_memory()
torch.set_num_threads(1)
cfg = Config(task="cheetah-run", overlap=False, threads=1).resolved()
agent = SLACAgent(cfg, 6, torch.device("cpu"))
replay = bench.synthetic_replay(cfg, 6)
batches = [replay.sample(256, 8) for _ in range(4)]
MB = 32


def model_part(b):
    head = b.rows(0, MB)
    f, post = agent.model_posterior(head)
    agent.model_step(head, post)


def ac_part(b):
    tail = b.rows(MB)
    f, z = agent.latents(tail)
    agent.update_actor_critic(f, z, tail)


def enc_only(b):
    agent.encode(b.rows(MB))


for name, fn in (("model", model_part), ("actor-critic", ac_part), ("ac-encoder", enc_only)):
    for i in range(2):
        fn(batches[i])
    ts = []
    for i in range(5):
        t0 = time.perf_counter()
        fn(batches[i % 4])
        ts.append(time.perf_counter() - t0)
    with FlopCounterMode(display=False) as fc:
        fn(batches[0])
    gf = fc.get_total_flops() / 1e9
    med = statistics.median(ts)
    print(f"{name}: {med:.3f} s median ({min(ts):.3f} min), {gf:.1f} GFLOP, "
          f"{gf / med:.1f} GFLOP/s", flush=True)
    if name == "ac-encoder":
        continue
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        fn(batches[1])
    print(prof.key_averages(group_by_input_shape=True).table(
        sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=40,
        max_shapes_column_width=70), flush=True)
