"""A/B in one process: the filter with p(z2 | z1) of restarts inside the loop (old) or batched (new)."""
import sys, time, torch, statistics, importlib.util
from slac import runtime, parallel, model
from slac.config import Config, resolve, with_preset
from slac.agent import SLACAgent
from slac.bench import synthetic_replay
spec = importlib.util.spec_from_file_location("model_old", "/tmp/s28/model_old.py")
old = importlib.util.module_from_spec(spec); sys.modules["model_old"] = old; spec.loader.exec_module(old)
preset = sys.argv[1]; what = sys.argv[2]; rounds = int(sys.argv[3])
cfg = resolve(Config(task="cheetah-run") if preset == "paper" else Config(**with_preset({"preset": preset, "task": "ball_in_cup-catch"})))
device = runtime.set_up("cpu", 2, 0)
agent = SLACAgent(cfg, 6, device)
sched = parallel.choose(agent)
rep = synthetic_replay(cfg, 6)
bs = [rep.sample(cfg.batch_size, cfg.sequence_length) for _ in range(3)]
mb = cfg.model_batch_size
i = 0
def one():
    global i; i += 1
    b = bs[i % 3]
    t = time.perf_counter()
    if what == "model": sched.update_model(b.rows(0, mb))
    else: sched.update(b)
    return time.perf_counter() - t
new_filter = model.LatentModel.filter
res = {"old": [], "new": []}
for r in range(rounds):
    for name in (("old", "new") if r % 2 == 0 else ("new", "old")):
        model.LatentModel.filter = old.LatentModel.filter if name == "old" else new_filter
        one()
        res[name].append(statistics.median([one() for _ in range(3)]))
    print(f"round {r}: old {res['old'][-1]:.4f} new {res['new'][-1]:.4f} ratio {res['new'][-1]/res['old'][-1]:.3f}", flush=True)
print(preset, what, "medians: old %.4f new %.4f ratio %.3f" % (statistics.median(res['old']), statistics.median(res['new']), statistics.median(res['new'])/statistics.median(res['old'])))
