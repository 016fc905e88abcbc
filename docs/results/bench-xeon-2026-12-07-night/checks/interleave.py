import sys, time, statistics, torch, itertools
from slac import runtime, parallel, baseline
from slac.config import Config, resolve, with_preset
from slac.agent import SLACAgent
from slac.bench import synthetic_replay
preset, rounds = sys.argv[1], int(sys.argv[2])
cfg = resolve(Config(task="cheetah-run") if preset == "paper" else Config(**with_preset({"preset": preset, "task": "ball_in_cup-catch"})))
device = runtime.set_up("cpu", 2, 0)
agent = SLACAgent(cfg, 6, device)
schedule = parallel.choose(agent)
rep = synthetic_replay(cfg, 6)
batches = [rep.sample(cfg.batch_size, cfg.sequence_length) for _ in range(6)]
it = itertools.cycle(batches); mb = cfg.model_batch_size
plain = baseline.plain_agent(agent)
def m(): schedule.update_model(next(it).rows(0, mb))
def p(): plain.update_model(next(it).rows(0, mb))
def t(f):
    a = time.perf_counter(); f(); return time.perf_counter() - a
for _ in range(2): m(); p()
A, B = [], []
for r in range(rounds):
    m(); A.append(t(m))   # ours after ours
    p(); B.append(t(m))   # ours after plain
print(f"after ours  {statistics.median(A):.3f}  {[round(x,3) for x in A]}")
print(f"after plain {statistics.median(B):.3f}  {[round(x,3) for x in B]}")
print(f"ratio of medians {statistics.median(B)/statistics.median(A):.3f}; rounds where after-plain slower: {sum(b > a for a, b in zip(A, B))}/{rounds}")
