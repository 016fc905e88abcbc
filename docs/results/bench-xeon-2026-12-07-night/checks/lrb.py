import torch, time, statistics
torch.set_num_threads(1)
cl = torch.channels_last
for dtype in (torch.float32, torch.bfloat16):
  for shape in [(72,256,4,4), (72,32,32,32)]:
    for gf, sf in [(cl, cl), (torch.contiguous_format, cl), (cl, torch.contiguous_format)]:
        g = torch.randn(shape).to(dtype).contiguous(memory_format=gf)
        s = torch.randn(shape).to(dtype).contiguous(memory_format=sf)
        ts = []
        for _ in range(30):
            t = time.perf_counter(); torch.ops.aten.leaky_relu_backward(g, s, 0.2, True); ts.append(time.perf_counter() - t)
        print(dtype, shape, "grad", "cl" if gf == cl else "nchw", "self", "cl" if sf == cl else "nchw", f"{statistics.median(ts)*1e3:.3f} ms")
