"""Cost of the replay's integrity record at the paper's size: a full 100k-step replay,
memory-mapped; digests at a checkpoint after 10k more environment steps, and the full check on
resume."""

import tempfile
import time

import numpy as np

from slac.replay import Replay, checkpoint_margin

with tempfile.TemporaryDirectory(dir="/work") as d:
    margin = checkpoint_margin(10_000, 4)
    r = Replay(100_000, 6, directory=d, margin=margin, seed=0)
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (3, 64, 64), dtype=np.uint8)
    a = np.zeros(6, np.float32)
    t0 = time.perf_counter()
    for i in range(100_500):
        if i % 250 == 0:
            r.start_episode(frame)
        r.add(a, 0.0, frame, False)
    fill = time.perf_counter() - t0
    r.flush()
    t0 = time.perf_counter()
    state = r.state_dict()
    first = time.perf_counter() - t0
    for _ in range(2_500):  # one checkpoint interval at action repeat 4
        r.add(a, 0.0, frame, False)
    r.flush()
    t0 = time.perf_counter()
    state = r.state_dict()
    inc = time.perf_counter() - t0
    del r
    t0 = time.perf_counter()
    back = Replay(100_000, 6, directory=d, margin=margin, create=False)
    back.load_state_dict(state)
    verify = time.perf_counter() - t0
    print(f"replay {back.nbytes() / 2**30:.2f} GiB, {len(state['blocks'])} blocks; "
          f"filling 100.5k steps {fill:.1f} s")
    print(f"digests of the whole window (first checkpoint) {first:.2f} s; after one checkpoint "
          f"interval (2,500 steps) {inc:.3f} s")
    print(f"resume: reopen and verify every block {verify:.2f} s")
