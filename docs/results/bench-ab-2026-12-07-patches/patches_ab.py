"""Interleaved A/B of the weight gradients' patch rows: from a zero-padded copy of the input
(A, before this change) or straight from the input (B, kernels.stride2_patches now).

    .venv/bin/python docs/results/bench-ab-2026-12-07-patches/patches_ab.py \
        {patches,patches-amp} {paper,cpu} {model,iter} ROUNDS

Uses scripts/ab_update.py's loop; patches-amp runs both arms under --amp.
"""
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
import ab_update  # noqa: E402

from slac import kernels  # noqa: E402

direct = kernels.stride2_patches


def padded(t, h, w):  # A: the code before this change
    p = F.pad(t, (1, 1, 1, 1)).contiguous(memory_format=torch.channels_last)
    s_n, s_c, s_h, s_w = p.stride()
    windows = p.as_strided((t.shape[0], h, w, 3, 3, t.shape[1]),
                           (s_n, 2 * s_h, 2 * s_w, s_h, s_w, s_c))
    return windows.reshape(t.shape[0] * h * w, -1)


def extra(agent):
    enc, dec = agent.model.encoder, agent.model.decoder

    def set_b(b: bool, amp: bool) -> None:
        enc.amp = dec.amp = amp
        kernels.stride2_patches = direct if b else padded

    return {"patches": ("padded", "direct", lambda b: set_b(b, False)),
            "patches-amp": ("padded", "direct", lambda b: set_b(b, True))}


if __name__ == "__main__":
    ab_update.main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), extra)
