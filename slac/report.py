"""``slac report``: a sweep's results as the tables a paper needs.

Per task and variant: the mean +- standard deviation over seeds at 100k and 500k environment
steps (the paper's points) and at the last step all its seeds reached, beside the published
SLAC values. Across tasks: the interquartile mean and the optimality gap of returns / 1000
(DeepMind Control tasks, whose episode returns lie in [0, 1000]), each with a 95% stratified
bootstrap interval, as ``rliable`` computes them (Agarwal et al., 2021).
"""

from __future__ import annotations

import csv
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slac import plot, published, sweep
from slac.tasks import get_task

POINTS = (100_000, 500_000)
DMC_MAX_RETURN = 1000.0


@dataclass
class Entry:
    task: str
    variant: str
    seed: int
    steps: np.ndarray
    returns: np.ndarray

    def at(self, step: int) -> float | None:
        hit = np.flatnonzero(self.steps == step)
        return float(self.returns[hit[0]]) if len(hit) else None


def load(paths: list[str | os.PathLike]) -> list[Entry]:
    """The evaluated runs of sweep directories (variant: the grid's values) and of run
    directories (variant: what differs from the paper's configuration)."""
    entries = []
    for path in paths:
        path = Path(path)
        state = sweep.load_state(path)
        if state is None:
            run = plot.load_run(path)
            entries.append(Entry(run.task, run.label, run.config["seed"], run.steps,
                                 run.returns))
            continue
        for name, r in state["runs"].items():
            try:
                run = plot.load_run(path / name)
            except (FileNotFoundError, ValueError):
                continue  # not evaluated yet
            entries.append(Entry(run.task, r["variant"], run.config["seed"], run.steps,
                                 run.returns))
    if not entries:
        raise ValueError(f"no evaluated runs in {', '.join(map(str, paths))}")
    return entries


def _groups(entries: list[Entry]) -> dict[tuple[str, str], list[Entry]]:
    out: dict[tuple[str, str], list[Entry]] = {}
    for e in entries:
        out.setdefault((e.task, e.variant), []).append(e)
    return dict(sorted(out.items()))


def last_common_step(entries: list[Entry]) -> int:
    """The last evaluation step every entry has (0 if none is common)."""
    return int(max(set.intersection(*(set(e.steps.tolist()) for e in entries)), default=0))


def table(entries: list[Entry]) -> list[dict]:
    """One row per task and variant; a point not every seed reached is left empty."""
    rows = []
    for (task, variant), members in _groups(entries).items():
        pub = published.curve(task) if task in published.tasks() else None
        last = last_common_step(members)
        row = {"task": task, "variant": variant, "seeds": len(members), "last_step": last}
        for label, step in [*((f"{s // 1000}k", s) for s in POINTS), ("last", last)]:
            values = [e.at(step) for e in members]
            reached = all(v is not None for v in values)
            row[f"mean_{label}"] = float(np.mean(values)) if reached else None
            row[f"std_{label}"] = float(np.std(values)) if reached else None
            try:
                mean, std = pub.at(step) if pub is not None else (None, None)
            except KeyError:
                mean, std = None, None
            row[f"published_mean_{label}"], row[f"published_std_{label}"] = mean, std
        rows.append(row)
    return rows


def score_matrices(entries: list[Entry], step: int) -> tuple[dict[str, np.ndarray], list[str]]:
    """Per variant, returns / 1000 at ``step`` as a (seeds x tasks) matrix over the DMC tasks
    every variant ran, the seeds every task of the variant has."""
    dmc = sorted({e.task for e in entries if get_task(e.task).suite == "dmc"})
    variants = sorted({e.variant for e in entries})
    tasks = [t for t in dmc
             if all(any(e.task == t and e.variant == v for e in entries) for v in variants)]
    out = {}
    for v in variants:
        by_task = {t: {e.seed: e.at(step) for e in entries if e.task == t and e.variant == v}
                   for t in tasks}
        seeds = sorted(set.intersection(*(set(s for s, x in d.items() if x is not None)
                                          for d in by_task.values()))) if tasks else []
        if seeds:
            out[v] = np.array([[by_task[t][s] for t in tasks] for s in seeds]) / DMC_MAX_RETURN
    return out, tasks


def aggregates(entries: list[Entry], step: int, reps: int = 2000, seed: int = 0) -> dict:
    """Per variant: IQM and optimality gap at ``step``, each (estimate, low, high)."""
    from rliable import library, metrics

    scores, tasks = score_matrices(entries, step)
    if not scores:
        return {}
    with warnings.catch_warnings():  # arch deprecates the RandomState rliable hands it
        warnings.simplefilter("ignore", FutureWarning)
        point, interval = library.get_interval_estimates(
            scores, lambda x: np.array([metrics.aggregate_iqm(x),
                                        metrics.aggregate_optimality_gap(x)]),
            reps=reps, random_state=np.random.RandomState(seed))
    return {v: {"tasks": tasks, "runs": scores[v].shape[0],
                "iqm": (float(point[v][0]), *map(float, interval[v][:, 0])),
                "optimality_gap": (float(point[v][1]), *map(float, interval[v][:, 1]))}
            for v in scores}


def _steps(n: int) -> str:
    return f"{n / 1000:g}k" if n >= 1000 else str(n)


def _pm(mean: float | None, std: float | None) -> str:
    return "-" if mean is None else f"{mean:.0f} +- {std:.0f}"


def markdown(rows: list[dict], aggs: dict[int, dict]) -> str:
    cols = [f"{s // 1000}k" for s in POINTS] + ["last"]
    out = ["| task | variant | seeds | " + " | ".join(
        f"{c} ours | {c} published" for c in cols) + " |",
        "|" + "---|" * (3 + 2 * len(cols))]
    for r in rows:
        cells = [f"{r['task']}", r["variant"], str(r["seeds"])]
        for c in cols:
            cells += [_pm(r[f"mean_{c}"], r[f"std_{c}"]),
                      _pm(r[f"published_mean_{c}"], r[f"published_std_{c}"])]
        cells[-2] += f" ({_steps(r['last_step'])})"
        out.append("| " + " | ".join(cells) + " |")
    for step, agg in aggs.items():
        if not agg:
            continue
        n = len(next(iter(agg.values()))["tasks"])
        out += ["", f"Aggregate over {n} DMC task{'s' * (n != 1)} at {_steps(step)} "
                f"environment steps (return / 1000; 95% stratified bootstrap interval):", "",
                "| variant | runs per task | IQM | optimality gap |", "|---|---|---|---|"]
        for v, a in agg.items():
            out.append("| {} | {} | {:.3f} [{:.3f}, {:.3f}] | {:.3f} [{:.3f}, {:.3f}] |".format(
                v, a["runs"], *a["iqm"], *a["optimality_gap"]))
    return "\n".join(out)


def to_csv(rows: list[dict]) -> str:
    f = io.StringIO()
    w = csv.DictWriter(f, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    return f.getvalue()


def report(paths: list[str | os.PathLike], reps: int = 2000) -> tuple[str, str]:
    """The Markdown report and the CSV table of ``paths`` (sweep or run directories)."""
    entries = load(paths)
    rows = table(entries)
    every = last_common_step(entries)
    steps = [s for s in POINTS if s < every] + ([every] if every else [])
    return markdown(rows, {s: aggregates(entries, s, reps) for s in steps}), to_csv(rows)
