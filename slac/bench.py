"""``slac bench``: how fast one SLAC update runs here, against this machine's own peak.

In one process and one run: seconds per model update, per actor-critic update and per full
iteration at the configured sizes (median and min over repeats after warm-up), rendered
environment steps per second, FLOPs per iteration counted by ``torch.utils.flop_counter``,
achieved GFLOP/s, and the fp32 peak measured by a large GEMM (torch's BLAS and oneDNN's
matmul, the faster; with ``--amp`` a bfloat16 GEMM too) and by the model's own largest
convolution. The parts and the peak are timed in turn in each round and the medians compared
(typical against typical, in the same machine states); the fastest iteration against the
fastest peak run is reported too. How busy the rest of the machine was during the run is
measured and reported, since two cores shared with anything else skew every figure.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Callable

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from slac import baseline, envs, kernels, layers, parallel, runtime
from slac.agent import SLACAgent
from slac.config import Config
from slac.replay import Replay, checkpoint_margin


def machine() -> str:
    """The CPU's model name, core count and widest vector unit torch uses, e.g. to tell apart
    bench results from different machines."""
    name = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            name = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")),
                        name)
    except OSError:
        pass
    isa = torch.backends.cpu.get_cpu_capability()
    return f"{name}, {os.cpu_count()} cores, {isa}, torch {torch.__version__}"


def _cpu_ticks() -> tuple[int, int, int]:
    """(busy ticks of the whole machine, ticks of this process, ticks stolen by the hypervisor
    for other virtual machines) so far."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    steal = fields[7] if len(fields) > 7 else 0
    busy = sum(fields[:8]) - fields[3] - fields[4] - steal  # minus idle, iowait and steal
    t = os.times()
    return busy, int((t.user + t.system + t.children_user + t.children_system) * 100), steal


def _timed(fn, repeats: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        _sync()
        t0 = time.perf_counter()
        fn()
        _sync()
        out.append(time.perf_counter() - t0)
    return out


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


@dataclasses.dataclass
class PeakOp:
    """An operation that measures this machine's fp32 peak: what it is and its FLOPs per call."""

    where: str
    flops: float
    call: Callable[[], object]

    def gflops(self) -> float:
        """GFLOP/s of one timed call."""
        return self.flops / _timed(self.call, 1, warmup=0)[0] / 1e9


def gemm_op(device: torch.device, n: int = 2048, onednn: bool = False,
            dtype: torch.dtype = torch.float32) -> PeakOp:
    """A large square matmul, by torch's BLAS or (``onednn``) by oneDNN's matmul; in bfloat16
    (``dtype``) torch takes oneDNN's kernels on a CPU."""
    a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))
    if onednn:
        return PeakOp(f"{n}x{n} GEMM (oneDNN)", 2 * n**3, lambda: kernels.onednn_matmul(a, b))
    return PeakOp(f"{n}x{n} GEMM", 2 * n**3, lambda: a @ b)


PEAK_BATCHES = (36, 72, 144, 288, 576)  # frames: from cache-resident to the encoder's largest


def largest_conv_op(agent: SLACAgent, frames: torch.Tensor, repeats: int = 5) -> PeakOp:
    """The encoder's convolution with the most FLOPs per frame (ties all count) at the batch size
    where it runs fastest here, each run alone at several batch sizes: this machine's
    convolution kernels at their best (in bfloat16 autocast where the encoder uses it)."""
    x = frames.reshape(-1, *frames.shape[-3:]).permute(0, 3, 1, 2).float().div(255)
    x = x[:max(PEAK_BATCHES)]
    inputs, per_frame = [], []
    with torch.no_grad():
        for i, layer in enumerate(agent.model.encoder.net):
            if isinstance(layer, torch.nn.Conv2d):
                with FlopCounterMode(display=False) as fc:
                    layer(x[:1])
                inputs.append((i, layer, x))
                per_frame.append(fc.get_total_flops())
            x = layer(x)
    best, op = 0.0, None
    for (i, layer, inp), flops in zip(inputs, per_frame, strict=True):
        if flops < 0.99 * max(per_frame):
            continue
        for n in PEAK_BATCHES:
            batch = inp[:n].contiguous(memory_format=torch.channels_last)
            run = torch.no_grad()(autocast(lambda f=layer, b=batch: f(b), batch.device,
                                           agent.model.encoder.amp))
            t = min(_timed(run, repeats))
            if flops * batch.shape[0] / t > best:
                best = flops * batch.shape[0] / t
                reps = max(1, round(0.05 / t))  # timed runs of >= ~50 ms, as the GEMM's
                op = PeakOp(f"encoder.net[{i}], {n} frames", reps * flops * batch.shape[0],
                            lambda r=run, k=reps: [r() for _ in range(k)])
    assert op is not None
    return op


def autocast(fn: Callable[[], object], device: torch.device, amp: bool
             ) -> Callable[[], object]:
    """``fn``, run in bfloat16 autocast on ``device`` when ``amp`` (as ``--amp`` runs the
    encoder and decoder)."""
    def run():
        with torch.autocast(device.type, torch.bfloat16, enabled=amp):
            return fn()
    return run


def synthetic_replay(cfg: Config, action_dim: int, steps: int = 2_000) -> Replay:
    rng = np.random.default_rng(0)
    replay = Replay(steps, action_dim, seed=0)
    episode = 250
    for i in range(steps):
        if i % episode == 0:
            replay.start_episode(rng.integers(0, 256, (3, 64, 64), dtype=np.uint8))
        replay.add(rng.uniform(-1, 1, action_dim).astype(np.float32), float(rng.normal()),
                   rng.integers(0, 256, (3, 64, 64), dtype=np.uint8), False)
    return replay


def env_speed(cfg: Config, seconds: float = 5.0) -> tuple[float, float]:
    """(environment steps/s, agent steps/s) of rendered stepping with random actions."""
    env = envs.make(cfg.task, cfg.seed, cfg.action_repeat, cfg.render_quality)
    rng = np.random.default_rng(0)
    env.reset()
    steps = agent_steps = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        s = env.step(rng.uniform(-1, 1, env.action_dim))
        steps += s.env_steps
        agent_steps += 1
        if s.done:
            env.reset()
    dt = time.perf_counter() - t0
    env.close()
    return steps / dt, agent_steps / dt


def protocol_seconds(cfg: Config, action_dim: int, device: torch.device) -> dict[str, float]:
    """Estimated wall time of ``cfg``'s whole protocol on this machine: one model-only and one
    full update timed after a warm-up each (a throwaway agent on synthetic data, torch's global
    generator restored after), rendered environment steps for a second, evaluations included.
    """
    rng_state = torch.get_rng_state()
    try:
        agent = SLACAgent(cfg, action_dim, device)
        schedule = parallel.choose(agent)
        batch = synthetic_replay(cfg, action_dim, steps=500).sample(cfg.batch_size,
                                                                     cfg.sequence_length)
        model = min(_timed(lambda: schedule.update_model(batch.rows(0, cfg.model_batch_size)),
                           1))
        update = min(_timed(lambda: schedule.update(batch), 1))
        schedule.close()
    finally:
        torch.set_rng_state(rng_state)
    env_steps_s, _ = env_speed(cfg, seconds=1.0)
    return protocol_estimate(cfg, model, update, env_steps_s)


def protocol_estimate(cfg: Config, model_s: float, update_s: float,
                      env_steps_s: float) -> dict[str, float]:
    """Seconds of ``cfg``'s protocol from the seconds of a model-only update and of a full
    update, and rendered environment steps per second: pretraining, the updates of every agent
    step after the random ones, and the simulation with its evaluations (1000 steps each)."""
    agent_steps = max(0, cfg.env_steps - cfg.random_steps) / cfg.action_repeat
    evaluations = cfg.env_steps // cfg.eval_every * cfg.eval_episodes * 1000  # env steps
    out = {"pretraining_s": cfg.pretrain_updates * model_s,
           "updates_s": agent_steps * cfg.updates_per_step * update_s,
           "environment_s": (cfg.env_steps + evaluations) / env_steps_s}
    out["total_s"] = sum(out.values())
    return out


def replay_bytes(cfg: Config, action_dim: int) -> int:
    """Bytes a run's replay of ``replay_capacity`` steps maps (margin included)."""
    with tempfile.TemporaryDirectory() as d:
        r = Replay(cfg.replay_capacity, action_dim, directory=d,
                   margin=checkpoint_margin(cfg.checkpoint_every, cfg.action_repeat))
        return r.nbytes()


def run(cfg: Config, iterations: int = 5, per_layer: bool = False) -> dict:
    """The measurements, as a dict (the JSON of ``slac bench --json``); with ``per_layer``, the
    model-only update's per-layer account too (:mod:`slac.layers`)."""
    device = runtime.set_up(cfg.device, cfg.threads, cfg.seed)  # as `slac train` does
    probe = envs.make(cfg.task, cfg.seed, cfg.action_repeat, cfg.render_quality)
    action_dim = probe.action_dim
    probe.close()
    ticks0, wall0 = _cpu_ticks(), time.perf_counter()
    agent = SLACAgent(cfg, action_dim, device)
    schedule = parallel.choose(agent)
    replay = synthetic_replay(cfg, action_dim)
    batches = [replay.sample(cfg.batch_size, cfg.sequence_length) for _ in range(iterations + 1)]
    it = itertools.cycle(batches)
    mb = cfg.model_batch_size

    def model_update():
        b = next(it)
        schedule.update_model(b.rows(0, mb))

    def actor_critic_update():
        b = next(it).to(device)
        with torch.no_grad():
            f = agent.model.encoder(b.frames)
            z = agent.model.filter(f, b.actions, b.first).z
        agent.update_actor_critic(f, z, b)

    shared: list[tuple[int, int]] = []  # sequences the model stream encoded and filtered

    def iteration():
        schedule.update(next(it))
        shared.append((getattr(schedule, "model_stream_encoded", 0),
                       getattr(schedule, "model_stream_filtered", 0)))

    def streams() -> tuple[float, float]:
        """The overlapped schedule's two streams, one after the other on one thread, the
        actor-critic stream encoding all the other sequences: seconds of each."""
        b = next(it).to(device)
        head, tail = b.rows(0, mb), b.rows(mb)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            t0 = time.perf_counter()
            features, post = agent.model_posterior(head)
            agent.model_step(head, post)
            t1 = time.perf_counter()
            tail_fz = agent.latents(tail)
            agent.update_actor_critic(*agent.actor_critic_inputs(features, post, tail_fz), b)
            t2 = time.perf_counter()
        finally:
            torch.set_num_threads(threads)
        return t1 - t0, t2 - t1

    # FLOPs of the one-thread update and of its parts (the counter sees this thread's ops),
    # with the decoder's plain layers: the model's work, not the zero taps its faster last
    # layer multiplies too
    agent.model.decoder.plain = True
    counted = []
    for part in (lambda: agent.update(batches[0]),
                 lambda: agent.update_model(batches[0].rows(0, mb)), actor_critic_update):
        with FlopCounterMode(display=False) as fc, kernels.blas_matmuls():
            part()
        counted.append(fc.get_total_flops())
    agent.model.decoder.plain = False
    flops, model_flops, ac_flops = counted
    # the model-only update and the same computation the plain PyTorch way, interleaved
    plain = baseline.plain_agent(agent)

    def plain_model_update():
        plain.update_model(next(it).rows(0, mb).to(device))

    # The peak is measured in the same rounds as every part, so that all see the machine in the
    # same states (a shared VM's speed drifts by 10-50% within minutes): per round, one model
    # update, the same the plain way, one actor-critic update, one iteration, one GEMM of each
    # kind and one run of the fastest convolution; the medians are compared.
    gemms = {"blas": gemm_op(device)}
    if device.type == "cpu" and kernels.onednn_matmul_available():  # MKL is slow on some CPUs
        gemms["onednn"] = gemm_op(device, onednn=True)
    if cfg.amp:  # the encoder and decoder run in bfloat16: so does the peak
        gemms["bf16"] = gemm_op(device, dtype=torch.bfloat16)
    conv = largest_conv_op(agent, batches[0].frames[:64].to(device))
    t_model, t_plain, t_ac, t_iter, r_gemm, r_conv = [], [], [], [], {k: [] for k in gemms}, []
    for i in range(iterations + 1):  # the first round is a warm-up
        parts = [_timed(f, 1, warmup=0)[0] for f in (model_update, plain_model_update,
                                                      actor_critic_update, iteration)]
        g, c = {k: op.gflops() for k, op in gemms.items()}, conv.gflops()
        if i:
            for times, t in zip((t_model, t_plain, t_ac, t_iter), parts, strict=True):
                times.append(t)
            r_conv.append(c)
            for k, v in g.items():
                r_gemm[k].append(v)
        else:
            shared.clear()
    t_streams = [streams() for _ in range(iterations + 1)][1:] if mb < cfg.batch_size else []
    account = layers.account(agent, batches[0], rounds=iterations) if per_layer else None
    gemm_medians = {k: statistics.median(runs) for k, runs in r_gemm.items()}
    peak_gemm, peak_conv = max(gemm_medians.values()), statistics.median(r_conv)
    env_steps_s, agent_steps_s = env_speed(cfg)
    ticks1, wall1 = _cpu_ticks(), time.perf_counter()
    cores = os.cpu_count() or 1
    hz = os.sysconf("SC_CLK_TCK")
    other = max(0.0, ((ticks1[0] - ticks0[0]) - (ticks1[1] - ticks0[1])) / hz / (wall1 - wall0))
    steal = (ticks1[2] - ticks0[2]) / hz / (wall1 - wall0)
    peak = max(peak_gemm, peak_conv)
    peak_best = max(*itertools.chain(*r_gemm.values()), *r_conv)  # the fastest single run of any
    achieved = flops / statistics.median(t_iter) / 1e9
    model_s, ac_s = statistics.median(t_model), statistics.median(t_ac)
    protocol = protocol_estimate(cfg, model_s, statistics.median(t_iter), env_steps_s)
    return {
        "task": cfg.task,
        "device": str(device),
        "machine": machine(),
        "threads": torch.get_num_threads(),
        "overlap": schedule.name != "sequential",
        "schedule": schedule.name,
        "weight_grad": "matmul" if kernels.WEIGHT_GRAD_BY_MATMUL else "onednn",
        "amp": cfg.amp,
        "batch_size": cfg.batch_size,
        "model_batch_size": cfg.model_batch_size,
        "sequence_length": cfg.sequence_length,
        "iterations": iterations,
        "iteration_s": statistics.median(t_iter),
        "iteration_min_s": min(t_iter),
        "model_update_s": statistics.median(t_model),
        "model_update_min_s": min(t_model),
        "actor_critic_update_s": statistics.median(t_ac),
        "actor_critic_update_min_s": min(t_ac),
        "model_update_flops": model_flops,
        "model_update_fraction_of_peak": model_flops / model_s / 1e9 / peak,
        "model_update_fraction_of_peak_at_min": model_flops / min(t_model) / 1e9 / peak_best,
        "plain_model_update_s": statistics.median(t_plain),
        "model_update_speedup_over_plain": statistics.median(t_plain) / model_s,
        # what the plain way reaches: ours cannot be faster than 1 / this (the peak's speed)
        "plain_model_update_fraction_of_peak": model_flops / statistics.median(t_plain) / 1e9
        / peak,
        "actor_critic_flops": ac_flops,
        "actor_critic_fraction_of_peak": ac_flops / ac_s / 1e9 / peak,
        "actor_critic_fraction_of_peak_at_min": ac_flops / min(t_ac) / 1e9 / peak_best,
        "protocol_hours": protocol["total_s"] / 3600,
        "protocol": {k: v / 3600 for k, v in protocol.items()},
        "protocol_env_steps": cfg.env_steps,
        "model_stream_s": statistics.median(t[0] for t in t_streams) if t_streams else None,
        "actor_critic_stream_s": (statistics.median(t[1] for t in t_streams)
                                  if t_streams else None),
        # sequences of the actor-critic's the model stream encoded (median over iterations)
        "model_stream_encoded": statistics.median(e for e, _ in shared) if shared else 0,
        "model_stream_filtered": statistics.median(f for _, f in shared) if shared else 0,
        "env_steps_per_s": env_steps_s,
        "agent_steps_per_s": agent_steps_s,
        "flops_per_iteration": flops,
        "achieved_gflops": achieved,
        "peak_gflops_gemm": peak_gemm,
        "peak_gflops_gemm_blas": gemm_medians["blas"],
        "peak_gflops_gemm_onednn": gemm_medians.get("onednn"),
        "peak_gflops_gemm_bf16": gemm_medians.get("bf16"),
        "peak_gflops_conv": peak_conv,
        "peak_conv_layer": conv.where,
        "peak_gflops": peak,
        "peak_gflops_best": peak_best,
        "fraction_of_peak": achieved / peak,
        "fraction_of_gemm_peak": achieved / peak_gemm,
        # best against best: the fastest iteration against the fastest peak run
        "fraction_of_peak_at_min": flops / min(t_iter) / 1e9 / peak_best,
        "replay_bytes": replay_bytes(cfg, action_dim),
        "max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "other_load_cores": other,
        "steal_cores": steal,
        "cores": cores,
        "loadavg_1min": os.getloadavg()[0],
        **({"layers": account} if account is not None else {}),
    }


def report(r: dict) -> str:
    lines = [
        f"slac bench: {r['task']} on {r['device']} with {r['threads']} threads, batch "
        f"{r['batch_size']} (model {r['model_batch_size']}) x {r['sequence_length'] + 1} frames, "
        f"{r['iterations']} repeats",
        f"  machine            {r.get('machine', '?')}; 3x3 stride-2 weight gradients "
        f"{'as patch matmuls' if r.get('weight_grad') == 'matmul' else 'by oneDNN'}"
        + ("; encoder and decoder in bfloat16 autocast (--amp)" if r.get("amp") else ""),
        f"  full iteration     {r['iteration_s']:.3f} s median, {r['iteration_min_s']:.3f} s min"
        + {"overlap": " (model and actor-critic streams side by side, 1 thread each)",
           "split": " (the model's sequences split over the threads, 1 each)"}.get(
            r.get("schedule", ""), ""),
        f"  model update       {r['model_update_s']:.3f} s median, "
        f"{r['model_update_min_s']:.3f} s min, {r['model_update_flops'] / 1e9:.1f} GFLOP, "
        f"{r['model_update_fraction_of_peak']:.2f} of peak (fastest against fastest "
        f"{r['model_update_fraction_of_peak_at_min']:.2f}; pretraining's update)",
        f"    plain PyTorch    {r['plain_model_update_s']:.3f} s median (NCHW, stock layers, "
        f"one pass): ours is {r['model_update_speedup_over_plain']:.2f}x faster; the plain way "
        f"runs at {r['plain_model_update_fraction_of_peak']:.2f} of peak, so at the peak ours "
        f"would be {1 / r['plain_model_update_fraction_of_peak']:.2f}x",
        f"  actor-critic       {r['actor_critic_update_s']:.3f} s median, "
        f"{r['actor_critic_update_min_s']:.3f} s min, {r['actor_critic_flops'] / 1e9:.1f} "
        f"GFLOP, {r['actor_critic_fraction_of_peak']:.2f} of peak (fastest against fastest "
        f"{r['actor_critic_fraction_of_peak_at_min']:.2f}; all sequences encoded and filtered "
        "without gradients, then Eq. 8-10)",
        *([f"  streams, 1 thread  model {r['model_stream_s']:.3f} s, actor-critic "
            f"{r['actor_critic_stream_s']:.3f} s (medians, one after the other); side by side the "
            f"model stream encoded {r['model_stream_encoded']:g} and filtered "
            f"{r.get('model_stream_filtered', 0):g} of the actor-critic's sequences (medians)"]
          if r.get("model_stream_s") is not None else []),
        f"  FLOPs/iteration    {r['flops_per_iteration'] / 1e9:.1f} GFLOP (counted)",
        f"  achieved           {r['achieved_gflops']:.1f} GFLOP/s",
        f"  peak               {r['peak_gflops']:.1f} GFLOP/s (medians of runs in the rounds "
        f"of the parts: GEMM {r['peak_gflops_gemm']:.1f} (BLAS {r['peak_gflops_gemm_blas']:.1f}"
        + (f", oneDNN {r['peak_gflops_gemm_onednn']:.1f}" if r.get('peak_gflops_gemm_onednn')
           else "")
        + (f", bfloat16 {r['peak_gflops_gemm_bf16']:.1f}" if r.get('peak_gflops_gemm_bf16')
           else "") + f"), largest conv "
        f"{r['peak_gflops_conv']:.1f}: {r['peak_conv_layer']}; fastest run "
        f"{r['peak_gflops_best']:.1f})",
        f"  fraction of peak   {r['fraction_of_peak']:.2f} "
        f"({r['fraction_of_gemm_peak']:.2f} of the GEMM peak; the fastest iteration against "
        f"the fastest peak run {r['fraction_of_peak_at_min']:.2f})",
        f"  environment        {r['env_steps_per_s']:.0f} env steps/s "
        f"({r['agent_steps_per_s']:.0f} agent steps/s, rendered)",
        f"  the protocol here  {r['protocol_hours']:.1f} h for {r['protocol_env_steps']:,} env "
        f"steps (pretraining {r['protocol']['pretraining_s']:.1f} h, updates "
        f"{r['protocol']['updates_s']:.1f} h, simulation and evaluations "
        f"{r['protocol']['environment_s']:.1f} h)",
        f"  replay of 100k     {r['replay_bytes'] / 2**30:.2f} GiB mapped; process peak RSS "
        f"{r['max_rss_bytes'] / 2**30:.2f} GiB",
        f"  machine load       {r['other_load_cores']:.2f} of {r['cores']} cores busy with "
        f"other processes during the run (1-min load average {r['loadavg_1min']:.2f}); "
        f"{r.get('steal_cores', 0.0):.2f} cores' time taken by the hypervisor (steal)",
    ]
    if "layers" in r:
        lines += layers.report(r["layers"])
    if r["other_load_cores"] > 0.2 or r.get("steal_cores", 0.0) > 0.2:
        lines.append("  WARNING: the machine was busy; figures are skewed. Rerun it quiet.")
    return "\n".join(lines)
