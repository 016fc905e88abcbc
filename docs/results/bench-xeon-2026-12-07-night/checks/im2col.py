import torch, time, statistics, torch.nn.functional as F, sys
from slac import kernels
torch.set_num_threads(1)
N = int(sys.argv[1]) if len(sys.argv) > 1 else 72
def fwd_gemm(x, w, b, h, wd):
    p = kernels.stride2_patches(x, (1,1,1,1), h, wd)   # (N h w, 9C)
    wm = w.permute(0,2,3,1).reshape(w.shape[0], -1)   # (O, 9C) matching (ky kx c)
    y = torch.addmm(b, p, wm.t())
    return y.view(x.shape[0], h, wd, -1).permute(0,3,1,2)
for cin, cout, s in [(32,64,32),(64,128,16),(128,256,8),(16,32,32),(32,64,16),(64,128,8)]:
    x = torch.randn(N, cin, s, s).contiguous(memory_format=torch.channels_last)
    conv = torch.nn.Conv2d(cin, cout, 3, 2, 1).to(memory_format=torch.channels_last)
    w, b = conv.weight.detach(), conv.bias.detach()
    h = s // 2
    ref = F.conv2d(x, w, b, 2, 1); got = fwd_gemm(x, w, b, h, h)
    err = (ref - got).abs().max().item()
    A, B, P = [], [], []
    for r in range(30):
        t = time.perf_counter(); F.conv2d(x, w, b, 2, 1); A.append(time.perf_counter() - t)
        t = time.perf_counter(); fwd_gemm(x, w, b, h, h); B.append(time.perf_counter() - t)
        t = time.perf_counter(); kernels.stride2_patches(x, (1,1,1,1), h, h); P.append(time.perf_counter() - t)
    fl = 2 * N * h * h * cout * 9 * cin
    a, bb, p = (statistics.median(v) for v in (A, B, P))
    print(f"{cin}->{cout} {s}x{s}: onednn {a*1e3:.2f} ms ({fl/a/1e9:.0f} GF/s)  gemm {bb*1e3:.2f} ms ({fl/bb/1e9:.0f})  patches {p*1e3:.2f}  ratio {bb/a:.2f} err {err:.1e}")
