"""One thread, --amp, no gradients: the actor-critic stream's encoding of a paper-size batch
(224 sequences of 9 frames, 28 chunks) with the parameters cast per chunk (A) or once per pass
(B, kernels.CAST_ONCE), interleaved; also the cast itself.

    .venv/bin/python docs/results/bench-ab-2026-12-08-amp-casts/encode_ab.py {paper,cpu} ROUNDS
"""
import statistics
import sys
import time

import torch

from slac import kernels
from slac.networks import Encoder

torch.set_num_threads(1)
width, n = (32, 2016) if sys.argv[1] == "paper" else (16, 504)
enc = Encoder(256, width)
enc.amp = True
frames = torch.randint(0, 256, (n, 64, 64, 3), dtype=torch.uint8)
t = {False: [], True: []}
with torch.no_grad():
    for arm in (False, True):
        kernels.CAST_ONCE = arm
        enc(frames)
    for r in range(int(sys.argv[2])):
        for arm in ((False, True) if r % 2 else (True, False)):
            kernels.CAST_ONCE = arm
            t0 = time.perf_counter()
            enc(frames)
            t[arm].append(time.perf_counter() - t0)
    with torch.autocast("cpu", torch.bfloat16):
        params = list(enc.parameters())
        t0 = time.perf_counter()
        for _ in range(20):
            [p.to(torch.bfloat16) for p in params]
        cast = (time.perf_counter() - t0) / 20
ratios = [b / a for a, b in zip(t[False], t[True], strict=True)]
print(f"{sys.argv[1]} encode {n} frames: per-chunk {statistics.median(t[False]) * 1e3:.1f} ms, "
      f"once {statistics.median(t[True]) * 1e3:.1f} ms; median B/A {statistics.median(ratios):.3f},"
      f" B faster in {sum(x < 1 for x in ratios)} of {len(ratios)}; casting all the encoder's "
      f"parameters once {cast * 1e3:.2f} ms")
