"""A/B in one process, both arms in bfloat16 autocast (--amp): the encoder's and decoder's
layers by the rewrites of slac.kernels ("fast") or the stock layers ("stock")."""
import sys, time, torch, statistics
from slac import runtime, parallel
from slac.config import Config, resolve, with_preset
from slac.agent import SLACAgent
from slac.bench import synthetic_replay
preset = sys.argv[1]; what = sys.argv[2]; rounds = int(sys.argv[3])
cfg = resolve(Config(task="cheetah-run", amp=True) if preset == "paper" else Config(**with_preset({"preset": preset, "task": "ball_in_cup-catch", "amp": True})))
device = runtime.set_up("cpu", 2, 0)
agent = SLACAgent(cfg, 6, device)
sched = parallel.choose(agent)
rep = synthetic_replay(cfg, 6)
bs = [rep.sample(cfg.batch_size, cfg.sequence_length) for _ in range(3)]
mb = cfg.model_batch_size
enc, dec = agent.model.encoder, agent.model.decoder
def stock_encoder(x):
    for _, step in enc.stages(False, x.shape[-1]):
        x = step(x)
    return x
def arm(name):
    if name == "stock":
        enc._forward, dec.plain = stock_encoder, True
    else:
        enc.__dict__.pop("_forward", None); dec.plain = False
i = 0
def one():
    global i; i += 1
    b = bs[i % 3]
    t = time.perf_counter()
    if what == "model": sched.update_model(b.rows(0, mb))
    else: sched.update(b)
    return time.perf_counter() - t
res = {"stock": [], "fast": []}
for r in range(rounds):
    for name in (("stock", "fast") if r % 2 == 0 else ("fast", "stock")):
        arm(name)
        one()
        res[name].append(statistics.median([one() for _ in range(3)]))
    print(f"round {r}: stock {res['stock'][-1]:.4f} fast {res['fast'][-1]:.4f} ratio {res['fast'][-1]/res['stock'][-1]:.3f}", flush=True)
print(preset, what, "medians: stock %.4f fast %.4f ratio %.3f" % (statistics.median(res['stock']), statistics.median(res['fast']), statistics.median(res['fast'])/statistics.median(res['stock'])))
