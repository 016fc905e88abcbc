"""Learning curves: our runs against the published SLAC curve, one panel per task.

Runs of the same task and configuration (everything but seed, run directory and machine
settings) are one group: a mean line with a band (standard deviation across seeds, or a
bootstrap 95% interval of the mean). The published curve is the mean and standard deviation
over its 10 seeds at the paper's best decoder variance (:mod:`slac.published`).
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slac import published

NOT_CONFIG = {"seed", "run_dir", "threads", "device", "log_every", "video", "checkpoint_every",
              "pretrain_checkpoint_every", "eval_episodes", "env_steps"}
TABLE_STEPS = (20_000, 50_000, 100_000, 500_000)  # columns of ANCHORS.md


@dataclass
class Run:
    path: Path
    task: str
    config: dict
    steps: np.ndarray
    returns: np.ndarray

    @property
    def key(self) -> tuple:
        return (self.task, tuple(sorted((k, v) for k, v in self.config.items()
                                        if k not in NOT_CONFIG)))

    @property
    def label(self) -> str:
        """'ours', then what differs from the paper's configuration of this task (or, for a
        flag the run's preset sets, from the preset's value)."""
        from slac.config import PRESETS, Config

        paper = Config(task=self.task).resolved()
        preset = self.config.get("preset")
        base = {**vars(paper), **{k: v for k, (v, _) in PRESETS.get(preset, {}).items()}}
        skip = NOT_CONFIG | {"preset", "eval_every"}
        diffs = [f"{k.replace('_', '-')} {v}" for k, v in sorted(self.config.items())
                 if k not in skip and k in base and base[k] != v]
        parts = ([f"preset {preset}"] if preset else []) + diffs
        if len(parts) > 3:
            parts = [*parts[:3], "..."]
        return f"ours ({', '.join(parts) or 'paper config'})"


def load_run(path: str | os.PathLike) -> Run:
    path = Path(path)
    cfg_file, eval_file = path / "config.json", path / "eval.csv"
    if not cfg_file.exists() or not eval_file.exists():
        raise FileNotFoundError(f"{path}: not a run directory (needs config.json and eval.csv)")
    config = json.loads(cfg_file.read_text())["config"]
    rows = list(csv.DictReader(open(eval_file)))
    if not rows:
        raise ValueError(f"{path}: eval.csv has no evaluations yet")
    steps = np.array([int(r["env_step"]) for r in rows])
    returns = np.array([float(r["return_mean"]) for r in rows])
    return Run(path, config["task"], config, steps, returns)


def expand(paths: list[str | os.PathLike]) -> list[Path]:
    """Run directories, with a sweep directory replaced by its runs that have evaluations."""
    from slac import sweep

    out = []
    for path in map(Path, paths):
        state = sweep.load_state(path)
        if state is None:
            out.append(path)
            continue
        out += [path / name for name in state["runs"]
                if sweep.last_eval(path / name) is not None]
    if not out:
        raise ValueError(f"no evaluated runs in {', '.join(map(str, paths))}")
    return out


def group(runs: list[Run]) -> dict[tuple, list[Run]]:
    groups: dict[tuple, list[Run]] = {}
    for r in runs:
        groups.setdefault(r.key, []).append(r)
    return groups


def aggregate(runs: list[Run], band: str = "std", seed: int = 0):
    """Steps every run reached, the mean over runs, and the band's low and high edges."""
    steps = sorted(set.intersection(*(set(r.steps.tolist()) for r in runs)))
    values = np.array([[r.returns[list(r.steps).index(s)] for s in steps] for r in runs])
    mean = values.mean(0)
    if len(runs) < 2:
        return np.array(steps), mean, mean, mean
    if band == "ci":
        rng = np.random.default_rng(seed)
        boots = values[rng.integers(0, len(runs), (2000, len(runs)))].mean(1)
        return np.array(steps), mean, *np.percentile(boots, [2.5, 97.5], axis=0)
    std = values.std(0)
    return np.array(steps), mean, mean - std, mean + std


def plot(run_dirs: list[str], out: str | os.PathLike, band: str = "std") -> str:
    """Draw the figure of ``run_dirs`` (run or sweep directories) to ``out``; return the
    table of returns at 20k, 50k, 100k and 500k steps and at the last step every run of a
    group reached."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [load_run(d) for d in expand(run_dirs)]
    groups = group(runs)
    tasks = sorted({r.task for r in runs})
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4), squeeze=False)
    lines = []
    for ax, task in zip(axes[0], tasks, strict=True):
        x_max = max(max(r.steps.max() for r in runs if r.task == task), 20_000) * 1.02
        pub = None
        if task in published.tasks():
            pub = published.curve(task)
            keep = pub.env_steps <= x_max
            ax.plot(pub.env_steps[keep], pub.mean[keep], color="black", ls="--",
                    label=f"published SLAC (10 seeds, decoder var {pub.decoder_var})")
            ax.fill_between(pub.env_steps[keep], (pub.mean - pub.std)[keep],
                            (pub.mean + pub.std)[keep], color="black", alpha=0.12)
        for key, members in groups.items():
            if key[0] != task:
                continue
            steps, mean, lo, hi = aggregate(members, band)
            label = f"{members[0].label}, {len(members)} seed{'s' * (len(members) > 1)}"
            (line,) = ax.plot(steps, mean, marker="o", ms=3, label=label)
            if len(members) > 1:
                ax.fill_between(steps, lo, hi, color=line.get_color(), alpha=0.25)
            for s in TABLE_STEPS:
                ours = f"{mean[list(steps).index(s)]:.0f}" if s in steps else "-"
                theirs = "{:.0f} +- {:.0f}".format(*pub.at(s)) if pub is not None else "-"
                lines.append((task, label, str(s), ours, theirs))
            last = int(steps[-1])  # the last step every run of the group reached
            try:
                theirs = "{:.0f} +- {:.0f}".format(*pub.at(last)) if pub is not None else "-"
            except KeyError:  # no published evaluation at that step
                theirs = "-"
            lines.append((task, label, f"{last} last", f"{mean[-1]:.1f}", theirs))
        ax.set_title(task)
        ax.set_xlabel("environment steps")
        ax.set_ylabel("average return")
        ax.set_xlim(0, x_max)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    width = max([len(line[1]) for line in lines] + [4])
    header = (f"{'task':<20} {'runs':<{width}} {'env steps':>12} {'ours':>7} "
              f"{'published SLAC':>15}")
    body = [f"{t:<20} {lbl:<{width}} {s:>12} {o:>7} {p:>15}" for t, lbl, s, o, p in lines]
    return "\n".join([header, *body])
