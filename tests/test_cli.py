"""The command line, end to end in subprocesses, and its errors for bad input."""

import csv
import json
from pathlib import Path

import pytest
from conftest import SLAC as SLAC_CMD
from conftest import TINY, run

pytestmark = pytest.mark.e2e  # every test here runs the command in a subprocess


@pytest.fixture
def trained(trained_run):
    return trained_run


def test_train_writes_run_directory(trained):
    for name in ("config.json", "eval.csv", "train.csv", "agent.pt"):
        assert (trained / name).exists(), name
    assert any((trained / "tb").iterdir())
    rows = list(csv.DictReader(open(trained / "eval.csv")))
    assert [int(r["env_step"]) for r in rows] == [400, 800]
    assert {"env_step", "return_mean", "return_std"} <= set(rows[0])
    train_rows = list(csv.DictReader(open(trained / "train.csv")))
    assert {r["phase"] for r in train_rows} == {"pretrain", "train"}
    last = train_rows[-1]
    for key in ("model_loss", "critic_loss", "actor_loss", "alpha", "entropy", "updates_per_s"):
        assert last[key] != "", key
    assert all(0 <= int(r["active_z1"]) <= 32 for r in train_rows)


def test_eval_command(trained):
    done = run("eval", "--run-dir", str(trained), "--episodes", "1")
    assert done.returncode == 0, done.stderr
    assert "return" in done.stdout and "800 env steps" in done.stdout
    again = run("eval", "--run-dir", str(trained), "--episodes", "1")
    assert again.stdout == done.stdout, "the environment and the policy's noise are seeded"


def test_tasks_command():
    done = run("tasks")
    assert done.returncode == 0
    assert "cheetah-run" in done.stdout and "ball_in_cup-catch" in done.stdout


def test_help_documents_every_flag_on_one_line():
    import dataclasses

    from slac.config import Config

    out = run("train", "--help").stdout
    for f in dataclasses.fields(Config):
        flag = "--" + f.name.replace("_", "-")
        lines = [ln for ln in out.splitlines() if ln.strip().startswith((flag + " ", flag + ","))]
        assert len(lines) == 1 and len(lines[0].split(flag, 1)[1].split()) > 2, flag


BAD = [
    (["--task", "cheetah-fly"], "unknown task 'cheetah-fly'; choose from: cheetah-run"),
    (["--env-steps", "0"], "--env-steps must be positive"),
    (["--env-steps", "-5"], "--env-steps must be positive"),
    (["--batch-size", "512", "--replay-capacity", "100"], "exceeds --replay-capacity"),
    (["--model-batch-size", "64", "--batch-size", "32"], "exceeds --batch-size"),
    (["--random-steps", "8"], "one sequence needs at least 9"),
    (["--device", "tpu"], "invalid choice: 'tpu'"),
    (["--decoder-var", "-1"], "--decoder-var must be positive"),
    (["--pretrain-model-lr", "0"], "--pretrain-model-lr must be positive"),
    (["--model-lr=-1e-4"], "--model-lr must be positive"),
    (["--decoder-var", "nan"], "--decoder-var must be positive and finite, got nan"),
    (["--decoder-var", "inf"], "--decoder-var must be positive and finite, got inf"),
    (["--model-lr", "inf"], "--model-lr must be positive and finite"),
    (["--critic-lr", "nan"], "--critic-lr must be positive and finite"),
    (["--gamma", "1.5"], "--gamma must be in [0, 1], got 1.5"),
    (["--gamma=-0.1"], "--gamma must be in [0, 1]"),
    (["--gamma", "nan"], "--gamma must be in [0, 1]"),
    (["--tau", "nan"], "--tau must be in (0, 1]"),
    (["--tau", "0"], "--tau must be in (0, 1]"),
    (["--seed=-1"], "--seed must be in [0, 2^31)"),
    (["--threads", "1000"], "--threads must be 0 (all cores) or 1.."),
    (["--run-dir", ""], "--run-dir must not be empty"),
    (["--model", "rnn"], "invalid choice: 'rnn'"),
    (["--critic-input", "state"], "invalid choice: 'state'"),
]


@pytest.mark.parametrize("args,message", BAD)
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, args, message):
    run_dir = tmp_path / "run"
    done = run("train", "--run-dir", str(run_dir), *args)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("slac: error:"), done.stderr
    assert message in lines[0]
    assert "Traceback" not in done.stderr
    assert not run_dir.exists()


def test_unwritable_run_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for bad in (blocker / "run", Path("/proc/slac-run")):
        done = run("train", "--run-dir", str(bad), *TINY)
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1 and "run directory" in done.stderr
    assert blocker.read_text() == "x"


def test_device_cuda_without_cuda_is_one_line(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    for cmd in (["train", "--run-dir", str(tmp_path / "run"), *TINY], ["bench"]):
        done = run(*cmd, "--device", "cuda")
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert "no CUDA device is available" in done.stderr
    assert not (tmp_path / "run").exists()


def test_a_foreign_directory_is_refused(tmp_path):
    """slac train writes only into a new or empty directory or one of its own runs."""
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "config.json").write_text("{}")  # someone else's files, no slac marker
    (foreign / "eval.csv").write_text("a,b\n")
    done = run("train", "--run-dir", str(foreign), *TINY)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "not a slac run" in done.stderr
    assert (foreign / "config.json").read_text() == "{}"
    assert sorted(p.name for p in foreign.iterdir()) == ["config.json", "eval.csv"]


def test_a_second_writer_is_refused_naming_the_first_and_a_dead_one_does_not_block(tmp_path):
    """One writer per run directory: a real process holds the run's lock; `slac train` on the
    same directory exits 2 naming its PID; once it is killed, the lock is gone with it."""
    import os
    import signal
    import subprocess
    import sys

    run_dir = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from slac.rundir import RunLock; "
         f"RunLock({str(run_dir)!r}).acquire(); print('locked', flush=True); time.sleep(600)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        done = run("train", "--run-dir", str(run_dir), *TINY)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert f"in use by another slac train (PID {holder.pid})" in done.stderr
        assert sorted(p.name for p in run_dir.iterdir()) == [".slac-run"]  # nothing written
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    from slac.rundir import RunLock

    RunLock(run_dir).acquire().release()  # the dead holder's lock is gone


def test_plot_into_an_unwritable_place_is_one_line(trained_run):
    done = run("plot", str(trained_run), "--out", "/proc/slac/fig.png")
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "--out directory" in done.stderr


def test_override_cannot_change_the_task_or_the_networks_shapes(trained_run):
    for flag, value in (("--hidden", "64"), ("--task", "walker-walk"), ("--conv-width", "8")):
        done = run("train", "--run-dir", str(trained_run), flag, value, "--override")
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert f"cannot take {flag} {value}" in done.stderr and "not even with --override" \
            in done.stderr


@pytest.mark.parametrize("damage", ["missing", "flipped"])
def test_a_damaged_replay_stops_the_resume_unless_overridden(trained_run, tmp_path, damage):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    frames = run_dir / "replay" / "frames.bin"
    if damage == "missing":
        frames.unlink()
    else:
        data = bytearray(frames.read_bytes())
        data[100 * 64 * 64 * 3 + 5] ^= 0xFF  # a frame inside the stored window
        frames.write_bytes(bytes(data))
    done = run("train", "--run-dir", str(run_dir))
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert ("is missing" if damage == "missing" else "blocks of the replay") in done.stderr
    assert "--override" in done.stderr
    done = run("train", "--run-dir", str(run_dir), "--override")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "left out of sampling" in done.stderr


def test_paper_defaults_on_a_cpu_say_how_long_they_take(tmp_path):
    import subprocess

    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    proc = subprocess.Popen([*SLAC_CMD, "train", "--task", "cartpole-swingup", "--run-dir",
                             str(tmp_path / "run"), "--replay-capacity", "2000"],
                            stderr=subprocess.PIPE, text=True)
    try:
        lines = [proc.stderr.readline() for _ in range(3)]
    finally:
        proc.kill()
        proc.wait()
    said = "".join(lines)
    assert "on this CPU the protocol takes about" in said and "--preset cpu" in said, said


def test_eval_without_agent(tmp_path):
    done = run("eval", "--run-dir", str(tmp_path))
    assert done.returncode == 2 and "no saved agent" in done.stderr


def test_cpu_preset_resolves_lists_its_deviations_and_trains(tmp_path):
    """The preset changes only what it lists (sizes, budgets, model step size); explicit flags win;
    it trains end to end."""
    import json

    from slac.config import PRESETS, Config, resolve, with_preset

    cfg = resolve(Config(**with_preset({"preset": "cpu", "task": "ball_in_cup-catch"})))
    paper = resolve(Config(task="ball_in_cup-catch"))
    changed = {k for k in vars(cfg) if getattr(cfg, k) != getattr(paper, k)} - {"preset"}
    assert changed == set(PRESETS["cpu"])
    for name, (value, paper_value) in PRESETS["cpu"].items():
        assert getattr(cfg, name) == value and getattr(paper, name) == paper_value
    help_text = " ".join(run("train", "--help").stdout.split())
    assert "conv-width 16 (paper 32)" in help_text and "batch-size 64 (paper 256)" in help_text
    budget = ["--env-steps", "400", "--random-steps", "200", "--pretrain-updates", "2",
              "--eval-every", "400", "--eval-episodes", "1", "--threads", "1",
              "--replay-capacity", "2000"]
    done = run("train", "--preset", "cpu", "--task", "cartpole-swingup", *budget,
               "--run-dir", str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr[-2000:]
    stored = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert (stored["conv_width"], stored["batch_size"], stored["pretrain_updates"]) == (16, 64, 2)
    rows = list(csv.DictReader(open(tmp_path / "run" / "eval.csv")))
    assert [int(r["env_step"]) for r in rows] == [400]


def test_cpu_learning_script_runs_seeds_and_collects_them(tmp_path):
    """scripts/cpu_learning.sh end to end at toy budgets (EXTRA flags): two seeds one after the
    other; each seed's eval.csv (with its wall time), train.csv, config, model-prediction grid
    and RUN.txt in OUT (seed 0 in OUT/TASK, seed 1 in OUT/TASK-s1); one plot with both seeds;
    a failed run fails the script."""
    import json
    import os
    import subprocess

    script = Path(__file__).resolve().parents[1] / "scripts" / "cpu_learning.sh"
    out = tmp_path / "out"
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", RUNS=str(tmp_path / "runs"), OUT=str(out),
               TASKS="cartpole-swingup", SEEDS="0 1", ENV_STEPS="400",
               EXTRA="--random-steps 200 --pretrain-updates 2 --eval-every 400 --eval-episodes 1"
               " --replay-capacity 2000 --hidden 32 --z2-dim 16 --conv-width 4 --feature-dim 32")
    done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    for seed, d in ((0, out / "cartpole-swingup"), (1, out / "cartpole-swingup-s1")):
        rows = list(csv.DictReader(open(d / "eval.csv")))
        assert [int(r["env_step"]) for r in rows] == [400] and float(rows[0]["wall_time"]) > 0
        assert json.loads((d / "config.json").read_text())["config"]["seed"] == seed
        about = (d / "RUN.txt").read_text()
        assert f"--seed {seed} " in about and "--pretrain-updates 2" in about
        assert "wall time of this invocation" in about and "commit: " in about
        assert "runs one after another" in about and "THREADS=2" in about
        assert (d / "train.csv").stat().st_size and list((d / "viz").glob("*.png"))
    assert (out / "curves.png").stat().st_size
    assert "2 seeds" in (out / "curves.txt").read_text()
    env.update(SEEDS="2", EXTRA="--model-lr -1")
    failed = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True,
                            timeout=900)
    assert failed.returncode == 1 and "a run failed" in failed.stderr


ABLATIONS = {  # Figure 5a's models, 5b's inputs, 13's random crop, and pixel SAC
    "vae": ["--model", "vae"],
    "factored-vae": ["--model", "factored-vae"],
    "filtering": ["--model", "filtering"],
    "partially-stochastic": ["--model", "partially-stochastic"],
    "deterministic-crop": ["--model", "deterministic", "--random-crop"],
    "planet": ["--model", "planet"],
    "history-critic": ["--critic-input", "history"],
    "latent-actor": ["--actor-input", "latent"],
    "sac-pixels": ["--agent", "sac-pixels", "--sequence-length", "4"],  # the paper's baselines
    "sac-state": ["--agent", "sac-state", "--sequence-length", "1"],
}


@pytest.mark.parametrize("name", ABLATIONS)
def test_each_ablation_trains_through_the_cli(tmp_path, name):
    """Each ablation's flags run the whole protocol and are what the run records. For one of
    them (the others differ only inside the agent, whose pictures and actions the unit tests
    check), eval and viz read the run's model back, and resuming it as another model is
    refused, even with --override."""
    run_dir, flags = str(tmp_path / name), ABLATIONS[name]
    short = [*TINY, "--env-steps", "500", "--eval-every", "500"]  # the later flag wins
    done = run("train", "--run-dir", run_dir, *short, *flags)
    assert done.returncode == 0, done.stderr
    assert len((tmp_path / name / "eval.csv").read_text().splitlines()) == 2  # header, 500
    stored = json.loads((tmp_path / name / "config.json").read_text())["config"]
    for flag, value in zip(flags, [*flags[1:], None], strict=True):
        if flag.startswith("--"):
            key = flag[2:].replace("-", "_")
            assert str(stored[key]) == ("True" if value is None or value.startswith("--")
                                        else value)
    if name.startswith("sac-"):  # no latent model: nothing to draw
        done = run("viz", "--run-dir", run_dir)
        assert done.returncode == 2 and "has no latent model" in done.stderr, done.stderr
    if name != "deterministic-crop":
        return
    assert run("eval", "--run-dir", run_dir, "--episodes", "1").returncode == 0
    assert run("viz", "--run-dir", run_dir).returncode == 0
    assert (tmp_path / name / "viz" / "predictions.png").stat().st_size > 0
    done = run("train", "--run-dir", run_dir, *short, *flags, "--model", "slac", "--override")
    assert done.returncode == 2 and "it changes the latent model" in done.stderr, done.stderr


@pytest.mark.e2e
def test_ab_script_times_both_arms_interleaved():
    """scripts/ab_update.py: one round of each arm at the cpu preset's sizes, a ratio and a
    count of rounds; an unknown switch prints the usage and fails."""
    import re
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "scripts" / "ab_update.py"
    done = subprocess.run([sys.executable, str(script), "linear", "cpu", "model", "2"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rounds = re.findall(r"round \d: blas ([\d.]+) onednn ([\d.]+) ratio ([\d.]+)", done.stdout)
    assert len(rounds) == 2
    for a, b, ratio in rounds:
        assert float(a) > 0 and abs(float(ratio) - float(b) / float(a)) < 5e-3
    assert re.search(r"linear cpu model: medians blas [\d.]+ onednn [\d.]+ ratio [\d.]+ "
                     r"\(onednn faster in [012] of 2 rounds\)", done.stdout)
    bad = subprocess.run([sys.executable, str(script), "nosuch", "cpu", "model", "1"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "SWITCH" in bad.stderr
