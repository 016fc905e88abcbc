"""Interleaved A/B of the patch rows alone, one thread, 40 rounds, at the shapes the paper's
sizes (72 frames) and the cpu preset's (36) give them: padded copy (A) against direct (B)."""
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from patches_ab import direct, padded  # noqa: E402

torch.set_num_threads(1)
for dtype in (torch.float32, torch.bfloat16):
    for n, c, s in [(72, 32, 32), (72, 64, 16), (72, 128, 8), (36, 16, 32), (36, 32, 16),
                    (36, 64, 8)]:
        t = torch.randn(n, c, s, s).to(dtype).contiguous(memory_format=torch.channels_last)
        h = s // 2
        assert torch.equal(padded(t, h, h), direct(t, h, h))
        times = {False: [], True: []}
        for r in range(40):
            for b in ((False, True) if r % 2 == 0 else (True, False)):
                t0 = time.perf_counter()
                (direct if b else padded)(t, h, h)
                times[b].append(time.perf_counter() - t0)
        a, b = statistics.median(times[False]), statistics.median(times[True])
        faster = sum(y < x for x, y in zip(times[False], times[True], strict=True))
        print(f"{str(dtype)[6:]:8s} {n}x{c}x{s}x{s}: padded {a * 1e3:.2f} ms, direct "
              f"{b * 1e3:.2f} ms, ratio {b / a:.3f} (direct faster in {faster} of 40)")
