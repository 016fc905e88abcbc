import torch, time, statistics, torch.nn.functional as F
torch.set_num_threads(1)
def patches5(x, h, w):
    padded = F.pad(x, (2, 2, 2, 2)).contiguous(memory_format=torch.channels_last)
    s_n, s_c, s_h, s_w = padded.stride()
    win = padded.as_strided((x.shape[0], h, w, 5, 5, x.shape[1]), (s_n, 2 * s_h, 2 * s_w, s_h, s_w, s_c))
    return win.reshape(x.shape[0] * h * w, -1)
def wg_patch(grad, x):
    p = patches5(x, 32, 32)
    g = grad.contiguous(memory_format=torch.channels_last).permute(0, 2, 3, 1).reshape(-1, grad.shape[1])
    gw = (g.T @ p).view(-1, 5, 5, x.shape[1]).permute(0, 3, 1, 2)
    return gw, grad.sum((0, 2, 3))
def wg_onednn(grad, x, w):
    _, gw, gb = torch.ops.aten.convolution_backward(grad, x, w, [w.shape[0]], [2, 2], [2, 2], [1, 1], False, [0, 0], 1, [False, True, True])
    return gw, gb
for n in (72, 36):
  for dtype in (torch.float32, torch.bfloat16):
    x = torch.rand(n, 3, 64, 64).to(dtype).contiguous(memory_format=torch.channels_last)
    c = 32 if n == 72 else 16
    w = torch.randn(c, 3, 5, 5).to(dtype).contiguous(memory_format=torch.channels_last)
    grad = torch.randn(n, c, 32, 32).to(dtype).contiguous(memory_format=torch.channels_last)
    a, b = wg_onednn(grad, x, w), wg_patch(grad, x)
    err = ((a[0].float() - b[0].float()).abs().max() / a[0].float().abs().max()).item()
    A, B = [], []
    for _ in range(20):
        t = time.perf_counter(); wg_onednn(grad, x, w); A.append(time.perf_counter() - t)
        t = time.perf_counter(); wg_patch(grad, x); B.append(time.perf_counter() - t)
    fl = 2 * n * 32 * 32 * c * 75
    print(n, dtype, f"onednn {statistics.median(A)*1e3:.2f} ms ({fl/statistics.median(A)/1e9:.0f} GF/s)  patch {statistics.median(B)*1e3:.2f} ms  ratio {statistics.median(B)/statistics.median(A):.2f}  relerr {err:.1e}")
