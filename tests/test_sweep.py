"""`slac sweep` on a real local Ray and a real Ray head, and `slac report` / `slac plot` of
sweeps, checked against plain numpy."""

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import run

from slac import plot, report, sweep
from slac.config import Config, ConfigError, to_dict

TINY_SWEEP = ["--env-steps", "800", "--random-steps", "400", "--pretrain-updates", "3",
              "--batch-size", "8", "--model-batch-size", "4", "--eval-every", "800",
              "--eval-episodes", "1", "--replay-capacity", "2000", "--checkpoint-every", "400",
              "--hidden", "32", "--z2-dim", "16", "--conv-width", "4", "--feature-dim", "32"]
GRID = ["--tasks", "cartpole-swingup,reacher-easy", "--seeds", "0-1"]


def sweep_cmd(out, *extra) -> list[str]:
    return [sys.executable, "-m", "slac.cli", "sweep", "--out", str(out), *GRID, *TINY_SWEEP,
            *extra]


def returns(run_dir):
    with open(Path(run_dir) / "eval.csv") as f:
        return [{k: v for k, v in row.items() if k != "wall_time"} for row in csv.DictReader(f)]


# --------------------------------------------------------------------------- the grid
def test_seeds_and_lists_parse_and_bad_ones_are_one_line_errors():
    assert sweep.parse_seeds("0-2,5") == [0, 1, 2, 5]
    assert sweep.parse_seeds("3") == [3]
    for bad in ("3-1", "x", "-1", "0-"):
        with pytest.raises(ConfigError, match="--seeds"):
            sweep.parse_seeds(bad)
    assert sweep.parse_values("decoder_var", "0.04,0.1") == [0.04, 0.1]
    with pytest.raises(ConfigError, match="--decoder-var: 'x' is not a float"):
        sweep.parse_values("decoder_var", "0.1,x")
    with pytest.raises(ConfigError, match="--init: 'he' is not one of torch, glorot"):
        sweep.parse_values("init", "torch,he")
    with pytest.raises(ConfigError, match="given twice"):
        sweep.parse_values("batch_size", "64,64")


def test_the_grid_is_every_combination_named_by_what_varies():
    grid = sweep.make_grid("cartpole-swingup,reacher-easy", "0-1",
                           {"decoder_var": "0.04,0.1", "batch_size": "64", "video": True})
    runs = grid.runs()
    assert len(runs) == 8
    name = "cartpole-swingup_decoder-var=0.1_seed1"
    assert runs[name] == {"task": "cartpole-swingup", "seed": 1, "batch_size": 64,
                          "video": True, "decoder_var": 0.1}
    assert grid.variant(runs[name]) == "decoder-var 0.1"
    args = sweep.train_args(runs[name], "R", 1, "cpu")
    assert args[:6] == ["--run-dir", "R", "--threads", "1", "--device", "cpu"]
    assert "--video" in args and args[args.index("--decoder-var") + 1] == "0.1"
    # each run is checked as `slac train` checks it, before anything runs
    with pytest.raises(ConfigError, match="--batch-size must be positive"):
        sweep.make_grid("cartpole-swingup", "0", {"batch_size": "64,0"})


def test_a_changed_grid_is_refused_unless_overridden(tmp_path):
    grid = sweep.make_grid("cartpole-swingup", "0-1", {"batch_size": "64"})
    state = sweep.open_sweep(tmp_path, grid, "first", False)
    assert {r["state"] for r in state["runs"].values()} == {"queued"}
    state["runs"]["cartpole-swingup_seed0"]["state"] = "finished"
    (tmp_path / "cartpole-swingup_seed0").mkdir()
    (tmp_path / "cartpole-swingup_seed0" / "eval.csv").write_text("env_step\n")
    sweep.save_state(tmp_path, state)
    # the same grid: the finished run stays finished
    again = sweep.open_sweep(tmp_path, grid, "again", False)
    assert again["runs"]["cartpole-swingup_seed0"]["state"] == "finished"
    wider = sweep.make_grid("cartpole-swingup", "0-2", {"batch_size": "64"})
    with pytest.raises(ConfigError, match=r"another grid: seeds: \[0, 1, 2\] \(sweep has "
                                          r"\[0, 1\]\); add --override"):
        sweep.open_sweep(tmp_path, wider, "wider", False)
    state = sweep.open_sweep(tmp_path, wider, "wider", True)
    assert len(state["runs"]) == 3
    assert state["runs"]["cartpole-swingup_seed0"]["state"] == "finished"  # same settings
    changed = sweep.make_grid("cartpole-swingup", "0-2", {"batch_size": "32"})
    state = sweep.open_sweep(tmp_path, changed, "changed", True)
    assert state["runs"]["cartpole-swingup_seed0"]["state"] == "queued"  # settings changed


def test_one_driver_per_sweep_and_no_foreign_directory(tmp_path):
    held = sweep.lock(tmp_path)
    try:
        with pytest.raises(ConfigError, match=f"{tmp_path} is in use by another slac sweep "
                                              f"\\(PID {os.getpid()}\\)"):
            sweep.lock(tmp_path)
    finally:
        held.release()
    sweep.lock(tmp_path).release()  # free again
    sweep.check_out(tmp_path)  # only its lock file in it: usable
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="holds files that are not a slac sweep"):
        sweep.check_out(tmp_path)
    with pytest.raises(ConfigError, match="is a file, not a sweep directory"):
        sweep.check_out(tmp_path / "notes.txt")


@pytest.mark.e2e
def test_bad_sweep_input_is_one_line_exit_2_nothing_written(tmp_path):
    out = tmp_path / "sweep"
    for args, message in (
        (["--tasks", "cartpole-swingup", "--decoder-var", "0.1,x"], "is not a float"),
        (["--tasks", "cartpole-swingup", "--seeds", "2-1"], "--seeds"),
        (["--tasks", "cartpole-swingup", "--cpus-per-run", "0"], "--cpus-per-run must be"),
        (["--tasks", "no-such-task"], "no-such-task"),
        (["--tasks", "cartpole-swingup", "--address", "127.0.0.1:1"], "cannot reach"),
    ):
        done = run("sweep", "--out", str(out), *args)
        assert done.returncode == 2 and message in done.stderr, done.stderr
        assert done.stderr.count("\n") == 1 and not out.exists()


# --------------------------------------------------------------------------- aggregation
def fake_sweep(root: Path, variants: dict[str, dict], tasks, seeds, value) -> Path:
    """A sweep directory of finished runs whose eval.csv holds ``value(v, task, seed, step)``
    at 10k..50k steps."""
    runs = {}
    for v, flags in variants.items():
        for task in tasks:
            for seed in seeds:
                name = f"{task}_{v}_seed{seed}"
                d = root / name
                d.mkdir(parents=True)
                cfg = to_dict(Config(task=task, seed=seed, **flags))
                (d / "config.json").write_text(json.dumps({"config": cfg}))
                rows = ["env_step,return_mean"] + [
                    f"{s},{value(v, task, seed, s)}" for s in range(10_000, 50_001, 10_000)]
                (d / "eval.csv").write_text("\n".join(rows) + "\n")
                runs[name] = {"variant": v, "state": "finished", "settings": {}}
    (root / "sweep.json").write_text(json.dumps({"version": 1, "runs": runs}))
    return root


def test_report_and_plot_aggregate_as_plain_numpy_does(tmp_path):
    rng = np.random.default_rng(0)
    table = {(v, t, s): rng.uniform(0, 1000, 5) for v in ("a", "b")
             for t in ("cartpole-swingup", "walker-walk", "finger-spin") for s in range(4)}
    root = fake_sweep(tmp_path / "sw", {"a": {}, "b": {"decoder_var": 0.4}},
                      ["cartpole-swingup", "walker-walk", "finger-spin"], range(4),
                      lambda v, t, s, step: table[v, t, s][step // 10_000 - 1])
    entries = report.load([root])
    assert len(entries) == 24
    rows = {(r["task"], r["variant"]): r for r in report.table(entries)}
    want = np.array([table["b", "walker-walk", s][4] for s in range(4)])
    row = rows["walker-walk", "b"]
    assert row["seeds"] == 4 and row["last_step"] == 50_000
    assert np.isclose(row["mean_last"], want.mean()) and np.isclose(row["std_last"], want.std())
    assert row["mean_100k"] is None  # no seed reached 100k
    # IQM: the mean of the middle half of all (seed, task) scores; optimality gap: 1 - mean
    # of min(score, 1), on returns / 1000
    agg = report.aggregates(entries, 50_000, reps=300)
    scores = np.array([[table["a", t, s][4] for t in ("cartpole-swingup", "finger-spin",
                                                    "walker-walk")] for s in range(4)]) / 1000
    flat = np.sort(scores.ravel())
    iqm, lo, hi = agg["a"]["iqm"]
    assert np.isclose(iqm, flat[3:9].mean()) and lo <= iqm <= hi
    gap, lo, hi = agg["a"]["optimality_gap"]
    assert np.isclose(gap, 1 - np.minimum(scores, 1).mean()) and lo <= gap <= hi
    assert agg["a"]["runs"] == 4 and len(agg["a"]["tasks"]) == 3
    # the plot's groups and bands: mean +- std over seeds per step
    runs = [plot.load_run(p) for p in plot.expand([root])]
    members = [r for r in runs if r.task == "walker-walk" and "decoder_var" in str(r.key)
               and dict(r.key[1])["decoder_var"] == 0.4]
    steps, mean, low, high = plot.aggregate(members, "std")
    vals = np.array([table["b", "walker-walk", s] for s in range(4)])
    assert np.allclose(mean, vals.mean(0)) and np.allclose(high - mean, vals.std(0))
    text = report.markdown(report.table(entries), {50_000: agg})
    assert "| walker-walk | b | 4 |" in text and "IQM" in text


# --------------------------------------------------------------------------- real sweeps
@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "sw"
    done = subprocess.run(sweep_cmd(out), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return out, done.stderr


@pytest.mark.e2e
def test_a_local_sweep_runs_every_combination_and_reports_them(swept, tmp_path):
    out, log = swept
    state = json.loads((out / "sweep.json").read_text())
    assert len(state["runs"]) == 4
    assert {r["state"] for r in state["runs"].values()} == {"finished"}
    assert "2 at once" in log and "4 finished, 0 running, 0 queued, 0 failed" in log
    done = run("report", str(out), "--out", str(tmp_path), "--reps", "200")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(open(tmp_path / "report.csv")))
    assert sum(int(r["seeds"]) for r in rows) == 4
    done = run("plot", str(out), "--out", str(tmp_path / "curves.png"))
    assert done.returncode == 0 and (tmp_path / "curves.png").stat().st_size > 10_000
    # the same command again runs nothing, and changes nothing
    before = {p: p.read_bytes() for p in out.glob("*/eval.csv")}
    again = subprocess.run(sweep_cmd(out), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "nothing to run" in again.stderr, again.stderr
    assert {p: p.read_bytes() for p in out.glob("*/eval.csv")} == before


def start_sweep(out) -> subprocess.Popen:
    return subprocess.Popen(sweep_cmd(out), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def wait_for_new_checkpoint(out, driver, seen=frozenset()) -> set:
    t0 = time.monotonic()
    while not set(out.glob("*/checkpoints/ckpt-*")) - seen:
        assert driver.poll() is None and time.monotonic() - t0 < 300
        time.sleep(0.2)
    return set(out.glob("*/checkpoints/ckpt-*"))


@pytest.mark.e2e
def test_a_stopped_then_killed_driver_and_a_rerun_give_the_uninterrupted_results(swept,
                                                                                  tmp_path):
    """SIGTERM to the driver stops the runs at checkpoints (exit 130); the rerun, SIGKILLed
    mid-sweep, loses only what came after each run's last checkpoint; the last rerun finishes
    with the same eval.csv files as the sweep left alone."""
    out = tmp_path / "sw"
    driver = start_sweep(out)
    seen = wait_for_new_checkpoint(out, driver)
    driver.send_signal(signal.SIGTERM)
    log, _ = driver.communicate(timeout=600)
    assert driver.returncode == 130 and "stopped. Run the same command again" in log, log
    run_logs = "".join(p.read_text() for p in (out / "logs").glob("*.log"))
    assert "checkpoint saved. Run the same command again to resume" in run_logs
    driver = start_sweep(out)
    try:
        wait_for_new_checkpoint(out, driver, seen)
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    finally:
        time.sleep(2)
        try:  # Ray's helpers that outlive their driver
            os.killpg(driver.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    state = json.loads((out / "sweep.json").read_text())
    assert any(r["state"] != "finished" for r in state["runs"].values())
    done = subprocess.run(sweep_cmd(out), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    reference, _ = swept
    for name in json.loads((out / "sweep.json").read_text())["runs"]:
        assert returns(out / name) == returns(reference / name), name


@pytest.fixture(scope="module")
def ray_head():
    """A real Ray head on 127.0.0.1, stopped at the end."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ray = str(Path(sys.executable).parent / "ray")
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    head = subprocess.Popen([ray, "start", "--head", "--block", "--node-ip-address",
                             "127.0.0.1", "--port", str(port), "--num-cpus", "2",
                             "--include-dashboard=false", "--disable-usage-stats"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    t0 = time.monotonic()
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert head.poll() is None and time.monotonic() - t0 < 120
            time.sleep(0.5)
    yield f"127.0.0.1:{port}"
    head.terminate()
    head.wait(timeout=60)
    try:
        os.killpg(head.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.mark.e2e
def test_a_sweep_joins_a_ray_head_and_reports_a_failing_run_after_its_retries(ray_head,
                                                                               tmp_path):
    """Joined by --address; a run that fails (an environment this machine lacks) is retried
    once, then reported with its error, while the other run finishes."""
    out = tmp_path / "sw"
    done = subprocess.run(
        [sys.executable, "-m", "slac.cli", "sweep", "--out", str(out), "--tasks",
         "cartpole-swingup,gym:NoSuchEnv-v0", "--seeds", "0", *TINY_SWEEP, "--retries", "1",
         "--address", ray_head], capture_output=True, text=True, timeout=900)
    assert done.returncode == 1, done.stderr[-3000:]
    state = json.loads((out / "sweep.json").read_text())["runs"]
    assert state["cartpole-swingup_seed0"]["state"] == "finished"
    failed = state["gym:NoSuchEnv-v0_seed0"]
    assert failed["state"] == "failed" and failed["attempts"] == 2
    assert "unknown Gymnasium environment" in failed["error"]
    assert "after 2 attempts" in done.stderr and "1 finished" in done.stderr
    assert (out / "cartpole-swingup_seed0" / "eval.csv").exists()


@pytest.mark.e2e
@pytest.mark.parametrize("grid", ["main", "models", "inputs", "decoder-var", "pretraining",
                                  "updates", "crop", "sac-pixels", "sac-state"])
def test_the_paper_grids_are_valid_sweeps(grid, tmp_path):
    """Each grid of scripts/paper_sweeps.sh passes every check of its runs and stops only at
    the (unreachable) cluster address, having written nothing."""
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, SLAC=f"{sys.executable} -m slac.cli", OUT=str(tmp_path / "paper"),
               ADDRESS="127.0.0.1:1")
    done = subprocess.run(["bash", str(root / "scripts" / "paper_sweeps.sh"), grid], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "cannot reach the Ray cluster" in done.stderr, done.stderr
    assert not (tmp_path / "paper").exists()


def test_the_board_redraws_in_place_on_a_terminal_and_prints_lines_into_a_log():
    import io

    from slac.driver import Board

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    term = Terminal()
    board = Board(term)
    board.show(["a 1", "2 running"], force=True)
    board.show(["a 2", "2 running"], force=True)  # moves up 2 lines, clears, redraws
    board.event("done    a")
    assert term.getvalue() == ("a 1\n2 running\n" "\033[2F\033[J" "a 2\n2 running\n"
                               "\033[2F\033[J" "done    a\n")
    log = io.StringIO()
    board = Board(log, every=60)
    board.show(["a 1"], force=True)
    board.show(["a 2"])  # within the minute: not printed
    board.event("done    a")
    board.show(["b 1"])  # after an event: printed
    lines = log.getvalue().splitlines()
    assert [ln[9:] for ln in lines if ln[2:3] == ":"] == ["a 1", "b 1"]  # time-stamped
    assert "done    a" in lines and "\033" not in log.getvalue()
