"""Whether the unrolled filter's Python autograd nodes slow two threads side by side: one
thread's share of the cpu preset's model-only update (4 sequences) timed alone and with a
second thread running the other share, for the filter as at df101e4 (A) and as now (B),
interleaved.

    .venv/bin/python docs/results/bench-ab-2026-12-08-unroll/pair_ab.py {paper,cpu} ROUNDS
"""
import statistics
import sys
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from filter_ab import switch  # noqa: E402

from slac import bench, runtime  # noqa: E402
from slac.agent import SLACAgent  # noqa: E402
from slac.config import Config, resolve, with_preset  # noqa: E402

runtime.keep_freed_memory()
torch.set_num_threads(1)
given = ({"task": "cheetah-run"} if sys.argv[1] == "paper"
         else {"preset": "cpu", "task": "ball_in_cup-catch"})
cfg = resolve(Config(**with_preset(given)))
agent = SLACAgent(cfg, 6, torch.device("cpu"))
set_b = switch(agent)["filter"][2]
b = bench.synthetic_replay(cfg, 6).sample(cfg.batch_size, cfg.sequence_length).rows(
    0, cfg.model_batch_size)
share = cfg.model_batch_size // 2
noise = agent.model_noise(b.frames.shape[0], b.frames.shape[1])


def work(lo: int) -> None:
    agent.model_gradients(b, lo, lo + share, noise)


def timed(pair: bool) -> float:
    stop = threading.Event()

    def neighbour() -> None:
        torch.set_num_threads(1)
        while not stop.is_set():
            work(share)

    th = threading.Thread(target=neighbour) if pair else None
    if th:
        th.start()
        time.sleep(0.02)
    ts = []
    for _ in range(5):
        t = time.perf_counter()
        work(0)
        ts.append(time.perf_counter() - t)
    stop.set()
    if th:
        th.join()
    return statistics.median(ts)


res = {(arm, pair): [] for arm in (False, True) for pair in (False, True)}
for arm in (False, True):
    set_b(arm)
    timed(False)
for r in range(int(sys.argv[2])):
    for arm in ((False, True) if r % 2 else (True, False)):
        set_b(arm)
        for pair in (False, True):
            res[arm, pair].append(timed(pair))
    print(f"round {r}: " + " ".join(f"{'B' if a else 'A'}{' pair' if p else ' alone'} "
                                    f"{v[-1] * 1e3:.1f}" for (a, p), v in res.items()), flush=True)
med = {k: statistics.median(v) for k, v in res.items()}
for arm in (False, True):
    print(f"{'B (now)' if arm else 'A (df101e4)'}: alone {med[arm, False] * 1e3:.1f} ms, "
          f"with a neighbour {med[arm, True] * 1e3:.1f} ms ({med[arm, True] / med[arm, False]:.2f}x)")
ratios = [y / x for x, y in zip(res[False, True], res[True, True], strict=True)]
print(f"B/A with a neighbour: median {statistics.median(ratios):.3f}, "
      f"B faster in {sum(x < 1 for x in ratios)} of {len(ratios)}; alone: "
      f"{statistics.median(y / x for x, y in zip(res[False, False], res[True, False], strict=True)):.3f}")
