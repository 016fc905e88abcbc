"""Interleaved A/B of the posterior filter: as at df101e4 (A: stock autograd at every step,
four restart selections per step) or as now (B: slac.unroll's fused MLP steps, whose weight
gradients are one matmul over the steps, and two selections per step).

    .venv/bin/python docs/results/bench-ab-2026-12-08-unroll/filter_ab.py {paper,cpu} {model,iter} ROUNDS

Arm A runs df101e4's `LatentModel.filter` (read from git) on the same model. Uses
scripts/ab_update.py's loop.
"""
import subprocess
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "scripts"))
import ab_update  # noqa: E402

old = types.ModuleType("model_df101e4")
sys.modules[old.__name__] = old  # its dataclasses look it up
exec(subprocess.run(["git", "-C", str(ROOT), "show", "df101e4:slac/model.py"], check=True,  # noqa: S603,S607
                    capture_output=True, text=True).stdout, old.__dict__)


def switch(agent):
    model = agent.model

    def set_b(b: bool) -> None:
        if b:
            model.__dict__.pop("filter", None)
        else:
            model.filter = types.MethodType(old.LatentModel.filter, model)

    return {"filter": ("df101e4", "unrolled", set_b)}


if __name__ == "__main__":
    ab_update.main("filter", sys.argv[1], sys.argv[2], int(sys.argv[3]), extra=switch)
