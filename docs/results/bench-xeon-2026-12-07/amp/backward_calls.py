"""One convolution_backward call for both gradients against two calls (one each), interleaved,
20 rounds, one thread: the encoder's 32x32 layer and the decoder's last, fp32 and bfloat16."""
import time, torch, statistics
from slac import runtime
runtime.set_up("cpu", 1, 0)
cb = torch.ops.aten.convolution_backward
cl = torch.channels_last
def t(f):
    s = time.perf_counter(); f(); return (time.perf_counter() - s) * 1e3
for dt in (torch.float32, torch.bfloat16):
    for name, N, C, H, O, k, s, p, tr, op in [("enc 3x3/2 32->64 @32", 72, 32, 32, 64, 3, 2, 1, False, 0),
                                          ("dec last 5x5/2 32->3 @32", 72, 32, 32, 3, 5, 2, 2, True, 1)]:
        x = torch.randn(N,C,H,H).to(dt).contiguous(memory_format=cl)
        w = (torch.randn(C,O,k,k) if tr else torch.randn(O,C,k,k)).to(dt).contiguous(memory_format=cl)
        Ho = 2*H if tr else H//2
        g = torch.randn(N,O,Ho,Ho).to(dt).contiguous(memory_format=cl)
        args = ([s,s],[p,p],[1,1],tr,[op,op],1)
        both = lambda: cb(g, x, w, [O], *args, [True,True,True])
        sep = lambda: (cb(g, x, w, [O], *args, [True,False,False]), cb(g, x, w, [O], *args, [False,True,True]))
        for _ in range(3): both(); sep()
        rb, rs = [], []
        for i in range(20):
            if i % 2: rb.append(t(both)); rs.append(t(sep))
            else: rs.append(t(sep)); rb.append(t(both))
        mb, ms = statistics.median(rb), statistics.median(rs)
        print(f"{str(dt)[6:]:9s} {name:26s} both {mb:6.2f} ms  separate {ms:6.2f} ms  ratio {ms/mb:.3f}")
