"""`slac bench` end to end at the cpu preset's sizes: every figure present and consistent."""

import json

import pytest
from conftest import run


def mlp_fwd(inp, out, h, rows):
    return [2 * rows * inp * h, 2 * rows * h * h, 2 * rows * h * out]


def update_flops(cfg, action_dim):
    """FLOPs of one SLAC update in closed form: 2 per multiply-add of every matmul and
    convolution (a transposed conv's counted on its input), forward and backward, from the
    layer sizes of Appendix B and the batch's shape."""
    A, h, F = action_dim, cfg.hidden, cfg.feature_dim
    z1, z2 = cfg.z1_dim, cfg.z2_dim
    Z = z1 + z2
    B, mb, L = cfg.batch_size, cfg.model_batch_size, cfg.sequence_length
    T = L + 1
    w = cfg.conv_width
    # encoder per frame: (Cin, Cout, k, Hout)
    enc = [(3, w, 5, 32), (w, 2 * w, 3, 16), (2 * w, 4 * w, 3, 8), (4 * w, 8 * w, 3, 4),
           (8 * w, F, 4, 1)]
    enc_f = [2 * ci * co * k * k * ho * ho for ci, co, k, ho in enc]
    # decoder per frame: (Cin, Cout, k, Hin) of each transposed conv
    dec = [(Z, 8 * w, 4, 1), (8 * w, 4 * w, 3, 4), (4 * w, 2 * w, 3, 8), (2 * w, w, 3, 16),
           (w, 3, 5, 32)]
    dec_f = [2 * ci * co * k * k * hi * hi for ci, co, k, hi in dec]
    total = 0
    # model stream, with gradients: forward, then backward (input and weight gradients) = 2x,
    # but the first conv's input (the frames) needs no gradient
    frames = mb * T
    total += frames * (sum(enc_f) * 3 - enc_f[0])
    total += frames * sum(dec_f) * 3

    def gauss(inp, out, rows):
        return sum(mlp_fwd(inp, 2 * out, h, rows))

    filt = (gauss(F, z1, mb * T) + gauss(F + z2 + A, z1, mb) * (T - 1)
            + gauss(z1, z2, mb) * T + gauss(z1 + z2 + A, z2, mb) * (T - 1)
            + gauss(z2 + A, z1, mb * (T - 1)))
    reward = gauss(2 * Z + A, 1, mb * (T - 1))
    total += 3 * (filt + reward)
    # actor-critic stream, no gradients: the other sequences' encoder and filter
    n = B - mb
    total += n * T * sum(enc_f)
    total += (gauss(F, z1, n * T) + gauss(F + z2 + A, z1, n) * (T - 1) + gauss(z1, z2, n) * T
              + gauss(z1 + z2 + A, z2, n) * (T - 1) + gauss(z2 + A, z1, n * (T - 1)))
    actor = mlp_fwd(L * F + (L - 1) * A, 2 * A, h, B)
    q = mlp_fwd(Z + A, 1, h, B)
    total += sum(actor) + 2 * sum(q)  # Eq. 9's target: pi at z_T+1, both target critics
    total += 2 * (sum(q) * 2 + q[1] + q[2])  # Eq. 8: both critics, weight and hidden input grads
    total += sum(actor) * 2 + actor[1] + actor[2]  # Eq. 10: actor fwd, its weight and hidden grads
    total += 2 * sum(q) * 2  # ...through both critics to the action: forward and input grads
    return total


KEYS = ("iteration_s", "model_update_s", "actor_critic_update_s", "env_steps_per_s",
        "flops_per_iteration", "achieved_gflops", "peak_gflops", "fraction_of_peak")


@pytest.mark.e2e
def test_bench_reports_consistent_figures(tmp_path):
    out = tmp_path / "b" / "bench.json"
    done = run("bench", "--preset", "cpu", "--task", "cartpole-swingup", "--iterations", "1",
               "--threads", "1", "--json", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    r = json.loads(out.read_text())
    for key in KEYS:
        assert r[key] > 0, key
    assert r["peak_gflops"] == max(r["peak_gflops_gemm"], r["peak_gflops_conv"])
    assert abs(r["achieved_gflops"] - r["flops_per_iteration"] / r["iteration_s"] / 1e9) < 1e-6
    assert abs(r["fraction_of_peak"] - r["achieved_gflops"] / r["peak_gflops"]) < 1e-9
    # the peak: medians of runs between the iterations; the fastest of those runs is reported
    # too, and the fastest iteration is set against it
    assert r["peak_gflops_best"] >= r["peak_gflops"]
    at_min = r["flops_per_iteration"] / r["iteration_min_s"] / 1e9 / r["peak_gflops_best"]
    assert abs(r["fraction_of_peak_at_min"] - at_min) < 1e-9
    # the counted FLOPs are the closed form's (cartpole: one action dimension)
    from slac.config import Config, resolve, with_preset

    cfg = resolve(Config(**with_preset({"preset": "cpu", "task": "cartpole-swingup"})))
    assert r["flops_per_iteration"] == update_flops(cfg, action_dim=1)
    assert r["replay_bytes"] < 1.4e9 and "fraction of peak" in done.stdout
    # the two streams of an update, timed one after the other
    assert r["model_stream_s"] > 0 and r["actor_critic_stream_s"] > 0
    assert 0 <= r["model_stream_encoded"] <= 56 and "streams, 1 thread" in done.stdout


@pytest.mark.e2e
def test_bench_bad_iterations():
    done = run("bench", "--iterations", "0")
    assert done.returncode == 2 and "--iterations must be positive" in done.stderr




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
