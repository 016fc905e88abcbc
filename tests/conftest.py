import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import subprocess  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from slac.config import Config  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def small_cfg() -> Config:
    """Paper structure, small sizes: fast enough for unit tests."""
    return Config(task="cartpole-swingup", batch_size=6, model_batch_size=2, hidden=32,
                  z1_dim=4, z2_dim=8, feature_dim=256, random_steps=400, env_steps=1000,
                  pretrain_updates=1).resolved()


SLAC = [sys.executable, "-m", "slac.cli"]
TINY = ["--task", "cartpole-swingup", "--env-steps", "800", "--random-steps", "400",
        "--pretrain-updates", "3", "--batch-size", "8", "--model-batch-size", "4",
        "--eval-every", "400", "--eval-episodes", "1", "--threads", "1",
        "--replay-capacity", "2000",  # a small replay: it is allocated on disk whole
        "--hidden", "32", "--z2-dim", "16", "--conv-width", "4", "--feature-dim", "32"]


def run(*args, timeout=600) -> subprocess.CompletedProcess:
    """``slac ARGS`` in a subprocess."""
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    return subprocess.run([*SLAC, *args], capture_output=True, text=True, timeout=timeout,
                          env=env)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A tiny real run through the CLI, shared by the tests that need a trained agent."""
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    done = run("train", "--run-dir", str(run_dir), "--video", *TINY)
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir


E2E_FIXTURES = {"trained_run", "trained", "reference"}  # fixtures that train in a subprocess


def pytest_collection_modifyitems(items):
    """Tests that run the command in a subprocess are `e2e` (``make test-fast`` leaves them
    out): those marked so, and those that use a fixture which trains through the command."""
    for item in items:
        if E2E_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)
