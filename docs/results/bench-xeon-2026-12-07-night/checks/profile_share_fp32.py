"""torch.profiler of one paper-size (or cpu preset) share of the model-only update under --amp,
on one thread: the ops by self time, then by input shape. Args: paper|cpu."""
import sys, time, torch, statistics
from slac import runtime
from slac.config import Config, resolve, with_preset
from slac.agent import SLACAgent
from slac.bench import synthetic_replay
from torch.profiler import profile, ProfilerActivity
preset = sys.argv[1]
cfg = resolve(Config(task="cheetah-run", amp=False) if preset == "paper" else Config(**with_preset({"preset": preset, "task": "ball_in_cup-catch", "amp": False})))
device = runtime.set_up("cpu", 1, 0)
agent = SLACAgent(cfg, 6, device)
rep = synthetic_replay(cfg, 6)
b = rep.sample(cfg.batch_size, cfg.sequence_length).rows(0, cfg.model_batch_size // 2)
def share():
    f, post = agent.model_posterior(b); agent.model_step(b, post)
for _ in range(2): share()
ts = []
for _ in range(3):
    t = time.perf_counter(); share(); ts.append(time.perf_counter() - t)
print("share", statistics.median(ts))
with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as p:
    share()
print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
ev = p.key_averages(group_by_input_shape=True)
rows = sorted([e for e in ev if e.key.startswith("aten::")], key=lambda e: -e.self_cpu_time_total)
for e in [e for e in rows if e.key in ("aten::copy_", "aten::fill_", "aten::cat", "aten::mm", "aten::addmm", "aten::sum")][:40]:
    print(f"{e.key:28s} {e.count:4d} {e.self_cpu_time_total/1000:7.2f} ms  {str(e.input_shapes)[:120]}")
