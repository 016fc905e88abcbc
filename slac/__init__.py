"""SLAC: Stochastic Latent Actor-Critic (Lee, Nagabandi, Abbeel, Levine, NeurIPS 2020).

The Python API: :func:`load` a trained policy, :func:`make_env` a task as a ``gymnasium.Env``,
:func:`train` a run from a :class:`Config` (the flags of ``slac train``).
"""

import os

# Spin-waiting OpenMP threads make two-thread runs several times slower whenever the other core
# is busy (rendering, a second run, the test runner). Must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

# The API is imported on first use, so that `import slac` (and the `slac` command) stays light.
_API = {
    "Config": "slac.config",
    "ConfigError": "slac.config",
    "make_env": "slac.envs.wrapper",
    "Policy": "slac.policy",
    "load": "slac.policy",
    "TrainingStopped": "slac.trainer",
    "train": "slac.trainer",
}
__all__ = sorted(_API)


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'slac' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_API[name]), name)
