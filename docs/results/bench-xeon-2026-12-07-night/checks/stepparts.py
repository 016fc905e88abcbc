import sys, time, statistics, torch, itertools, functools
from slac import runtime, parallel
from slac.config import Config, resolve, with_preset
from slac.agent import SLACAgent
from slac.bench import synthetic_replay
preset, rounds = sys.argv[1], int(sys.argv[2])
cfg = resolve(Config(task="cheetah-run") if preset == "paper" else Config(**with_preset({"preset": preset, "task": "ball_in_cup-catch"})))
device = runtime.set_up("cpu", 2, 0)
agent = SLACAgent(cfg, 6, device)
w = parallel.Worker(agent)
rep = synthetic_replay(cfg, 6)
b = rep.sample(cfg.batch_size, cfg.sequence_length).rows(0, cfg.model_batch_size)
shares, _ = w.split_model_gradients(b)
params = [p for p in agent.model.parameters() if p.requires_grad]
print(len(params), "tensors")
def add():
    for i, p in enumerate(params):
        p.grad = functools.reduce(torch.add, [s.grads[i] for s in shares])
def fadd():
    gs = torch._foreach_add(list(shares[0].grads), list(shares[1].grads))
    for p, g in zip(params, gs): p.grad = g
def step(): agent.model_opt.step()
for name, f in [("add", add), ("foreach add", fadd), ("adam", step)]:
    for _ in range(3): f()
    ts = []
    for _ in range(rounds):
        t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
    print(f"{name:12s} {statistics.median(ts)*1e3:.2f} ms")
torch.set_num_threads(1)
for _ in range(3): step()
ts = []
for _ in range(rounds):
    t = time.perf_counter(); step(); ts.append(time.perf_counter() - t)
print(f"adam 1 thread {statistics.median(ts)*1e3:.2f} ms")
w.close()
