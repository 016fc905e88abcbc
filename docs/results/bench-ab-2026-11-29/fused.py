"""One thread: the no-grad encoder's four strided convs over 2016 frames (chunks of 72), each
conv then LeakyReLU in place against oneDNN's fused conv + LeakyReLU; repeats interleaved."""

import statistics
import sys
import time

import torch
import torch.nn.functional as F

from slac.networks import LEAK, Encoder

torch.set_num_threads(1)
torch.manual_seed(0)
enc = Encoder(256, 32)
frames = torch.randint(0, 256, (2016 // 9, 9, 64, 64, 3), dtype=torch.uint8)
x0 = frames.reshape(-1, 64, 64, 3).permute(0, 3, 1, 2)
convs = [m for m in enc.net if isinstance(m, torch.nn.Conv2d)][:4]


def plain(x):
    for c in convs:
        x = F.leaky_relu_(c(x), LEAK)
    return x


def fused(x):
    for c in convs:
        x = torch.ops.mkldnn._convolution_pointwise(
            x, c.weight, c.bias, list(c.padding), list(c.stride), list(c.dilation), 1,
            "leaky_relu", [LEAK], "")
    return x


def run(f):
    return torch.cat([f(ch.float().div_(255)) for ch in x0.split(72)])


with torch.no_grad():
    a, b = run(plain), run(fused)
    print("max diff", (a - b).abs().max().item(), "equal", torch.equal(a, b))
    ts: dict[str, list[float]] = {"plain": [], "fused": []}
    for _ in range(int(sys.argv[1]) if len(sys.argv) > 1 else 5):
        for k, f in (("plain", plain), ("fused", fused)):
            t0 = time.perf_counter()
            run(f)
            ts[k].append(time.perf_counter() - t0)
    for k, v in ts.items():
        print(k, f"median {statistics.median(v):.3f} min {min(v):.3f}")
    ratio = statistics.median(ts["fused"]) / statistics.median(ts["plain"])
    print("ratio fused/plain median", ratio)
