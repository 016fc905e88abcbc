import torch, time, statistics
from torch import nn
from slac import kernels
torch.set_num_threads(1)
for n, cin, cout in [(72, 32, 64), (36, 16, 32)]:
  for amp in (False, True):
    conv = nn.Conv2d(cin, cout, 3, 2, 1).to(memory_format=torch.channels_last)
    x0 = torch.randn(n, cin, 32, 32).contiguous(memory_format=torch.channels_last)
    g = torch.randn(n, cout, 16, 16).contiguous(memory_format=torch.channels_last)
    def run(fast):
        x = x0.clone().requires_grad_()
        with torch.autocast("cpu", torch.bfloat16, enabled=amp):
            y = kernels.conv3x3_stride2(x, conv) if fast else conv(x)
        y.backward(g.to(y.dtype))
    T = {0: [], 1: []}
    for r in range(30):
        for f in ((0, 1) if r % 2 == 0 else (1, 0)):
            run(f); t = time.perf_counter(); run(f); T[f].append(time.perf_counter() - t)
    a, b = statistics.median(T[0]), statistics.median(T[1])
    print(n, cin, cout, "bf16" if amp else "fp32", f"onednn {a*1e3:.2f} patch {b*1e3:.2f} ratio {b/a:.3f} faster {sum(y<x for x,y in zip(T[0],T[1]))}/30")
