"""SLAC: Stochastic Latent Actor-Critic (Lee, Nagabandi, Abbeel, Levine, NeurIPS 2020)."""

import os

# Spin-waiting OpenMP threads make two-thread runs several times slower whenever the other core
# is busy (rendering, a second run, the test runner). Must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
