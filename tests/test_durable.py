"""Durable runs: kill -9 and exact resume, damaged checkpoints, refused changes, failures."""

import csv
import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest
import torch

from slac import checkpoint
from slac.config import Config, ConfigError
from slac.logger import CSVLog

SMALL = ["--task", "cartpole-swingup", "--seed", "0", "--env-steps", "1200",
         "--random-steps", "400", "--pretrain-updates", "5", "--batch-size", "16",
         "--model-batch-size", "8", "--eval-every", "400", "--eval-episodes", "1",
         "--checkpoint-every", "400", "--threads", "1", "--replay-capacity", "2000",
         # small networks: what these tests check does not depend on their sizes
         "--hidden", "32", "--z2-dim", "16", "--conv-width", "4", "--feature-dim", "32"]


def start(run_dir, *extra, fault=None):
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    env.pop("SLAC_FAULT", None)
    if fault:
        env["SLAC_FAULT"] = fault
    return subprocess.Popen([sys.executable, "-m", "slac.cli", "train", "--run-dir",
                             str(run_dir), *SMALL, *extra], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc, timeout=600):
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def returns(run_dir):
    """eval.csv without its wall-clock column (the only thing that may differ)."""
    with open(Path(run_dir) / "eval.csv") as f:
        return [{k: v for k, v in row.items() if k != "wall_time"} for row in csv.DictReader(f)]


def wait_for(predicate, proc, timeout=300):
    t0 = time.monotonic()
    while not predicate():
        assert proc.poll() is None, proc.communicate()[0][-2000:]
        assert time.monotonic() - t0 < timeout
        time.sleep(0.2)


def wait_for_line(proc, text, timeout=300):
    """Read the run's output up to a line containing ``text``; a run that has not printed it
    within ``timeout`` seconds is killed, which ends the read. (What is read here is not in
    finish()'s output.)"""
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.start()
    try:
        for line in proc.stdout:
            if text in line:
                return
    finally:
        watchdog.cancel()
    raise AssertionError(f"the run ended (exit {proc.wait()}) without printing {text!r}")


def eval_rows(run_dir):
    p = Path(run_dir) / "eval.csv"
    return max(0, len(p.read_text().splitlines()) - 1) if p.exists() else 0


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("ref") / "run"
    code, out = finish(start(run_dir))
    assert code == 0, out[-3000:]
    return run_dir


CLOCK_COLUMNS = {"wall_time", "env_steps_per_s", "updates_per_s"}


def train_rows(run_dir):
    """train.csv without its clock columns: every other value must match."""
    with open(Path(run_dir) / "train.csv") as f:
        return [{k: v for k, v in row.items() if k not in CLOCK_COLUMNS}
                for row in csv.DictReader(f)]


def final_weights(run_dir):
    return checkpoint.load(Path(run_dir) / checkpoint.AGENT_FILE)["agent"]


def same_state(a, b) -> bool:
    """Nested state dicts equal, tensors bit for bit."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_state(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same_state(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    return a == b


def test_killed_and_resumed_runs_match_the_run_left_alone(reference, tmp_path):
    run_dir = tmp_path / "run"
    # 1. killed inside a checkpoint write: the first checkpoint's file is written in part (its
    # first 16 MB chunk, here all of it) and not yet renamed into place
    code, out = finish(start(run_dir, fault="checkpoint-write:1"))
    assert code == -signal.SIGKILL, out[-2000:]
    assert list((run_dir / "checkpoints").glob("*.tmp")), "was not killed mid-write"
    # 2. resumed, then SIGKILLed during training after its second evaluation
    proc = start(run_dir)
    wait_for(lambda: eval_rows(run_dir) >= 2, proc)
    time.sleep(1.0)
    assert proc.poll() is None, "finished before it could be killed"
    proc.kill()
    assert proc.wait() == -signal.SIGKILL
    assert eval_rows(run_dir) < eval_rows(reference)
    # 3. resumed, then SIGTERM while it runs: it checkpoints and stops with 128 + SIGTERM
    proc = start(run_dir)
    wait_for_line(proc, "resuming")  # printed just before the signal handlers are installed
    time.sleep(1.0)
    assert proc.poll() is None, "finished before the signal"
    proc.send_signal(signal.SIGTERM)
    code, out = finish(proc)
    assert code == 128 + signal.SIGTERM, out[-2000:]
    assert_checkpoint_holds_the_stop(run_dir, out)
    # 4. resumed to the end
    code, out = finish(start(run_dir))
    assert code == 0, out[-3000:]
    assert returns(run_dir) == returns(reference)
    rows, ref_rows = train_rows(run_dir), train_rows(reference)
    steps = [(r["phase"], r["env_step"], r["updates"]) for r in rows]
    assert len(steps) == len(set(steps)), "duplicate train.csv rows after resume"
    assert rows == ref_rows  # every loss, statistic and counter, row by row
    assert same_state(final_weights(run_dir), final_weights(reference))


def assert_checkpoint_holds_the_stop(run_dir, out: str) -> None:
    """The newest checkpoint is the one the stop wrote, at the step its message names."""
    stopped = re.search(r"stopped at env step (\d+); checkpoint saved", out)
    assert stopped, out[-2000:]
    state = checkpoint.load_latest(run_dir)
    assert state["counters"]["env_step"] == int(stopped.group(1))
    assert checkpoint.list_checkpoints(run_dir)[0].name.startswith(
        f"ckpt-{int(stopped.group(1)):012d}-")


def test_sigint_stops_with_a_checkpoint_the_run_resumes_exactly_from(reference, tmp_path):
    run_dir = tmp_path / "run"
    proc = start(run_dir)
    wait_for_line(proc, "random ")  # collecting: the signal handlers are installed
    proc.send_signal(signal.SIGINT)
    code, out = finish(proc)
    assert code == 128 + signal.SIGINT, out[-2000:]
    assert_checkpoint_holds_the_stop(run_dir, out)
    assert checkpoint.load_latest(run_dir)["counters"]["phase"] == "random"
    code, out = finish(start(run_dir))
    assert code == 0, out[-3000:]
    assert returns(run_dir) == returns(reference)
    assert train_rows(run_dir) == train_rows(reference)


def test_a_signal_during_an_evaluation_discards_it_and_the_resume_redoes_it_exactly(reference,
                                                                                   tmp_path):
    """SIGHUP (a closed terminal) while the evaluation at 800 steps runs: the run stops within
    that evaluation, which is not written; the resumed run evaluates again from the same
    state and ends exactly as the run left alone."""
    run_dir = tmp_path / "run"
    proc = start(run_dir)
    wait_for_line(proc, "evaluating at 800 env steps")
    proc.send_signal(signal.SIGHUP)
    code, out = finish(proc)
    assert code == 128 + signal.SIGHUP, out[-2000:]
    assert "SIGHUP: stopping" in out
    assert_checkpoint_holds_the_stop(run_dir, out)
    assert "stopped at env step 800;" in out
    assert [r["env_step"] for r in returns(run_dir)] == ["400"]  # the 800 one was discarded
    code, out = finish(start(run_dir))
    assert code == 0, out[-3000:]
    assert returns(run_dir) == returns(reference)
    assert train_rows(run_dir) == train_rows(reference)
    assert same_state(final_weights(run_dir), final_weights(reference))


@pytest.mark.e2e
def test_the_ablations_resume_exactly(tmp_path):
    """A run with the ablations' options (PlaNet's model, a latent actor, history critics,
    random crops drawn from the replay's generator), stopped by SIGTERM while it trains and
    resumed, ends exactly as the run left alone."""
    flags = ("--model", "planet", "--actor-input", "latent", "--critic-input", "history",
             "--random-crop")
    alone, stopped = tmp_path / "alone", tmp_path / "stopped"
    code, out = finish(start(alone, *flags))
    assert code == 0, out[-3000:]
    proc = start(stopped, *flags)
    wait_for_line(proc, "eval at 400")
    time.sleep(1.0)
    assert proc.poll() is None, "finished before the signal"
    proc.send_signal(signal.SIGTERM)
    code, out = finish(proc)
    assert code == 128 + signal.SIGTERM, out[-2000:]
    assert eval_rows(stopped) < eval_rows(alone)
    code, out = finish(start(stopped, *flags))
    assert code == 0 and "resuming" in out, out[-3000:]
    assert returns(stopped) == returns(alone)
    assert train_rows(stopped) == train_rows(alone)
    assert same_state(final_weights(stopped), final_weights(alone))


@pytest.mark.e2e
def test_a_second_ctrl_c_exits_at_once_and_the_last_checkpoint_stays_valid(tmp_path):
    """The first SIGINT is acknowledged and stops at the next step with a checkpoint; a
    second one does not wait for that (here a checkpoint write made to take a minute)."""
    run_dir = tmp_path / "run"
    proc = start(run_dir, fault="checkpoint-write:sleep=60")
    wait_for_line(proc, "random ")
    proc.send_signal(signal.SIGINT)
    wait_for_line(proc, "SIGINT: stopping at the next step")
    time.sleep(1.0)  # now inside the slowed checkpoint write
    assert proc.poll() is None
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    code, out = finish(proc, timeout=30)
    assert time.monotonic() - t0 < 10
    assert code == 128 + signal.SIGINT and "interrupted" in out, out[-2000:]
    assert not list((run_dir / "checkpoints").glob("*.tmp"))  # the partial write is removed
    assert checkpoint.list_checkpoints(run_dir) == []  # none was complete: nothing half-written


def test_resume_falls_back_past_a_damaged_newest_checkpoint_and_stays_exact(reference,
                                                                           tmp_path):
    """The finished reference run with its newest checkpoint damaged: rerunning the command
    resumes from the one before (a warning says so), redoes the steps since, and ends exactly
    as the reference did, since the replay's margin kept what that checkpoint samples."""
    run_dir = tmp_path / "run"
    shutil.copytree(reference, run_dir)
    newest, older = checkpoint.list_checkpoints(run_dir)
    older_step = checkpoint.load(older)["counters"]["env_step"]
    assert older_step < checkpoint.load(newest)["counters"]["env_step"]
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))
    code, out = finish(start(run_dir))
    assert code == 0, out[-3000:]
    assert "damaged" in out and f"at env step {older_step}" in out
    assert returns(run_dir) == returns(reference)
    assert train_rows(run_dir) == train_rows(reference)
    assert same_state(final_weights(run_dir), final_weights(reference))


def test_every_checkpoint_damaged_is_one_line_on_the_command_line(reference, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(reference, run_dir, ignore=shutil.ignore_patterns("replay"))
    for path in checkpoint.list_checkpoints(run_dir):
        path.write_bytes(path.read_bytes()[:100])
    code, out = finish(start(run_dir))
    assert code == 2
    assert out.strip().splitlines()[-1] == (
        f"slac: error: {run_dir}: every checkpoint is damaged; use a new --run-dir")


@pytest.mark.e2e
def test_overlapped_updates_resume_exactly(tmp_path):
    """With two threads the model and actor-critic streams of each update run concurrently
    (--overlap): the run is still deterministic, and a run killed and resumed matches it."""
    alone, killed = tmp_path / "alone", tmp_path / "killed"
    # 2 model sequences and 30 others: the overlapped schedule, not the split one
    two = ("--threads", "2", "--env-steps", "800", "--batch-size", "32",
           "--model-batch-size", "2")
    code, out = finish(start(alone, *two))
    assert code == 0, out[-3000:]
    assert "overlap updates" in out and "split updates" not in out
    proc = start(killed, *two)
    wait_for(lambda: eval_rows(killed) >= 1, proc)  # killed while training after a checkpoint
    time.sleep(2.0)
    assert proc.poll() is None, "finished before it could be killed"
    proc.kill()
    assert proc.wait() == -signal.SIGKILL
    assert eval_rows(killed) < eval_rows(alone)
    code, out = finish(start(killed, *two))
    assert code == 0, out[-3000:]
    assert "resuming" in out and "overlap updates" in out
    assert returns(killed) == returns(alone)
    assert train_rows(killed) == train_rows(alone)
    assert same_state(final_weights(killed), final_weights(alone))


def test_changed_hyperparameter_is_refused_unless_overridden(reference):
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    cmd = [sys.executable, "-m", "slac.cli", "train", "--run-dir", str(reference)]
    done = subprocess.run([*cmd, "--batch-size", "8", "--gamma", "0.9"], capture_output=True,
                          text=True, env=env)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "--batch-size 8 (run has 16)" in done.stderr and "--gamma 0.9" in done.stderr
    # flags that only say how long or where it runs pass without --override (a finished run
    # resumes at its end and stops); the run's own values pass too
    done = subprocess.run([*cmd, "--threads", "1", "--log-every", "500", "--batch-size", "16"],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resuming" in done.stderr and "done: 1200 env steps" in done.stderr


@pytest.mark.e2e
def test_override_accepts_a_real_change(tmp_path):
    """--override takes a changed setting and the resumed run trains with it."""
    import json

    run_dir = tmp_path / "run"
    code, out = finish(start(run_dir, "--env-steps", "400"))
    assert code == 0, out[-3000:]
    code, out = finish(start(run_dir, "--env-steps", "800", "--gamma", "0.9"))
    assert code == 2 and "--gamma 0.9 (run has 0.99)" in out
    code, out = finish(start(run_dir, "--env-steps", "800", "--gamma", "0.9", "--override"))
    assert code == 0, out[-3000:]
    assert json.loads((run_dir / "config.json").read_text())["config"]["gamma"] == 0.9
    assert checkpoint.load_latest(run_dir)["config"]["gamma"] == 0.9
    assert [r["env_step"] for r in returns(run_dir)] == ["400", "800"]


def test_damaged_newest_checkpoint_falls_back(tmp_path):
    checkpoint.save_checkpoint(tmp_path, {"step": 1}, (0, 1_000_001))
    checkpoint.save_checkpoint(tmp_path, {"step": 2}, (10, 5))
    checkpoint.save_checkpoint(tmp_path, {"step": 3}, (10, 6))
    paths = checkpoint.list_checkpoints(tmp_path)
    assert len(paths) == checkpoint.KEEP == 2  # older ones are removed
    data = bytearray(paths[0].read_bytes())
    data[-5] ^= 0xFF
    paths[0].write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="damaged"):
        assert checkpoint.load_latest(tmp_path) == {"step": 2}
    paths[1].write_bytes(paths[1].read_bytes()[:40])  # truncated too
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert checkpoint.load_latest(tmp_path) is None


def test_pruning_keeps_the_newest_checkpoints_that_verify(tmp_path):
    """A damaged checkpoint is never kept in place of a good older one."""
    for i in (1, 2, 3):
        checkpoint.save_checkpoint(tmp_path, {"step": i}, (i, 0))
    newest = checkpoint.list_checkpoints(tmp_path)[0]
    newest.write_bytes(newest.read_bytes()[:-10])  # ckpt 3 damaged; 2 is the good one
    checkpoint.save_checkpoint(tmp_path, {"step": 4}, (4, 0))
    kept = [checkpoint.load(p)["step"] for p in checkpoint.list_checkpoints(tmp_path)]
    assert kept == [4, 2]


def test_checkpoint_roundtrip_and_checksum(tmp_path):
    obj = {"t": torch.arange(5), "x": [1, 2]}
    checkpoint.atomic_save(obj, tmp_path / "a.pt")
    back = checkpoint.load(tmp_path / "a.pt")
    assert torch.equal(back["t"], obj["t"]) and back["x"] == [1, 2]
    with pytest.raises(checkpoint.CorruptCheckpoint):
        checkpoint.loads(b"garbage")


def _tiny(tmp_path, **kw) -> Config:
    return Config(task="cartpole-swingup", run_dir=str(tmp_path / "run"), env_steps=480,
                  random_steps=400, pretrain_updates=2, batch_size=4, model_batch_size=2,
                  eval_every=10_000, eval_episodes=1, checkpoint_every=400, threads=1,
                  hidden=32, z2_dim=16, replay_capacity=2000, **kw).resolved()


def test_nan_in_a_loss_stops_cleanly_keeping_the_last_checkpoint(tmp_path, capsys):
    from slac.trainer import Trainer

    trainer = Trainer(_tiny(tmp_path))
    real = trainer.agent.update

    def poisoned(batch):
        stats = real(batch)
        stats["critic_loss"] = torch.tensor(float("nan"))
        return stats

    trainer.agent.update = poisoned
    assert trainer.run() == 1
    err = capsys.readouterr().err
    assert "critic_loss became nan at env step 404" in err
    kept = checkpoint.list_checkpoints(tmp_path / "run")
    assert kept and checkpoint.load_latest(tmp_path / "run")["counters"]["env_step"] == 400


def _record_model_lr(trainer, seen: list) -> None:
    """Wrap the agent's updates to note (phase, the model's Adam step size) at each call."""
    agent = trainer.agent
    for name, phase in (("update_model", "pretrain"), ("update", "train")):
        real = getattr(agent, name)

        def wrapped(batch, real=real, phase=phase):
            seen.append((phase, agent.model_opt.param_groups[0]["lr"]))
            return real(batch)

        setattr(agent, name, wrapped)


def test_pretraining_takes_its_own_model_lr_and_acting_the_model_lr_also_after_resume(tmp_path):
    from slac.trainer import Trainer

    assert _tiny(tmp_path, model_lr=2e-4).pretraining_model_lr == 2e-4  # unset: --model-lr
    cfg = _tiny(tmp_path, model_lr=1e-4, pretrain_model_lr=3e-4)
    trainer, seen = Trainer(cfg), []
    _record_model_lr(trainer, seen)
    assert trainer.run() == 0
    assert [lr for phase, lr in seen if phase == "pretrain"] == [3e-4, 3e-4]
    acting = [lr for phase, lr in seen if phase == "train"]
    assert len(acting) == 20 and set(acting) == {1e-4}
    # resumed from the checkpoint written as pretraining ended, whose optimizer holds 3e-4
    state = next(s for s in map(checkpoint.load, checkpoint.list_checkpoints(tmp_path / "run"))
                 if s["counters"]["env_step"] == 400)
    assert state["agent"]["model_opt"]["param_groups"][0]["lr"] == 3e-4
    trainer, seen = Trainer(cfg, resume=state), []
    _record_model_lr(trainer, seen)
    assert trainer.run() == 0
    assert len(seen) == 20 and set(seen) == {("train", 1e-4)}


def test_physics_error_ends_the_episode_and_training_goes_on(tmp_path):
    from dm_control.rl.control import PhysicsError

    from slac.trainer import Trainer

    trainer = Trainer(_tiny(tmp_path))
    inner = trainer.env._env
    real_step, calls = inner.step, {"n": 0}

    def flaky(action):
        calls["n"] += 1
        if calls["n"] == 30:
            raise PhysicsError("injected: simulation became unstable")
        return real_step(action)

    inner.step = flaky
    assert trainer.run() == 0
    rows = list(csv.DictReader(open(tmp_path / "run" / "train.csv")))
    assert rows[-1]["physics_errors"] == "1"
    assert int(rows[-1]["env_step"]) >= 480  # the failed repeat is counted as it was taken


def test_full_disk_stops_with_a_message_and_keeps_the_last_checkpoint(tmp_path, capsys,
                                                                       monkeypatch):
    import errno

    from slac.trainer import Trainer

    trainer = Trainer(_tiny(tmp_path, pretrain_checkpoint_every=1))
    real, calls = checkpoint.atomic_write_bytes, {"n": 0}

    def filling(data, path, chunk=1 << 24):
        calls["n"] += 1
        if calls["n"] == 2:  # the second checkpoint finds the disk full half-way
            Path(str(path) + ".tmp").write_bytes(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(data, path, chunk)

    monkeypatch.setattr(checkpoint, "atomic_write_bytes", filling)
    assert trainer.run() == 1
    assert "No space left on device" in capsys.readouterr().err
    # the first checkpoint (random data done) is intact; the second, after pretraining update
    # 1, never became one
    names = [p.name for p in checkpoint.list_checkpoints(tmp_path / "run")]
    assert names == ["ckpt-000000000400-000000000.pt"], names
    state = checkpoint.load_latest(tmp_path / "run")
    assert (state["counters"]["env_step"], state["counters"]["pretrained"]) == (400, 0)


def test_a_train_csv_begun_by_an_older_version_keeps_its_columns(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("env_step,phase,model_loss\n1000,pretrain,-5\n")
    log = CSVLog(path, ("env_step", "phase", "model_loss", "active_z1"))
    log.write({"env_step": 2000, "phase": "train", "model_loss": -6.0, "active_z1": 3})
    log.close()
    rows = list(csv.DictReader(open(path)))
    assert [list(r.values()) for r in rows] == [["1000", "pretrain", "-5"], ["2000", "train", "-6"]]


@pytest.fixture
def small_disk(tmp_path):
    """A 64 MB tmpfs (needs root; skipped otherwise)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=True)


@pytest.mark.e2e
def test_a_disk_too_small_for_the_run_is_refused_before_it_starts(small_disk):
    run_dir = small_disk / "run"
    code, out = finish(start(run_dir, "--replay-capacity", "100000"))  # 1.2 GB
    assert code == 2, out[-2000:]
    assert "the run needs about 1." in out and "GB free" in out
    assert out.strip().count("\n") == 0  # one line
    assert not run_dir.exists()  # nothing left behind


@pytest.mark.e2e
def test_a_disk_that_fills_during_the_run_stops_it_with_no_partial_files(small_disk):
    """The replay fits and is allocated whole; then the disk fills (another writer) before
    the first checkpoint: the run stops with one clear message naming what is intact (no
    checkpoint yet) and leaves no partial checkpoint file."""
    run_dir = small_disk / "run"
    proc = start(run_dir)
    wait_for_line(proc, "random ")
    filler = small_disk / "filler"
    with open(filler, "wb") as f:  # take what is left
        try:
            while True:
                f.write(b"\0" * (1 << 20))
                f.flush()
        except OSError:
            pass
    code, out = finish(proc)
    assert code == 1, out[-2000:]
    assert "No space left on device" in out
    assert "no checkpoint was saved yet" in out
    assert not list((run_dir / "checkpoints").glob("*"))  # no partial file
    filler.unlink()
    code, out = finish(start(run_dir))
    assert code == 0, out[-3000:]  # with space again, the same command runs


@pytest.mark.e2e
def test_sigterm_in_pretraining_stops_there_and_the_resume_is_exact(tmp_path):
    """In-process: SIGTERM arrives while the model pretrains; the run stops at the next update
    with a checkpoint there, and resumed it ends exactly as the same run left alone."""
    from slac.trainer import Trainer

    def cfg(name):
        return dataclasses.replace(_tiny(tmp_path), pretrain_updates=60, conv_width=8,
                                   run_dir=str(tmp_path / name))

    alone = Trainer(cfg("alone"))
    assert alone.run() == 0
    trainer = Trainer(cfg("stopped"))

    def signal_in_pretraining():
        while trainer.pretrained < 10:
            time.sleep(0.001)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=signal_in_pretraining, daemon=True).start()
    assert trainer.run() == 128 + signal.SIGTERM
    state = checkpoint.load_latest(tmp_path / "stopped")
    assert state["counters"]["phase"] == "pretrain" and 10 <= state["counters"]["pretrained"] < 60
    assert Trainer(cfg("stopped"), resume=state).run() == 0
    assert returns(tmp_path / "stopped") == returns(tmp_path / "alone")
    assert train_rows(tmp_path / "stopped") == train_rows(tmp_path / "alone")


def test_no_space_for_the_replay_after_the_check_is_one_error_and_leaves_nothing(tmp_path,
                                                                                 monkeypatch):
    """The disk fills between the free-space check and the replay's allocation: a ConfigError
    (one line on the command line), and the new run directory is gone."""
    import errno

    from slac import replay
    from slac.trainer import Trainer

    def no_space(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(replay.os, "posix_fallocate", no_space)
    with pytest.raises(ConfigError, match="cannot create the replay .* No space left"):
        Trainer(_tiny(tmp_path))
    assert not (tmp_path / "run").exists()
