import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

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
