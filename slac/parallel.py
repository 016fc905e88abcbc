"""Two-thread updates on a CPU (``--overlap``): how one SLAC update uses two cores.

An update has two streams of work, each drawing its noise from its own generator: the model
stream (Eq. 7 on the first ``model_batch_size`` sequences) and the actor-critic stream (the
no-grad posterior of the other sequences, then Eq. 8-10). Both read the model as it is before
the update, so they can run concurrently, one thread each, computing exactly what they compute
one after the other (``overlap``, the two sharing the encoding and the filtering of the other
sequences so that they end together); or, where the model's part dominates and in pretraining,
the model's sequences are split in halves over the two threads and the gradients summed (``split``,
equal up to fp32 rounding). On the AVX2 machine of the README's Speed section, two streams on
one core each beat both threads on each stream in turn (2.23 -> 1.81 s per paper-size update).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING

import torch

from slac.replay import Batch

if TYPE_CHECKING:
    from slac.config import Config
    from slac.model import LatentModel


class TwoThreadUpdates:
    """The two-thread schedules of :class:`slac.agent.SLACAgent` (a mixin over its model,
    optimiser, generators and the one-thread pieces of an update it defines)."""

    cfg: Config
    device: torch.device
    model: LatentModel
    model_opt: torch.optim.Optimizer
    rng_model: torch.Generator
    _pool: ThreadPoolExecutor | None = None  # the second thread, started on first use
    model_stream_encoded = 0  # sequences the model stream encoded in the last overlapped update
    model_stream_filtered = 0  # ...and filtered

    def schedule(self, model_sequences: int, other_sequences: int) -> str:
        """How :meth:`update` runs: ``sequential``, ``overlap`` (model and actor-critic streams
        side by side) or ``split`` (the model's sequences in halves over the two threads),
        whichever the cost ratio below makes shorter."""
        if not (self._two_threads() and other_sequences):
            return "sequential"
        model = self.MODEL_COST_PER_SEQUENCE * model_sequences
        return "split" if model / 2 + other_sequences < max(model, other_sequences) else "overlap"

    def _two_threads(self) -> bool:
        """Whether updates split their work over two threads, one each (``--overlap``)."""
        return self.cfg.overlap and self.device.type == "cpu" and torch.get_num_threads() >= 2

    # A sequence's model update (encoder, decoder, backward) costs ~7x its no-grad encoding
    # (measured on one thread at the paper's sizes): which of the two schedules below is shorter.
    MODEL_COST_PER_SEQUENCE = 7

    def _update_split_model(self, b: Batch, head: Batch, tail: Batch) -> dict[str, torch.Tensor]:
        """:meth:`update` when the model's part dominates (e.g. the cpu preset's batch of 64):
        the model's sequences split in halves on the two threads as in :meth:`update_model`, the
        worker first encoding the other sequences with the weights from before the step; then
        the actor-critic on both threads. Same draws as :meth:`update`; the model's gradient
        equal up to fp32 rounding."""
        first, second, tail_fz = self._split_model_grads(
            head, worker_first=lambda: self._features_and_latents(tail))
        stats, features, z = self._sum_and_step(first, second)
        ac_in = (torch.cat([features, tail_fz[0]]), torch.cat([z, tail_fz[1]]))
        stats.update(self.update_actor_critic(*ac_in, b))
        return stats

    def _update_model_split(self, b: Batch) -> dict[str, torch.Tensor]:
        """:meth:`update_model` with the batch's halves on one thread each, gradients summed."""
        first, second, _ = self._split_model_grads(b)
        return self._sum_and_step(first, second)[0]

    def _split_model_grads(self, b: Batch, worker_first=None):
        """Both halves of Eq. (7) on ``b``, one thread each, with the noise of the whole batch
        drawn first; the worker runs ``worker_first()`` before its half (reading the weights as
        they are before the step). Returns the two halves and what ``worker_first`` returned."""
        noise = self.model.noise(b.frames.shape[0], b.frames.shape[1], self.rng_model, self.device)

        def worker_part():
            torch.set_num_threads(1)
            before = worker_first() if worker_first is not None else None
            return self._half_model_grads(b, 1, noise), before

        threads = torch.get_num_threads()
        try:
            job = self._worker().submit(worker_part)
            try:
                first = self._half_model_grads(b, 0, noise)
            finally:
                second, before = job.result()
        finally:
            torch.set_num_threads(threads)
        return first, second, before

    def _half_model_grads(self, b: Batch, i: int, noise: tuple[torch.Tensor, torch.Tensor]):
        """Half ``i`` of Eq. (7) on ``b``, on one thread: its share of the gradient and of the
        statistics, and its detached features and latents."""
        torch.set_num_threads(1)
        n = b.frames.shape[0]
        lo, hi = (0, n // 2) if i == 0 else (n // 2, n)
        h = b.rows(lo, hi)
        features = self.model.encoder(h.frames)
        post = self.model.filter(features, h.actions, h.first,
                                 noise=(noise[0][lo:hi], noise[1][lo:hi]))
        loss, stats = self.model.loss(h.frames, h.actions, h.rewards, h.valid, post)
        w = (hi - lo) / n  # Eq. (7) averages over sequences: each half by its share
        params = [p for p in self.model.parameters() if p.requires_grad]
        grads = torch.autograd.grad(loss * w, params, allow_unused=True)
        return grads, {k: v * w for k, v in stats.items()}, features.detach(), post.z.detach()

    def _sum_and_step(self, first, second):
        """Sum two halves' gradients, take the Adam step; the summed stats, features, latents."""
        params = [p for p in self.model.parameters() if p.requires_grad]
        for p, a, c in zip(params, first[0], second[0], strict=True):
            p.grad = a + c if a is not None and c is not None else (a if a is not None else c)
        self.model_opt.step()
        stats = {k: first[1][k] + second[1][k] for k in first[1]}
        return stats, torch.cat([first[2], second[2]]), torch.cat([first[3], second[3]])

    def _worker(self) -> ThreadPoolExecutor:
        """The second thread of the overlapped updates."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="slac-worker")
        return self._pool

    def encoder_chunks(self, sequences: int, steps: int) -> list[tuple[int, int]]:
        """The other sequences of the overlapped schedule in pieces the two streams share: whole
        encoder chunks where the sequence length allows (8 sequences of 9 frames), so each
        encoder pass sees the same frames as one pass over all of them."""
        chunk = self.model.encoder.CHUNK
        step = chunk // math.gcd(chunk, steps)  # sequences per whole number of chunks
        if step > 8:
            step = max(1, chunk // steps)
        return [(i, min(i + step, sequences)) for i in range(0, sequences, step)]

    def _update_overlapped(self, b: Batch, head: Batch, tail: Batch) -> dict[str, torch.Tensor]:
        """:meth:`update` with the actor-critic stream on a worker thread: exactly the same
        computation, each stream on one thread (on the 2-core AVX2 machine of the README's Speed
        section, ~1.4x faster at the paper's sizes than both threads on each stream in turn).

        The two streams share the actor-critic's no-grad work on the other sequences, a piece at
        a time: its encoding in encoder chunks, then its posterior in :meth:`filter_pieces`. The
        actor-critic stream takes pieces from the front, the model stream, once its gradient is
        computed, from the back, until none are left; so the streams end together on any
        machine and at any sizes, without a cost model. Results do not depend on who computed a
        piece (the filter's draws are made first, for all sequences); how many sequences the
        model stream encoded and filtered is left in ``model_stream_encoded`` and
        ``model_stream_filtered``."""
        n, steps = tail.frames.shape[:2]
        chunks = self.encoder_chunks(n, steps)
        encoding = _SharedWork([lambda c=c: self._encode(tail.rows(*c)) for c in chunks])
        noise = self.model.noise(n, steps, self.rng_actor_critic, self.device)
        pieces = self.filter_pieces(n)
        filtering = _SharedWork([
            lambda p=p: self._filter_piece(torch.cat(encoding.results()), tail, noise, *p)
            for p in pieces])
        tail_read: Future = Future()  # the worker is done reading the model's weights
        head_out: Future = Future()  # the model stream's detached features and latents

        def actor_critic_stream() -> dict[str, torch.Tensor]:
            torch.set_num_threads(1)
            try:
                encoding.work(from_back=False)
                features = torch.cat(encoding.results())
                filtering.work(from_back=False)
                tail_fz = features, torch.cat(filtering.results())
            except BaseException as e:
                tail_read.set_exception(e)
                raise
            tail_read.set_result(None)
            features, post = head_out.result()
            return self.update_actor_critic(*self._ac_inputs(features, post, tail_fz), b)

        def before_step() -> None:
            encoding.work(from_back=True)  # help with what is left
            filtering.work(from_back=True)
            tail_read.result()

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        job = self._worker().submit(actor_critic_stream)
        try:
            features, post = self._head_posterior(head)
            head_out.set_result((features, post))
            stats = self._model_step(head, post, before_step=before_step)
            stats.update(job.result())
        except BaseException as e:
            if not head_out.done():
                head_out.set_exception(e)
            wait([job])  # never leave the worker running on a half-updated agent
            raise
        finally:
            torch.set_num_threads(threads)
        self.model_stream_encoded = sum(chunks[i][1] - chunks[i][0] for i in encoding.from_back)
        self.model_stream_filtered = sum(pieces[i][1] - pieces[i][0] for i in filtering.from_back)
        return stats


class _SharedWork:
    """Independent pieces of work two threads take from opposite ends of one queue, each
    piece's result (or error) in a future."""

    def __init__(self, pieces: list[Callable[[], torch.Tensor]]):
        self.pieces = pieces
        self.todo = deque(range(len(pieces)))
        self.futures: list[Future] = [Future() for _ in pieces]
        self.from_back: list[int] = []  # the pieces taken from the back
        self._lock = threading.Lock()

    def work(self, from_back: bool) -> None:
        """Take pieces from the front (or the back) and run them until none are left."""
        while True:
            with self._lock:
                if not self.todo:
                    return
                i = self.todo.pop() if from_back else self.todo.popleft()
            if from_back:
                self.from_back.append(i)
            try:
                self.futures[i].set_result(self.pieces[i]())
            except BaseException as e:
                self.futures[i].set_exception(e)
                raise

    def results(self) -> list[torch.Tensor]:
        """Every piece's result, in order, once all are done (raising a piece's error)."""
        return [f.result() for f in self.futures]
