"""Interleaved A/B of one SLAC update in one process, for speed changes on a noisy machine.

    .venv/bin/python scripts/ab_update.py SWITCH {paper,cpu} {model,iter} ROUNDS

SWITCH picks the two arms (A, B):
    weight-grad   3x3 stride-2 weight gradients as patch matmuls (A) or oneDNN's own (B)
    linear        linear layers by torch's BLAS (A) or oneDNN's matmul (B)
    amp           fp32 (A) or bfloat16 autocast in the encoder and decoder, --amp (B)
    amp-rewrites  both --amp: the stock layers (A) or the rewrites of slac.kernels (B)
Another script can A/B its own switch through ``main(..., extra=...)``.
"model" times the model-only (pretraining) update, "iter" a full update, each as the schedule
that `slac train` picks runs it, at the paper's sizes (cheetah-run) or the cpu preset's
(ball_in_cup-catch), on all cores. Each round runs both arms, alternating which goes first: one
warm-up update, then the median of three. Prints each round's B/A ratio, then the medians and in
how many rounds B was faster. docs/performance.md says how the results are used.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

from slac import kernels, parallel, runtime
from slac.agent import SLACAgent
from slac.bench import synthetic_replay
from slac.config import Config, resolve, with_preset

Switches = dict[str, tuple[str, str, Callable[[bool], None]]]  # name -> arm A, arm B, set B


def switches(agent: SLACAgent) -> Switches:
    """Each switch's arm names and a function setting arm B (True) or A (False)."""
    enc, dec = agent.model.encoder, agent.model.decoder

    def weight_grad(b: bool) -> None:
        kernels.WEIGHT_GRAD_BY_MATMUL = not b

    def linear(b: bool) -> None:
        kernels.ONEDNN_LINEAR = b

    def amp(b: bool) -> None:
        enc.amp = dec.amp = b

    def rewrites(b: bool) -> None:
        enc.amp = dec.amp = True
        enc.plain = dec.plain = not b

    return {"weight-grad": ("matmul", "onednn", weight_grad), "linear": ("blas", "onednn", linear),
            "amp": ("fp32", "bf16", amp), "amp-rewrites": ("stock", "rewrites", rewrites)}


def main(switch: str, sizes: str, what: str, rounds: int,
         extra: Callable[[SLACAgent], Switches] | None = None) -> None:
    """Run the A/B; ``extra(agent)`` adds switches to :func:`switches`'s."""
    given = {"task": "cheetah-run"} if sizes == "paper" else {"preset": sizes,
                                                             "task": "ball_in_cup-catch"}
    cfg = resolve(Config(**with_preset(given)))
    device = runtime.set_up("cpu", 0, 0)
    agent = SLACAgent(cfg, 6, device)
    schedule = parallel.choose(agent)
    replay = synthetic_replay(cfg, 6)
    batches = [replay.sample(cfg.batch_size, cfg.sequence_length) for _ in range(3)]
    name_a, name_b, set_b = {**switches(agent), **(extra(agent) if extra else {})}[switch]
    calls = 0

    def update() -> float:
        nonlocal calls
        calls += 1
        b = batches[calls % 3]
        t = time.perf_counter()
        if what == "model":
            schedule.update_model(b.rows(0, cfg.model_batch_size))
        else:
            schedule.update(b)
        return time.perf_counter() - t

    times: dict[bool, list[float]] = {False: [], True: []}
    for r in range(rounds):
        for arm in ((False, True) if r % 2 == 0 else (True, False)):
            set_b(arm)
            update()
            times[arm].append(statistics.median(update() for _ in range(3)))
        print(f"round {r}: {name_a} {times[False][-1]:.4f} {name_b} {times[True][-1]:.4f} "
              f"ratio {times[True][-1] / times[False][-1]:.3f}", flush=True)
    a, b = statistics.median(times[False]), statistics.median(times[True])
    faster = sum(y < x for x, y in zip(times[False], times[True], strict=True))
    print(f"{switch} {sizes} {what}: medians {name_a} {a:.4f} {name_b} {b:.4f} ratio {b / a:.3f}"
          f" ({name_b} faster in {faster} of {rounds} rounds)")


if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[1] not in ("weight-grad", "linear", "amp", "amp-rewrites") \
            or sys.argv[2] not in ("paper", "cpu") or sys.argv[3] not in ("model", "iter"):
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
