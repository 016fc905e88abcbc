"""Interleaved A/B under --amp of the weight casts in passes without gradients: each chunk of
72 frames casting the parameters autocast does not cast itself (A) or each pass casting them
once (B, kernels.CAST_ONCE).

    .venv/bin/python docs/results/bench-ab-2026-12-08-amp-casts/casts_ab.py {paper,cpu} {model,iter} ROUNDS

Uses scripts/ab_update.py's loop; both arms run the encoder and decoder in bfloat16 autocast.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
import ab_update  # noqa: E402

from slac import kernels  # noqa: E402


def switch(agent):
    enc, dec = agent.model.encoder, agent.model.decoder

    def set_b(b: bool) -> None:
        enc.amp = dec.amp = True
        kernels.CAST_ONCE = b

    return {"casts": ("per-chunk", "once", set_b)}


if __name__ == "__main__":
    ab_update.main("casts", sys.argv[1], sys.argv[2], int(sys.argv[3]), extra=switch)
