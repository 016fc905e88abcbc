"""The published SLAC learning curves, shipped with the package.

``slac/data/slac_published.csv.gz`` holds the per-seed evaluation returns that the SLAC authors
released with their code (10 seeds, 10 evaluation episodes every 10k environment steps, five
decoder variances per task), reduced to the columns used here by
``scripts/make_published_data.py``. As in the authors' plotting notebook, each task's curve is
the decoder variance with the best mean return over the first 500k environment steps.
"""

from __future__ import annotations

import csv
import gzip
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np


@dataclass
class Curve:
    task: str
    decoder_var: float
    env_steps: np.ndarray  # (S,)
    returns: np.ndarray  # (seeds, S); NaN where a seed has no evaluation at that step

    @property
    def mean(self) -> np.ndarray:
        return np.nanmean(self.returns, 0)

    @property
    def std(self) -> np.ndarray:
        return np.nanstd(self.returns, 0)

    def at(self, env_step: int) -> tuple[float, float]:
        """Mean and standard deviation over seeds at ``env_step``."""
        i = int(np.searchsorted(self.env_steps, env_step))
        if i == len(self.env_steps) or self.env_steps[i] != env_step:
            raise KeyError(f"no published evaluation at {env_step} steps for {self.task}")
        return float(self.mean[i]), float(self.std[i])


@cache
def _rows() -> dict[str, list[tuple[float, int, int, float]]]:
    data = resources.files("slac") / "data" / "slac_published.csv.gz"
    out: dict[str, list] = {}
    with data.open("rb") as raw, gzip.open(raw, "rt") as f:
        for r in csv.DictReader(f):
            out.setdefault(r["task"], []).append(
                (float(r["decoder_var"]), int(r["trial_id"]), int(r["env_step"]),
                 float(r["return"])))
    return out


def tasks() -> list[str]:
    return sorted(_rows())


def curve(task: str, decoder_var: float | None = None, select_until: int = 500_000) -> Curve:
    """The published curve of ``task``: at ``decoder_var``, or at the best one by mean return
    over the first ``select_until`` environment steps."""
    rows = _rows().get(task)
    if rows is None:
        raise KeyError(f"no published SLAC curve for {task!r}; have: {', '.join(tasks())}")
    if decoder_var is None:
        scores: dict[float, list[float]] = {}
        for dv, _, step, ret in rows:
            if step <= select_until:
                scores.setdefault(dv, []).append(ret)
        decoder_var = max(scores, key=lambda dv: np.mean(scores[dv]))
    chosen = [r for r in rows if r[0] == decoder_var]
    steps = np.array(sorted({r[2] for r in chosen}))
    seeds = sorted({r[1] for r in chosen})
    returns = np.full((len(seeds), len(steps)), np.nan)
    for _, seed, step, ret in chosen:
        returns[seeds.index(seed), np.searchsorted(steps, step)] = ret
    return Curve(task, decoder_var, steps, returns)
