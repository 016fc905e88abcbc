import sys, time, statistics, torch, itertools
from slac import runtime
from slac.config import Config, resolve, with_preset
from slac.agent import SLACAgent
from slac.bench import synthetic_replay
cfg = resolve(Config(**with_preset({"preset": "cpu", "task": "ball_in_cup-catch"})))
device = runtime.set_up("cpu", 1, 0)
agent = SLACAgent(cfg, 6, device)
rep = synthetic_replay(cfg, 6)
bs = [rep.sample(cfg.batch_size, cfg.sequence_length).rows(0, cfg.model_batch_size) for _ in range(3)]
it = itertools.cycle(bs)
def share():
    b = next(it)
    agent.model_gradients(b, 0, 4, agent.model_noise(8, b.frames.shape[1]))
for _ in range(3): share()
def timeit(n=20):
    ts = []
    for _ in range(n):
        t = time.perf_counter(); share(); ts.append(time.perf_counter() - t)
    return statistics.median(ts)
base = timeit()
orig = agent.model.filter
t0 = time.perf_counter()
agent.model.filter = torch.compile(orig, dynamic=False)
share(); share()
print(f"compile+2 shares {time.perf_counter() - t0:.1f} s")
comp = timeit()
agent.model.filter = orig
base2 = timeit()
agent.model.filter = torch.compile(orig, dynamic=False)
comp2 = timeit()
print(f"share eager {base*1e3:.1f} / {base2*1e3:.1f} ms, compiled filter {comp*1e3:.1f} / {comp2*1e3:.1f} ms")
