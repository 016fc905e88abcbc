"""A/B in one process: linear layers by torch BLAS (A, "blas") or oneDNN matmul (B, "onednn")."""
import sys, time, torch, statistics
from slac import runtime, parallel, kernels
from slac.config import Config, resolve, with_preset
from slac.agent import SLACAgent
from slac.bench import synthetic_replay
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
res = {"blas": [], "onednn": []}
for r in range(rounds):
    for name, flag in (("blas", True), ("onednn", False)) if r % 2 == 0 else (("onednn", False), ("blas", True)):
        kernels.ONEDNN_LINEAR = not flag
        one()
        res[name].append(statistics.median([one() for _ in range(3)]))
    print(f"round {r}: blas {res['blas'][-1]:.4f} onednn {res['onednn'][-1]:.4f} ratio {res['onednn'][-1]/res['blas'][-1]:.3f}", flush=True)
print(preset, what, "medians: blas %.4f onednn %.4f ratio %.3f" % (statistics.median(res['blas']), statistics.median(res['onednn']), statistics.median(res['onednn'])/statistics.median(res['blas'])))
