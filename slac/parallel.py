"""How one SLAC update uses the CPU's threads: the schedules, chosen once per run by :func:`choose`.

An update has two streams of work, each drawing its noise from its own generator: the model
stream (Eq. 7 on the first ``model_batch_size`` sequences) and the actor-critic stream (the
no-grad posterior of the other sequences, then Eq. 8-10). Both read the model as it is before
the update, so they can run concurrently, one thread each, computing exactly what they compute
one after the other (:class:`Overlapped`, the two sharing the encoding and the filtering of the
other sequences so that they end together); or, where the model's part dominates and in
pretraining, the model's sequences are split in halves over the two threads and the gradients
summed (:class:`SplitModel`, equal up to fp32 rounding). With one thread, or off a CPU,
:class:`Sequential` runs the agent's own one-thread update.

Every schedule works through the agent's public pieces (model posterior and step, model
gradients of a share, latents without gradients, the actor-critic step); the agent knows nothing
of threads.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait

import torch

from slac.agent import ModelGradients, SLACAgent
from slac.replay import Batch

Stats = dict[str, torch.Tensor]

# A sequence's model update (encoder, decoder, backward) costs about 7x its no-grad encoding at
# the paper's sizes (docs/performance.md): it decides which two-thread schedule ends sooner.
MODEL_COST_PER_SEQUENCE = 7


def two_threads_available(agent: SLACAgent) -> bool:
    """Whether updates may split their work over two threads (``--overlap`` on a CPU, torch
    set to two or more threads)."""
    return (agent.cfg.overlap and agent.device.type == "cpu"
            and torch.get_num_threads() >= 2)


def choose(agent: SLACAgent, name: str | None = None) -> Sequential | SplitModel | Overlapped:
    """The schedule of ``agent``'s updates: ``name`` if given, else the shorter of the two
    two-thread schedules by the cost model above when two threads are available."""
    if name is None:
        cfg = agent.cfg
        model, other = cfg.model_batch_size, cfg.batch_size - cfg.model_batch_size
        if agent.model is None or not two_threads_available(agent):  # one stream
            name = "sequential"
        elif other and MODEL_COST_PER_SEQUENCE * model / 2 + other >= max(
                MODEL_COST_PER_SEQUENCE * model, other):
            name = "overlap"
        else:
            name = "split"
    schedules = {"sequential": Sequential, "split": SplitModel, "overlap": Overlapped}
    if name not in schedules:
        raise ValueError(f"unknown schedule {name!r}; choose from: {', '.join(schedules)}")
    return schedules[name](agent)


class Sequential:
    """Every update on the calling thread, with all of torch's threads."""

    name = "sequential"

    def __init__(self, agent: SLACAgent):
        self.agent = agent

    def update(self, batch: Batch) -> Stats:
        return self.agent.update(batch)

    def update_model(self, batch: Batch) -> Stats:
        return self.agent.update_model(batch)

    def close(self) -> None:
        pass


class Worker:
    """The second thread, started on first use, and the split of Eq. (7) over both threads."""

    def __init__(self, agent: SLACAgent):
        self.agent = agent
        self.pool: ThreadPoolExecutor | None = None

    def submit(self, fn: Callable[[], object]) -> Future:
        if self.pool is None:
            self.pool = ThreadPoolExecutor(1, thread_name_prefix="slac-worker")
        return self.pool.submit(fn)

    def split_model_gradients(self, b: Batch, worker_first: Callable[[], object] | None = None
                              ) -> tuple[list[ModelGradients], object]:
        """Both halves of Eq. (7) on ``b``, one thread each, with the noise of the whole batch
        drawn first; the worker runs ``worker_first()`` before its half (reading the weights as
        they are before the step). The two halves, and what ``worker_first`` returned."""
        agent, n = self.agent, b.frames.shape[0]
        noise = agent.model_noise(n, b.frames.shape[1])

        def worker_part():
            torch.set_num_threads(1)
            before = worker_first() if worker_first is not None else None
            return agent.model_gradients(b, n // 2, n, noise), before

        threads = torch.get_num_threads()
        try:
            job = self.submit(worker_part)
            try:
                torch.set_num_threads(1)
                first = agent.model_gradients(b, 0, n // 2, noise)
            finally:
                second, before = job.result()
        finally:
            torch.set_num_threads(threads)
        return [first, second], before

    def update_model(self, batch: Batch) -> Stats:
        """One step of Eq. (7) with the batch's halves on one thread each, gradients summed:
        the same draws as the one-thread step, the gradient equal up to fp32 rounding."""
        b = batch.to(self.agent.device)
        if b.frames.shape[0] < 2:
            return self.agent.update_model(b)
        shares, _ = self.split_model_gradients(b)
        return self.agent.step_model(shares).stats

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None


class SplitModel:
    """Where the model's part dominates (e.g. the cpu preset's batch of 64): the model's
    sequences in halves on the two threads, the worker first computing the other sequences'
    latents with the weights from before the step; then the actor-critic on both threads. Same
    draws as the one-thread update; the model's gradient equal up to fp32 rounding."""

    name = "split"

    def __init__(self, agent: SLACAgent):
        self.agent = agent
        self.worker = Worker(agent)

    def update(self, batch: Batch) -> Stats:
        agent = self.agent
        b = batch.to(agent.device)
        mb = agent.cfg.model_batch_size
        head, tail = b.rows(0, mb), b.rows(mb)
        if not tail.frames.shape[0]:
            return agent.update(b)
        shares, tail_fz = self.worker.split_model_gradients(
            head, worker_first=lambda: agent.latents(tail))
        step = agent.step_model(shares)
        ac_in = (torch.cat([step.features, tail_fz[0]]), torch.cat([step.z, tail_fz[1]]))
        step.stats.update(agent.update_actor_critic(*ac_in, b))
        return step.stats

    def update_model(self, batch: Batch) -> Stats:
        return self.worker.update_model(batch)

    def close(self) -> None:
        self.worker.close()


def encoder_chunks(agent: SLACAgent, sequences: int, steps: int) -> list[tuple[int, int]]:
    """The other sequences of the overlapped schedule in pieces the two streams share: whole
    encoder chunks where the sequence length allows (8 sequences of 9 frames), so each encoder
    pass sees the same frames as one pass over all of them."""
    chunk = agent.model.encoder.CHUNK
    step = chunk // math.gcd(chunk, steps)  # sequences per whole number of chunks
    if step > 8:
        step = max(1, chunk // steps)
    return [(i, min(i + step, sequences)) for i in range(0, sequences, step)]


class Overlapped:
    """The model stream on the calling thread and the actor-critic stream on the worker, one
    thread each: exactly the one-thread update's computation.

    The two streams share the actor-critic's no-grad work on the other sequences, a piece at a
    time: its encoding in encoder chunks, then its posterior in ``agent.filter_pieces``. The
    actor-critic stream takes pieces from the front, the model stream, once its gradient is
    computed, from the back, until none are left; so the streams end together on any machine
    and at any sizes, without a cost model. Results do not depend on who computed a piece (the
    filter's draws are made first, for all sequences); how many sequences the model stream
    encoded and filtered is left in ``model_stream_encoded`` and ``model_stream_filtered``.
    Pretraining's model-only updates split the batch as :class:`SplitModel` does."""

    name = "overlap"

    def __init__(self, agent: SLACAgent):
        self.agent = agent
        self.worker = Worker(agent)
        self.model_stream_encoded = 0
        self.model_stream_filtered = 0

    def update_model(self, batch: Batch) -> Stats:
        return self.worker.update_model(batch)

    def close(self) -> None:
        self.worker.close()

    def update(self, batch: Batch) -> Stats:
        agent = self.agent
        b = batch.to(agent.device)
        mb = agent.cfg.model_batch_size
        head, tail = b.rows(0, mb), b.rows(mb)
        n, steps = tail.frames.shape[:2]
        if not n:
            return agent.update(b)
        chunks = encoder_chunks(agent, n, steps)
        encoding = SharedWork([lambda c=c: agent.encode(tail.rows(*c)) for c in chunks])
        noise = agent.actor_critic_noise(n, steps)
        pieces = agent.filter_pieces(n)
        filtering = SharedWork([
            lambda p=p: agent.filter_piece(torch.cat(encoding.results()), tail, noise, *p)
            for p in pieces])
        tail_read: Future = Future()  # the worker is done reading the model's weights
        head_out: Future = Future()  # the model stream's features and posterior

        def actor_critic_stream() -> Stats:
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
            return agent.update_actor_critic(
                *agent.actor_critic_inputs(features, post, tail_fz), b)

        def before_step() -> None:
            encoding.work(from_back=True)  # help with what is left
            filtering.work(from_back=True)
            tail_read.result()

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        job = self.worker.submit(actor_critic_stream)
        try:
            features, post = agent.model_posterior(head)
            head_out.set_result((features, post))
            stats = agent.model_step(head, post, before_step=before_step)
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


class SharedWork:
    """Independent pieces of work two threads take from opposite ends of one queue, each
    piece's result (or error) in a future."""

    def __init__(self, pieces: list[Callable[[], torch.Tensor]]):
        self.pieces = pieces
        self.todo = deque(range(len(pieces)))
        self.futures: list[Future] = [Future() for _ in pieces]
        self.from_back: list[int] = []  # the pieces taken from the back
        self.lock = threading.Lock()

    def work(self, from_back: bool) -> None:
        """Take pieces from the front (or the back) and run them until none are left."""
        while True:
            with self.lock:
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
