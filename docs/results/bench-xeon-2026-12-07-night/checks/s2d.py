import torch, time, statistics
torch.set_num_threads(1)
cl = torch.channels_last
def wg(grad, x, w, stride, pad):
    return torch.ops.aten.convolution_backward(grad, x, w, [w.shape[0]], [stride]*2, [pad]*2, [1, 1], False, [0, 0], 1, [False, True, True])
for n, c in ((72, 32), (36, 16)):
  for dtype in (torch.float32, torch.bfloat16):
    x = torch.rand(n, 3, 64, 64).to(dtype).contiguous(memory_format=cl)
    w = torch.randn(c, 3, 5, 5).to(dtype).contiguous(memory_format=cl)
    g = torch.randn(n, c, 32, 32).to(dtype).contiguous(memory_format=cl)
    s = x.view(n, 3, 32, 2, 32, 2).permute(0, 1, 3, 5, 2, 4).reshape(n, 12, 32, 32).contiguous(memory_format=cl)
    w2 = torch.randn(c, 12, 3, 3).to(dtype).contiguous(memory_format=cl)
    def a(): wg(g, x, w, 2, 2)
    def b():
        s = x.view(n, 3, 32, 2, 32, 2).permute(0, 1, 3, 5, 2, 4).reshape(n, 12, 32, 32).contiguous(memory_format=cl)
        wg(g, s, w2, 1, 1)
    T = {0: [], 1: []}
    for r in range(30):
        for k, f in ((0, a), (1, b)) if r % 2 == 0 else ((1, b), (0, a)):
            t = time.perf_counter(); f(); T[k].append(time.perf_counter() - t)
    A, B = statistics.median(T[0]), statistics.median(T[1])
    print(n, c, str(dtype)[6:], f"5x5 s2 {A*1e3:.2f} ms  s2d 3x3 {B*1e3:.2f} ms  ratio {B/A:.3f}")
