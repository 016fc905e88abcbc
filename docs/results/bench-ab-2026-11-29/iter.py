"""Paper-size overlapped iterations in one process: median and min of N after 2 warm-ups.
AB=fused alternates iterations with the fused no-grad encoder of commit ce36509 on and off (the
same agent); PIN=1 pins the two update streams to one core each; THP_MEM_ALLOC_ENABLE=1 in the
environment gives torch's allocations transparent huge pages."""

import os
import resource
import statistics
import sys
import time

import torch

import slac.networks as nw
from slac import runtime
from slac.agent import SLACAgent
from slac.bench import synthetic_replay
from slac.config import Config
from slac.tasks import get_task

n = int(sys.argv[1]) if len(sys.argv) > 1 else 10
fused_ab = os.environ.get("AB") == "fused"
has = getattr(nw, "_has_fused_conv", None)
if fused_ab and has is None:
    sys.exit("AB=fused needs the fused encoder of commit ce36509 (reverted): git checkout ce36509")
runtime.keep_freed_memory()
torch.set_num_threads(2)
torch.manual_seed(0)
cfg = Config(task="cheetah-run").resolved()
agent = SLACAgent(cfg, 6, torch.device("cpu"), get_task(cfg.task).policy_std_scale)
replay = synthetic_replay(cfg, 6)
if os.environ.get("PIN"):
    from concurrent.futures import ThreadPoolExecutor

    agent._pool = ThreadPoolExecutor(1, initializer=lambda: os.sched_setaffinity(0, {1}))
    os.sched_setaffinity(0, {0})
batches = [replay.sample(cfg.batch_size, cfg.sequence_length) for _ in range(4)]
modes = {"on": has, "off": lambda x: False} if fused_ab else {"-": None}
for i in range(2):
    agent.update(batches[i % 4])
times: dict[str, list[float]] = {k: [] for k in modes}
for i in range(n):
    for k, f in modes.items():
        if f is not None:
            nw._has_fused_conv = f
        t0 = time.perf_counter()
        agent.update(batches[i % 4])
        times[k].append(time.perf_counter() - t0)
for k, v in times.items():
    print(f"{os.environ.get('TAG', '')} fused={k} median {statistics.median(v):.3f} "
          f"min {min(v):.3f}", flush=True)
print(f"minflt {resource.getrusage(0).ru_minflt} load {os.getloadavg()[0]:.2f}")
