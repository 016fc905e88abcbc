"""Interleaved A/B of where the decoder's first activation goes: on the 4-D channels-last view
of the first matmul's output (A, before this change) or on the matmul's 2-D output (B).

    .venv/bin/python docs/results/bench-ab-2026-12-07-decoder-first/first_act_ab.py \
        {first-act,first-act-amp} {paper,cpu} {model,iter} ROUNDS

first-act-amp runs both arms under --amp. Uses scripts/ab_update.py's loop.
"""
import sys
from pathlib import Path

from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
import ab_update  # noqa: E402

from slac.networks import Decoder  # noqa: E402

on_matmul = Decoder._first  # B: the activation inside, on the matmul's output


def on_view(z, first, act):  # A: the activation on the 4-D view, as before
    return act(on_matmul(z, first, nn.Identity()))


def extra(agent):
    enc, dec = agent.model.encoder, agent.model.decoder

    def set_b(b: bool, amp: bool) -> None:
        enc.amp = dec.amp = amp
        Decoder._first = staticmethod(on_matmul if b else on_view)

    return {"first-act": ("view", "matmul", lambda b: set_b(b, False)),
            "first-act-amp": ("view", "matmul", lambda b: set_b(b, True))}


if __name__ == "__main__":
    ab_update.main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), extra)
