"""Dynamic batching across concurrent requests.

Requests put their (prompt, solution) pairs in one queue. A single worker takes pairs in arrival order while the
batch's padded size (longest pair x pairs) stays within ``max_batch_tokens`` and its pairs within
``max_batch_size``, and runs ONE scoring call for the whole batch in a
worker thread, so the event loop keeps accepting requests while the model runs. With ``max_wait_ms`` 0 (the
default) nothing waits: a pair arriving at an idle service runs at once, and pairs that queue during a forward
pass form the next batch (continuous batching), so batching never costs a lone request latency; a positive
``max_wait_ms`` holds a batch that long (from its oldest pair) for company. A request's pairs may be split across batches; the request
resumes when all of its pairs are scored; a request cancelled while it waits (its client is gone) takes its pairs
out of the queue, and a pair already taken into a batch with it is skipped::

    batcher = DynamicBatcher(scorer.score_pairs, max_batch_tokens=8192, max_wait_ms=10)
    await batcher.start()
    probs = await batcher.submit([("# Question\\n\\n1+2?\\n\\n# Solution\\n\\n", "3.\\n\\n# Answer\\n\\n3")])
    # probs == [[0.73, 0.64]]   (one list of step probabilities per pair)
"""

from __future__ import annotations

import asyncio
import collections
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Sequence

Pair = tuple[str, str]
# One result per pair: its step probabilities, or the exception that pair alone raised.
ScoreBatch = Callable[[list[Pair]], "list[list[float] | BaseException]"]


@dataclass
class _Pending:
    pair: Pair
    tokens: int
    future: asyncio.Future
    enqueued: float


@dataclass
class BatchStats:
    """What one forward batch held; passed to ``on_batch`` (metrics)."""

    size: int
    tokens: int
    seconds: float


class DynamicBatcher:
    def __init__(
        self,
        score_batch: ScoreBatch,
        *,
        max_batch_tokens: int,
        max_wait_ms: float,
        max_batch_size: int = 256,
        on_batch: Callable[[BatchStats], None] | None = None,
        on_queue_depth: Callable[[int], None] | None = None,
    ) -> None:
        if max_batch_size < 1 or max_batch_tokens < 1:
            raise ValueError("max_batch_size and max_batch_tokens must be >= 1")
        self.score_batch = score_batch
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_size = max_batch_size
        self.max_wait_s = max(max_wait_ms, 0.0) / 1000.0
        self.on_batch = on_batch
        self.on_queue_depth = on_queue_depth
        self._queue: collections.deque[_Pending] = collections.deque()
        self._arrived: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        # One thread: forward passes run one at a time (torch already uses every core for one batch).
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="e2h-batcher")

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    async def start(self) -> None:
        self._arrived = asyncio.Event()
        self._worker = asyncio.create_task(self._run(), name="e2h-batcher")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
            self._worker = None
        for pending in self._queue:
            if not pending.future.done():
                pending.future.set_exception(RuntimeError("server shutting down"))
        self._queue.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def submit(self, pairs: Sequence[Pair], tokens: Sequence[int] | None = None) -> list[list[float]]:
        """Queue pairs (with their token counts, for the batch budget) and wait for their step probabilities."""
        if self._worker is None or self._arrived is None:
            raise RuntimeError("batcher not started")
        if tokens is None:
            tokens = [len(p) + len(s) for p, s in pairs]  # a char count over-estimates tokens: safe for the budget
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        items = [_Pending(pair, max(int(n), 1), loop.create_future(), now) for pair, n in zip(pairs, tokens)]
        self._queue.extend(items)
        self._report_depth()
        self._arrived.set()
        try:
            return list(await asyncio.gather(*(item.future for item in items)))
        except asyncio.CancelledError:  # the caller gave up (its client is gone); gather cancelled the futures
            self._drop_cancelled()
            raise

    def _drop_cancelled(self) -> None:
        """Take pairs whose request gave up out of the queue now, so they neither fill a batch's budget nor show
        in the queue depth while they wait to be skipped."""
        self._queue = collections.deque(item for item in self._queue if not item.future.done())
        self._report_depth()

    def _report_depth(self) -> None:
        if self.on_queue_depth is not None:
            self.on_queue_depth(len(self._queue))

    def _full(self) -> bool:
        """Whether the queue already holds a whole batch, by the budget _take_batch applies (padded tokens)."""
        size = longest = 0
        for item in self._queue:
            size += 1
            longest = max(longest, item.tokens)
            if size >= self.max_batch_size or longest * size >= self.max_batch_tokens:
                return True
        return False

    def _take_batch(self) -> list[_Pending]:
        """Pairs in arrival order (a request's pairs stay together, so it finishes in as few batches as it can)
        while the batch's PADDED size (longest pair x pairs: what the forward pass computes) stays within the
        token budget; the scorer sorts a batch by length inside, so padding stays small."""
        batch: list[_Pending] = []
        longest = 0
        while self._queue and len(batch) < self.max_batch_size:
            item = self._queue[0]
            if item.future.done():  # its request gave up (client gone): no forward pass
                self._queue.popleft()
                continue
            if batch and max(longest, item.tokens) * (len(batch) + 1) > self.max_batch_tokens:
                break  # a single pair over the budget still runs, alone
            batch.append(self._queue.popleft())
            longest = max(longest, item.tokens)
        return batch

    async def _run(self) -> None:
        assert self._arrived is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._arrived.clear()
                await self._arrived.wait()
                continue
            deadline = self._queue[0].enqueued + self.max_wait_s
            while not self._full():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), remaining)
                except asyncio.TimeoutError:
                    break
            batch = self._take_batch()
            self._report_depth()
            if not batch:
                continue
            started = time.monotonic()
            try:
                results = await loop.run_in_executor(self._executor, self.score_batch, [b.pair for b in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"scorer returned {len(results)} results for {len(batch)} pairs")
            except Exception as err:  # the model failed: fail this batch's requests, keep serving
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(err)
                continue
            for item, probs in zip(batch, results):
                if item.future.done():
                    continue
                if isinstance(probs, BaseException):  # this pair alone failed; its batch-mates did not
                    item.future.set_exception(probs)
                else:
                    item.future.set_result(probs)
            if self.on_batch is not None:
                self.on_batch(BatchStats(len(batch), sum(b.tokens for b in batch), time.monotonic() - started))
