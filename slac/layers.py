"""``slac bench --layers``: where the model-only (pretraining) update's time goes, layer by layer.

Each step of the encoder and decoder (a layer and its activation, run as the model runs it) is
timed alone, forward and backward, with as many threads as one pass has in the update, at the
pass size the update uses and at other batch sizes; its FLOPs are counted on the stock layers.
Against each layer's GFLOP/s at the update's pass size stands what the same layer reaches at its
best batch. The layers' sum is set against the whole share of the update timed the same way
(the rest: the latent model's MLPs, the losses, elementwise work), and that share alone against
the update as it runs (with two threads: both halves side by side, which slow each other down
through the cache and memory the cores share). Timings are the fastest of interleaved rounds.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from slac import kernels, parallel
from slac.agent import SLACAgent
from slac.replay import Batch

Runner = Callable[..., tuple[float, float]]
BATCHES = (9, 18, 36, 72, 144, 288)  # frames per pass: one sequence to the encoder's largest


@dataclasses.dataclass
class Layer:
    """One step's forward and backward: FLOPs per frame of each, seconds per frame of each at
    the update's pass size, and of both at the batch where the step runs fastest."""

    name: str
    forward_flops: float
    backward_flops: float
    batch: int
    forward_s: float
    backward_s: float
    best_batch: int
    best_s: float

    @property
    def flops(self) -> float:
        return self.forward_flops + self.backward_flops

    @property
    def seconds(self) -> float:
        return self.forward_s + self.backward_s

    def stats(self) -> dict:
        """Its fields and GFLOP/s: forward, backward, both, and both at the best batch."""
        return {**dataclasses.asdict(self),
                "forward_gflops": self.forward_flops / self.forward_s / 1e9,
                "backward_gflops": self.backward_flops / self.backward_s / 1e9,
                "gflops": self.flops / self.seconds / 1e9,
                "best_gflops": self.flops / self.best_s / 1e9}


def step_runner(step: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                grad: torch.Tensor, needs_grad: bool, params: list[torch.Tensor]
                ) -> Runner:
    """A function of n that runs ``step`` forward and (unless told not to) backward on the
    first n inputs: the seconds of each."""
    def run(n: int, backward: bool = True) -> tuple[float, float]:
        for p in params:
            p.grad = None
        inp = x[:n].detach().requires_grad_(needs_grad)
        t0 = time.perf_counter()
        y = step(inp)
        t1 = time.perf_counter()
        if backward:
            y.backward(grad[:n])
        return t1 - t0, time.perf_counter() - t1
    return run


def seconds(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def runners(agent: SLACAgent, frames: torch.Tensor, fast: bool
            ) -> list[tuple[str, Runner]]:
    """Each encoder and decoder step as a runner over up to ``len(frames)`` inputs: the steps'
    inputs are the previous steps' outputs on ``frames`` (uint8, N x 64 x 64 x 3) and on random
    latents, their output gradients random."""
    enc, dec = agent.model.encoder, agent.model.decoder
    out = []
    with torch.no_grad():
        x = frames.permute(0, 3, 1, 2).float().div(255.0)  # channels-last, as the encoder's
        z = torch.randn(frames.shape[0], agent.model.latent_dim, device=frames.device)
        for stages, inp, params in ((enc.stages(fast), x, list(enc.parameters())),
                                    (dec.stages(fast), z, list(dec.parameters()))):
            for i, (name, step) in enumerate(stages):
                y = step(inp.clone())  # steps' activations work in place
                needs_grad = not (i == 0 and inp is x)  # the frames need no gradient
                out.append((name, step_runner(step, inp, torch.randn_like(y), needs_grad,
                                              params)))
                inp = y
    return out


def account(agent: SLACAgent, batch: Batch, rounds: int = 5) -> dict:
    """The per-layer account of ``agent``'s model-only update on ``batch`` (its first
    ``model_batch_size`` sequences), as a dict (``slac bench --layers``' JSON)."""
    cfg, device = agent.cfg, agent.device
    b = batch.rows(0, cfg.model_batch_size).to(device)
    split = parallel.two_threads_available(agent) and b.frames.shape[0] >= 2
    threads = torch.get_num_threads()
    pass_threads = 1 if split else threads
    share = b.frames.shape[0] // 2 if split else b.frames.shape[0]  # sequences per thread
    steps = b.frames.shape[1]
    frames_per_share = share * steps
    per_pass = min(agent.model.encoder.CHUNK, frames_per_share)
    sizes = sorted({*BATCHES, per_pass})
    frames = b.frames.reshape(-1, *b.frames.shape[-3:])
    frames = frames.repeat(-(-max(sizes) // frames.shape[0]), 1, 1, 1)[:max(sizes)]
    fast_runs, plain_runs = runners(agent, frames, True), runners(agent, frames, False)
    flops = []
    for _, run in plain_runs:  # FLOPs of the stock layers: the model's work, not zero taps
        with FlopCounterMode(display=False) as fc, kernels.blas_matmuls():
            run(per_pass)
        total = fc.get_total_flops()
        with FlopCounterMode(display=False) as fc, kernels.blas_matmuls():
            run(per_pass, backward=False)
        flops.append((fc.get_total_flops() / per_pass, (total - fc.get_total_flops()) / per_pass))
    noise = agent.model_noise(b.frames.shape[0], steps)
    schedule = parallel.choose(agent)
    best: dict[tuple[int, int], tuple[float, float]] = {}  # (step, frames) -> fastest f, b
    t_share, t_update = [], []
    torch.set_num_threads(pass_threads)
    try:
        for r in range(rounds + 1):  # the first round is a warm-up
            for i, (_, run) in enumerate(fast_runs):
                for n in sizes:
                    f, bw = run(n)
                    if r:
                        old = best.get((i, n), (f / n, bw / n))
                        best[i, n] = min(old[0], f / n), min(old[1], bw / n)
            t = seconds(lambda: agent.model_gradients(b, 0, share, noise))
            torch.set_num_threads(threads)
            u = seconds(lambda: schedule.update_model(b))
            torch.set_num_threads(pass_threads)
            if r:
                t_share.append(t), t_update.append(u)
    finally:
        torch.set_num_threads(threads)
        schedule.close()
    layers = []
    for i, (name, _) in enumerate(fast_runs):
        fastest = min(sizes, key=lambda n, i_=i: sum(best[i_, n]))
        layers.append(Layer(name, *flops[i], per_pass, *best[i, per_pass], fastest,
                            sum(best[i, fastest])))
    layer_s = sum(x.seconds for x in layers) * frames_per_share
    return {
        "pass_threads": pass_threads,
        "frames_per_pass": per_pass,
        "frames_per_share": frames_per_share,
        "split": split,
        "layers": [x.stats() for x in layers],
        "layers_s": layer_s,
        "layers_at_best_s": sum(x.best_s for x in layers) * frames_per_share,
        "share_s": min(t_share),
        "other_s": min(t_share) - layer_s,
        "update_s": min(t_update),
    }


def report(a: dict) -> list[str]:
    """The account as lines of text, one per layer, then the totals."""
    n = a["frames_per_share"]
    lines = [f"  per layer, on {a['pass_threads']} thread(s) at {a['frames_per_pass']} frames per "
             "pass as the update runs them (fastest of the rounds); best: forward and backward "
             "at the layer's fastest batch",
             f"    {'layer':<50} {'MFLOP/frame':>11} {'ms':>6} {'GFLOP/s':>7} {'fwd':>5} "
             f"{'bwd':>5} {'best (frames)':>13}"]
    for x in a["layers"]:
        lines.append(
            f"    {x['name']:<50} {(x['forward_flops'] + x['backward_flops']) / 1e6:>11.1f} "
            f"{(x['forward_s'] + x['backward_s']) * n * 1e3:>6.1f} {x['gflops']:>7.1f} "
            f"{x['forward_gflops']:>5.0f} {x['backward_gflops']:>5.0f} "
            f"{x['best_gflops']:>7.1f} ({x['best_batch']:>3})")
    share = a["share_s"]
    lines += [
        f"    the layers, on the {n} frames of one thread's share: {a['layers_s']:.3f} s "
        f"({a['layers_s'] / share:.0%} of the share; at each layer's best batch "
        f"{a['layers_at_best_s']:.3f} s)",
        f"    the rest (latent model, losses, elementwise): {a['other_s']:.3f} s; the share "
        f"alone {share:.3f} s",
    ]
    if a["split"]:
        lines.append(f"    the update as it runs (both halves side by side, 1 thread each) "
                     f"{a['update_s']:.3f} s: {a['update_s'] / share:.2f}x one half alone")
    else:
        lines.append(f"    the update as it runs {a['update_s']:.3f} s")
    return lines
