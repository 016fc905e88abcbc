import time, statistics, itertools, torch
from slac import runtime, parallel, baseline
from slac.config import Config, resolve
from slac.agent import SLACAgent
from slac.bench import synthetic_replay, gemm_op
cfg = resolve(Config(task="cheetah-run"))
device = runtime.set_up("cpu", 2, 0)
agent = SLACAgent(cfg, 6, device)
schedule = parallel.choose(agent)
rep = synthetic_replay(cfg, 6)
batches = [rep.sample(cfg.batch_size, cfg.sequence_length) for _ in range(3)]
it = itertools.cycle(batches)
plain = baseline.plain_agent(agent)
g = gemm_op(device)
R = {k: [] for k in ("after iteration", "after model", "after plain", "after sleep", "after gemm")}
for r in range(6):
    schedule.update(next(it)); R["after iteration"].append(g.gflops())
    schedule.update_model(next(it).rows(0, 32)); R["after model"].append(g.gflops())
    plain.update_model(next(it).rows(0, 32)); R["after plain"].append(g.gflops())
    time.sleep(0.5); R["after sleep"].append(g.gflops())
    R["after gemm"].append(g.gflops())
for k, v in R.items():
    print(f"{k:16s} median {statistics.median(v):6.1f}  {[round(x) for x in v]}")
