"""A/B of the overlapped schedule's share: the cost model's fixed share against the share that
follows the measured stream times (slac/parallel.py, _rebalance), paper sizes, two threads,
iterations of two agents interleaved in one process so both see the same machine.
    .venv/bin/python docs/results/bench-share/ab.py [ROUNDS]"""

import os
import statistics
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from slac import runtime  # noqa: E402
from slac.agent import SLACAgent  # noqa: E402
from slac.bench import machine, synthetic_replay  # noqa: E402
from slac.config import Config, resolve  # noqa: E402

if not hasattr(SLACAgent, "_rebalance"):  # reverted after this A/B: both agents would be alike
    sys.exit("ab.py needs the measured share of commit 0b4de3a: git checkout 0b4de3a first")
rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
runtime.keep_freed_memory()
torch.set_num_threads(2)
cfg = resolve(Config(task="cheetah-run"))
fixed, measured = (SLACAgent(cfg, 6, torch.device("cpu"), 1.0) for _ in range(2))
fixed._rebalance = lambda *a: None  # the cost model's share, always
replay = synthetic_replay(cfg, 6)
batches = [replay.sample(cfg.batch_size, cfg.sequence_length) for _ in range(4)]
times: dict[str, list[float]] = {"fixed": [], "measured": []}
load0 = os.getloadavg()[0]
for r in range(rounds + 2):
    for name, agent in (("fixed", fixed), ("measured", measured))[:: 1 if r % 2 else -1]:
        t = time.perf_counter()
        agent.update(batches[r % 4])
        if r >= 2:  # two warm-up rounds
            times[name].append(time.perf_counter() - t)
m, o = cfg.model_batch_size, cfg.batch_size - cfg.model_batch_size
print(f"machine: {machine()}, load average before {load0:.2f}, after {os.getloadavg()[0]:.2f}")
for name, agent in (("fixed", fixed), ("measured", measured)):
    ts = times[name]
    print(f"{name:8s} share {agent.balanced_share(m, o, cfg.sequence_length + 1):3d}: iteration"
          f" median {statistics.median(ts):.3f} s, min {min(ts):.3f} s over {len(ts)}")
ratio = statistics.median(times["measured"]) / statistics.median(times["fixed"])
print(f"measured / fixed (medians): {ratio:.3f}")
