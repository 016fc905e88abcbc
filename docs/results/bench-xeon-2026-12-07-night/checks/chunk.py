"""No-grad encoder pass over the actor-critic's frames, one thread: CHUNK sizes interleaved."""
import sys, time, statistics, torch
from slac.networks import Encoder
torch.set_num_threads(1)
width, frames = (32, 2016) if sys.argv[1] == "paper" else (16, 504)
enc = Encoder(256, width)
x = torch.randint(0, 256, (frames, 64, 64, 3), dtype=torch.uint8)
sizes = [36, 72, 144, 288]
T = {s: [] for s in sizes}
with torch.no_grad():
    for r in range(8):
        for s in (sizes if r % 2 == 0 else sizes[::-1]):
            enc.CHUNK = s
            t = time.perf_counter(); enc(x); T[s].append(time.perf_counter() - t)
base = statistics.median(T[72])
for s in sizes:
    print(f"chunk {s:4d}: {statistics.median(T[s]):.3f} s  ratio to 72: {statistics.median(T[s]) / base:.3f}")
