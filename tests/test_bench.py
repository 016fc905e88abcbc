"""`slac bench` end to end at the cpu preset's sizes: every figure present and consistent."""

import json

import pytest
from conftest import run


def mlp_fwd(inp, out, h, rows):
    return [2 * rows * inp * h, 2 * rows * h * h, 2 * rows * h * out]


def conv_flops(cfg):
    """Per frame: the encoder's and decoder's layer FLOPs (2 per multiply-add; a transposed
    conv's counted on its input), from the layer sizes of Appendix B."""
    F, w, Z = cfg.feature_dim, cfg.conv_width, cfg.z1_dim + cfg.z2_dim
    enc = [(3, w, 5, 32), (w, 2 * w, 3, 16), (2 * w, 4 * w, 3, 8), (4 * w, 8 * w, 3, 4),
           (8 * w, F, 4, 1)]  # (Cin, Cout, k, Hout)
    dec = [(Z, 8 * w, 4, 1), (8 * w, 4 * w, 3, 4), (4 * w, 2 * w, 3, 8), (2 * w, w, 3, 16),
           (w, 3, 5, 32)]  # (Cin, Cout, k, Hin)
    return ([2 * ci * co * k * k * ho * ho for ci, co, k, ho in enc],
            [2 * ci * co * k * k * hi * hi for ci, co, k, hi in dec])


def filter_flops(cfg, action_dim, n):
    """The filtering posterior (and its priors' networks) of n sequences, forward."""
    A, h, F, z1, z2, T = (action_dim, cfg.hidden, cfg.feature_dim, cfg.z1_dim, cfg.z2_dim,
                          cfg.sequence_length + 1)

    def gauss(inp, out, rows):
        return sum(mlp_fwd(inp, 2 * out, h, rows))

    return (gauss(F, z1, n * T) + gauss(F + z2 + A, z1, n) * (T - 1) + gauss(z1, z2, n) * T
            + gauss(z1 + z2 + A, z2, n) * (T - 1) + gauss(z2 + A, z1, n * (T - 1)))


def model_update_flops(cfg, action_dim):
    """Eq. (7) on the model's sequences with its gradient: forward, then backward (input and
    weight gradients, 2x forward), but the first conv's input (the frames) needs no gradient."""
    enc_f, dec_f = conv_flops(cfg)
    mb, T, h, Z = cfg.model_batch_size, cfg.sequence_length + 1, cfg.hidden, \
        cfg.z1_dim + cfg.z2_dim
    total = mb * T * (sum(enc_f) * 3 - enc_f[0]) + mb * T * sum(dec_f) * 3
    reward = sum(mlp_fwd(2 * Z + action_dim, 2, h, mb * (T - 1)))
    return total + 3 * (filter_flops(cfg, action_dim, mb) + reward)


def actor_critic_flops(cfg, action_dim, n):
    """n sequences encoded and filtered without gradients, then Eq. (8)-(10) on the batch."""
    enc_f, _ = conv_flops(cfg)
    A, h, F, B, L = action_dim, cfg.hidden, cfg.feature_dim, cfg.batch_size, \
        cfg.sequence_length
    Z = cfg.z1_dim + cfg.z2_dim
    total = n * (L + 1) * sum(enc_f) + filter_flops(cfg, A, n)
    actor = mlp_fwd(L * F + (L - 1) * A, 2 * A, h, B)
    q = mlp_fwd(Z + A, 1, h, B)
    total += sum(actor) + 2 * sum(q)  # Eq. 9's target: pi at z_T+1, both target critics
    total += 2 * (sum(q) * 2 + q[1] + q[2])  # Eq. 8: both critics, weight and hidden input grads
    total += sum(actor) * 2 + actor[1] + actor[2]  # Eq. 10: actor fwd, its weight and hidden grads
    total += 2 * sum(q) * 2  # ...through both critics to the action: forward and input grads
    return total


def update_flops(cfg, action_dim):
    """FLOPs of one SLAC update in closed form: the model's step, and the actor-critic's on
    latents of the other sequences (the model's sequences' come from the model's step)."""
    return (model_update_flops(cfg, action_dim)
            + actor_critic_flops(cfg, action_dim, cfg.batch_size - cfg.model_batch_size))


KEYS = ("iteration_s", "model_update_s", "actor_critic_update_s", "env_steps_per_s",
        "flops_per_iteration", "achieved_gflops", "peak_gflops", "fraction_of_peak")


@pytest.mark.e2e
def test_bench_reports_consistent_figures(tmp_path):
    out = tmp_path / "b" / "bench.json"
    done = run("bench", "--preset", "cpu", "--task", "cartpole-swingup", "--iterations", "1",
               "--threads", "1", "--layers", "--json", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    r = json.loads(out.read_text())
    for key in KEYS:
        assert r[key] > 0, key
    assert r["peak_gflops"] == max(r["peak_gflops_gemm"], r["peak_gflops_conv"])
    gemms = [r["peak_gflops_gemm_blas"], r["peak_gflops_gemm_onednn"]]
    assert r["peak_gflops_gemm"] == max(g for g in gemms if g is not None)
    assert abs(r["achieved_gflops"] - r["flops_per_iteration"] / r["iteration_s"] / 1e9) < 1e-6
    assert abs(r["fraction_of_peak"] - r["achieved_gflops"] / r["peak_gflops"]) < 1e-9
    # the peak: medians of runs in the rounds of the parts; the fastest of those runs is
    # reported too, and the fastest iteration, model-only and actor-critic update against it
    assert r["peak_gflops_best"] >= r["peak_gflops"]
    at_min = r["flops_per_iteration"] / r["iteration_min_s"] / 1e9 / r["peak_gflops_best"]
    assert abs(r["fraction_of_peak_at_min"] - at_min) < 1e-9
    # the counted FLOPs are the closed form's (cartpole: one action dimension)
    from slac.config import Config, resolve, with_preset

    cfg = resolve(Config(**with_preset({"preset": "cpu", "task": "cartpole-swingup"})))
    assert r["flops_per_iteration"] == update_flops(cfg, action_dim=1)
    # ... and so are its parts': the model-only (pretraining) update, and the actor-critic part
    # as the bench times it (every sequence encoded and filtered without gradients)
    assert r["model_update_flops"] == model_update_flops(cfg, action_dim=1)
    assert r["actor_critic_flops"] == actor_critic_flops(cfg, 1, cfg.batch_size)
    for part, seconds, fastest in (("model_update", "model_update_s", "model_update_min_s"),
                                   ("actor_critic", "actor_critic_update_s",
                                    "actor_critic_update_min_s")):
        want = r[f"{part}_flops"] / r[seconds] / 1e9 / r["peak_gflops"]
        assert abs(r[f"{part}_fraction_of_peak"] - want) < 1e-9
        at_min = r[f"{part}_flops"] / r[fastest] / 1e9 / r["peak_gflops_best"]
        assert abs(r[f"{part}_fraction_of_peak_at_min"] - at_min) < 1e-9
    # the plain PyTorch baseline of the model-only update, and the protocol's estimate
    assert abs(r["model_update_speedup_over_plain"]
               - r["plain_model_update_s"] / r["model_update_s"]) < 1e-9
    p = r["protocol"]
    assert abs(p["pretraining_s"] - cfg.pretrain_updates * r["model_update_s"] / 3600) < 1e-9
    agent_steps = (cfg.env_steps - cfg.random_steps) / cfg.action_repeat
    assert abs(p["updates_s"] - agent_steps * r["iteration_s"] / 3600) < 1e-9
    assert abs(r["protocol_hours"] - sum(v for k, v in p.items() if k != "total_s")) < 1e-9
    assert "plain PyTorch" in done.stdout and "the protocol here" in done.stdout
    assert r["replay_bytes"] < 1.4e9 and "fraction of peak" in done.stdout
    # the two streams of an update, timed one after the other
    assert r["model_stream_s"] > 0 and r["actor_critic_stream_s"] > 0
    assert 0 <= r["model_stream_encoded"] <= 56 and "streams, 1 thread" in done.stdout
    # the plain way's fraction of peak bounds what any speed-up over it can be
    want = r["model_update_flops"] / r["plain_model_update_s"] / 1e9 / r["peak_gflops"]
    assert abs(r["plain_model_update_fraction_of_peak"] - want) < 1e-9
    # --layers: each encoder and decoder layer's FLOPs are the closed form's, forward and
    # backward (twice the forward; the first conv takes no input gradient); one thread, so the
    # whole model batch is one thread's share, in passes of the encoder's chunk
    a = r["layers"]
    enc_f, dec_f = conv_flops(cfg)
    assert [x["forward_flops"] for x in a["layers"]] == enc_f + dec_f
    assert [x["backward_flops"] for x in a["layers"]] == [enc_f[0]] + [2 * f for f in
                                                                       enc_f[1:] + dec_f]
    assert not a["split"] and a["frames_per_share"] == cfg.model_batch_size * 9
    assert a["frames_per_pass"] == min(72, cfg.model_batch_size * 9)
    per_frame = sum(x["forward_s"] + x["backward_s"] for x in a["layers"])
    assert abs(a["layers_s"] - per_frame * a["frames_per_share"]) < 1e-9
    assert abs(a["other_s"] - (a["share_s"] - a["layers_s"])) < 1e-9
    for x in a["layers"]:
        assert x["best_gflops"] >= x["gflops"] * (1 - 1e-9)  # the pass size is among those timed
        assert x["name"] in done.stdout
    assert "encoder conv 5x5/2 3->16, 64x64" in done.stdout
    assert "decoder transposed 5x5/2 16->3, 32x32 (sub-pixel)" in done.stdout


@pytest.mark.e2e
def test_bench_bad_iterations():
    done = run("bench", "--iterations", "0")
    assert done.returncode == 2 and "--iterations must be positive" in done.stderr
    done = run("bench", "--amp", "--layers")
    assert done.returncode == 2 and "--layers times the fp32 layers" in done.stderr


@pytest.mark.e2e
def test_bench_amp_sets_bfloat16_against_its_own_peak(tmp_path):
    """--amp: the update in bfloat16 autocast, set against a peak that includes a bfloat16
    GEMM; refused in one line where the CPU has no bfloat16 units."""
    from slac import runtime

    out = tmp_path / "bench.json"
    done = run("bench", "--preset", "cpu", "--task", "cartpole-swingup", "--iterations", "1",
               "--threads", "1", "--amp", "--json", str(out))
    if not runtime.cpu_has_bf16():
        assert done.returncode == 2 and "no units (AMX or AVX512-BF16)" in done.stderr
        return
    assert done.returncode == 0, done.stderr[-2000:]
    r = json.loads(out.read_text())
    assert r["amp"] and r["peak_gflops_gemm_bf16"] > 0
    gemms = [r["peak_gflops_gemm_blas"], r["peak_gflops_gemm_onednn"],
             r["peak_gflops_gemm_bf16"]]
    assert r["peak_gflops_gemm"] == max(g for g in gemms if g is not None)
    assert r["peak_gflops"] == max(r["peak_gflops_gemm"], r["peak_gflops_conv"])
    assert "bfloat16 autocast (--amp)" in done.stdout and "bfloat16 " in done.stdout




def test_keep_freed_memory_reuses_pages_in_worker_threads():
    """After it, memory a thread frees serves its next allocations: no new page faults. By
    default glibc gives a worker thread's freed memory back to the kernel, and the next update
    faults it in again (~50,000 faults in this loop; ~116,000 per overlapped paper-size update)."""
    import platform
    import resource
    import threading

    import torch

    from slac import runtime

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return  # glibc's mallopt only
    assert runtime.keep_freed_memory()

    def step():
        xs = [torch.ones(256 * 1024) for _ in range(40)]  # 40 x 1 MiB, then freed
        assert all(float(x[-1]) == 1.0 for x in xs)

    faults = []

    def worker():
        for _ in range(3):
            step()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(10):
            step()
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert faults and faults[0] < 1_000, faults


def test_the_plain_baseline_is_the_same_model_update(small_cfg):
    """The bench's plain PyTorch twin (stock NCHW layers, one pass) computes the same Eq. (7)
    and takes the same Adam step, on its own copy of the parameters."""
    import torch

    from slac import bench
    from slac.agent import SLACAgent
    from slac.baseline import PlainDecoder, PlainEncoder, plain_agent

    agent = SLACAgent(small_cfg, 1, torch.device("cpu"))
    twin = plain_agent(agent)
    assert isinstance(twin.model.encoder, PlainEncoder)
    assert isinstance(twin.model.decoder, PlainDecoder)
    assert twin.model.encoder.net[0].weight.is_contiguous()  # NCHW
    b = bench.synthetic_replay(small_cfg, 1, 300).sample(4, small_cfg.sequence_length)
    ours, plain = agent.update_model(b), twin.update_model(b)
    for k in ours:
        torch.testing.assert_close(plain[k], ours[k], rtol=1e-5, atol=1e-4)
    lr = small_cfg.model_lr
    for p, q in zip(agent.model.parameters(), twin.model.parameters(), strict=True):
        assert p is not q
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-3,
                                   atol=max(1e-6, 2e-4 * float(p.grad.abs().max())))
        assert float((q - p).abs().max()) <= 2 * lr * 1.001  # Adam's first steps: <= lr each


def test_the_plain_baseline_runs_in_bfloat16_with_amp(small_cfg, monkeypatch):
    """With --amp the plain twin's encoder and decoder run in bfloat16 autocast too (the same
    computation as the agent's), returning fp32."""
    import torch

    from slac import runtime
    from slac.agent import SLACAgent
    from slac.baseline import plain_agent

    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: True)  # emulated where it has none
    small_cfg.amp = True
    agent = SLACAgent(small_cfg, 1, torch.device("cpu"))
    twin = plain_agent(agent)
    frames = torch.randint(0, 256, (2, 3, 64, 64, 3), dtype=torch.uint8)
    z = torch.randn(2, 3, small_cfg.z1_dim + small_cfg.z2_dim)
    for name, x in (("encoder", frames), ("decoder", z)):
        ours, plain = getattr(agent.model, name)(x), getattr(twin.model, name)(x)
        assert plain.dtype == torch.float32
        getattr(twin.model, name).amp = False
        fp32 = getattr(twin.model, name)(x)
        scale = float(fp32.abs().max())
        torch.testing.assert_close(plain, ours, rtol=0, atol=0.015 * scale)
        assert float((plain - fp32).abs().max()) > 1e-3 * scale  # it did run in bfloat16


def test_amp_is_refused_on_a_cpu_without_bfloat16_units(small_cfg, monkeypatch):
    import torch

    from slac import runtime
    from slac.agent import SLACAgent
    from slac.config import ConfigError

    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: False)
    small_cfg.amp = True
    with pytest.raises(ConfigError, match="no units"):
        SLACAgent(small_cfg, 1, torch.device("cpu"))
    small_cfg.amp = False
    SLACAgent(small_cfg, 1, torch.device("cpu"))  # fp32 needs none


def test_the_layer_account_splits_as_the_update_does(small_cfg):
    """With two threads the model-only update runs half the sequences on each: the account
    times one half on one thread and the update as it runs."""
    import torch

    from slac import bench, layers
    from slac.agent import SLACAgent

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        agent = SLACAgent(small_cfg, 1, torch.device("cpu"))
        b = bench.synthetic_replay(small_cfg, 1, 300).sample(6, small_cfg.sequence_length)
        a = layers.account(agent, b, rounds=1)
    finally:
        torch.set_num_threads(threads)
    assert a["split"] and a["pass_threads"] == 1
    assert a["frames_per_share"] == a["frames_per_pass"] == 9  # 1 of the 2 model sequences
    assert len(a["layers"]) == 10 and a["update_s"] > 0 and a["share_s"] > 0
    text = "\n".join(layers.report(a))
    assert "both halves side by side" in text and "the rest (latent model" in text
