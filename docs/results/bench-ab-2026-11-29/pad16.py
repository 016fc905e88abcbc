"""The decoder's last layer forward alone (72 frames, 1 thread, interleaved in one process): its
3x3 conv to 12 channels as before, or zero-padded to 16 output channels (slac/networks.py now).
Usage: python pad16.py N."""

import statistics
import sys
import time

import torch
import torch.nn.functional as F

from slac import networks, runtime


def forward_12(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """_SubPixelLastLayer.forward as at 1d688fe (12 output channels)."""
    taps = torch.tensor(networks._PHASE_TAPS, device=weight.device)
    w = F.pad(weight, (0, 1, 0, 1))[:, :, taps[:, None, :, None], taps[None, :, None, :]]
    w = w.permute(2, 3, 1, 0, 4, 5).reshape(-1, weight.shape[0], 3, 3)
    w = w.contiguous(memory_format=torch.channels_last)
    y = F.conv2d(x, w, bias.repeat(4), padding=1)
    n, _, h, w_ = y.shape
    y = y.permute(0, 2, 3, 1).reshape(n, h, w_, 2, 2, -1).transpose(2, 3)
    return y.reshape(n, 2 * h, 2 * w_, -1).permute(0, 3, 1, 2)


def forward_16(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return networks._SubPixelLastLayer.apply(x, weight, bias)


runtime.keep_freed_memory()
torch.set_num_threads(1)
x = torch.randn(72, 32, 32, 32).contiguous(memory_format=torch.channels_last)
w = torch.randn(32, 3, 5, 5).contiguous(memory_format=torch.channels_last)
b = torch.randn(3)
variants = {"12": forward_12, "16": forward_16}
with torch.no_grad():
    print("bit-identical:", torch.equal(forward_12(x, w, b), forward_16(x, w, b)))
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(int(sys.argv[1])):
        for k, f in variants.items():
            t = time.perf_counter()
            f(x, w, b)
            times[k].append(time.perf_counter() - t)
for k in variants:
    ms = [t * 1e3 for t in times[k]]
    print(f"{k} channels: median {statistics.median(ms):.2f} ms, min {min(ms):.2f}")
