"""One thread: the posterior filter alone (forward and backward of one share's filter, as in
the model-only update) and one share of the model-only update, with the filter as at df101e4
(A) or as now (B), interleaved; also checks that both arms' gradients agree.

    .venv/bin/python docs/results/bench-ab-2026-12-08-unroll/share_ab.py {paper,cpu} ROUNDS
"""
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from filter_ab import switch  # noqa: E402

from slac import bench, runtime  # noqa: E402
from slac.agent import SLACAgent  # noqa: E402
from slac.config import Config, resolve, with_preset  # noqa: E402

runtime.keep_freed_memory()
torch.set_num_threads(1)
given = ({"task": "cheetah-run"} if sys.argv[1] == "paper"
         else {"preset": "cpu", "task": "ball_in_cup-catch"})
cfg = resolve(Config(**with_preset(given)))
agent = SLACAgent(cfg, 6, torch.device("cpu"))
set_b = switch(agent)["filter"][2]
replay = bench.synthetic_replay(cfg, 6)
bs = [replay.sample(cfg.batch_size, cfg.sequence_length).rows(0, cfg.model_batch_size)
      for _ in range(3)]
share = cfg.model_batch_size // 2
noise = agent.model_noise(bs[0].frames.shape[0], bs[0].frames.shape[1])
m = agent.model
params = [p for p in m.parameters() if p.requires_grad]
h = bs[0].rows(0, share)
feat = m.encoder(h.frames).detach()


def filt() -> None:
    f = feat.clone().requires_grad_()
    post = m.filter(f, h.actions, h.first, noise=(noise[0][:share], noise[1][:share]))
    loss = sum(v.sum() for v in (post.z, post.q_mean, post.q_std, post.p_mean, post.p_std))
    torch.autograd.grad(loss, [f, *params], allow_unused=True)


def whole(i: int) -> None:
    agent.model_gradients(bs[i % 3], 0, share, noise)


grads = []
for arm in (False, True):
    set_b(arm)
    grads.append(agent.model_gradients(bs[0], 0, share, noise).grads)
    for _ in range(3):
        filt()
        whole(0)
pairs = [(a, b) for a, b in zip(*grads, strict=True) if a is not None]
worst = max(float((b - a).abs().max() / a.abs().max()) for a, b in pairs)
print(f"gradients: {sum(torch.equal(a, b) for a, b in pairs)} of {len(pairs)} bit-equal, "
      f"largest difference {worst:.1e} of the tensor's largest entry")
t = {(w, arm): [] for w in ("filter", "share") for arm in (False, True)}
for r in range(int(sys.argv[2])):
    order = (False, True) if r % 2 else (True, False)
    for w, fn in (("filter", filt), ("share", lambda r_=r: whole(r_))):
        for arm in order:
            set_b(arm)
            t0 = time.perf_counter()
            fn()
            t[w, arm].append(time.perf_counter() - t0)
for w in ("filter", "share"):
    ratios = [b / a for a, b in zip(t[w, False], t[w, True], strict=True)]
    print(f"{sys.argv[1]} {w}: A {statistics.median(t[w, False]) * 1e3:.2f} ms, "
          f"B {statistics.median(t[w, True]) * 1e3:.2f} ms; median B/A "
          f"{statistics.median(ratios):.3f}, B faster in {sum(x < 1 for x in ratios)} of "
          f"{len(ratios)}")
