"""A/B in one process: the update in fp32 ("fp32") or with --amp ("bf16": the encoder and
decoder in bfloat16 autocast), toggling their amp flags; args: paper|cpu model|iter rounds."""
import sys, time, torch, statistics
from slac import runtime, parallel
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
nets = [agent.model.encoder, agent.model.decoder]
i = 0
def one():
    global i; i += 1
    b = bs[i % 3]
    t = time.perf_counter()
    if what == "model": sched.update_model(b.rows(0, mb))
    else: sched.update(b)
    return time.perf_counter() - t
res = {"fp32": [], "bf16": []}
for r in range(rounds):
    for name in (("fp32", "bf16") if r % 2 == 0 else ("bf16", "fp32")):
        for n in nets: n.amp = name == "bf16"
        one()
        res[name].append(statistics.median([one() for _ in range(3)]))
    print(f"round {r}: fp32 {res['fp32'][-1]:.4f} bf16 {res['bf16'][-1]:.4f} ratio {res['bf16'][-1]/res['fp32'][-1]:.3f}", flush=True)
print(preset, what, "medians: fp32 %.4f bf16 %.4f ratio %.3f" % (statistics.median(res['fp32']), statistics.median(res['bf16']), statistics.median(res['bf16'])/statistics.median(res['fp32'])))
