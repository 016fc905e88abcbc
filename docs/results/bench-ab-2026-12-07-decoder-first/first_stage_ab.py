"""Interleaved A/B of the decoder's first two steps alone, forward and backward, on one thread
at 72 frames (the update's pass), fp32 and bfloat16 autocast: the activation on the 4-D view
(A) or on the matmul's output (B). Prints medians and B/A ratios."""
import statistics
import time

import torch
from torch import nn

from slac.networks import Decoder

torch.manual_seed(0)
torch.set_num_threads(1)
on_matmul = Decoder._first


def on_view(z, first, act):
    return act(on_matmul(z, first, nn.Identity()))


for width, frames in ((32, 72), (16, 36)):  # the paper's sizes, the cpu preset's
    dec = Decoder(288, width)
    steps = [f for _, f in dec.stages()[:2]]
    z = torch.randn(frames, 288)
    for amp in (False, True):
        def run(z=z, amp=amp, steps=steps):
            x = z.requires_grad_()
            with torch.autocast("cpu", torch.bfloat16, enabled=amp):
                for f in steps:
                    x = f(x)
            x.float().sum().backward()
        times = {False: [], True: []}
        for r in range(40):
            for b in ((False, True) if r % 2 == 0 else (True, False)):
                Decoder._first = staticmethod(on_matmul if b else on_view)
                run()
                t = time.perf_counter()
                run()
                times[b].append(time.perf_counter() - t)
        a, b = statistics.median(times[False]), statistics.median(times[True])
        faster = sum(y < x for x, y in zip(times[False], times[True], strict=True))
        kind = "bf16" if amp else "fp32"
        print(f"width {width}, {frames} frames, {kind}: view {a * 1e3:.2f} ms, "
              f"matmul {b * 1e3:.2f} ms, ratio {b / a:.3f} (B faster in {faster} of 40)")
