"""The dynamic batcher on its own (no model, no sockets): batches form across concurrent requests within the
token / size budgets, results go back to the right request, a failing batch does not stop the service."""

from __future__ import annotations

import asyncio
import threading

import pytest

from e2h.serve.batcher import DynamicBatcher


class RecordingScorer:
    """Scores a pair as [len(solution)]; records each batch it was given (and from which thread)."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.batches: list[list[tuple[str, str]]] = []
        self.threads: set[str] = set()
        self.fail_on = fail_on

    def __call__(self, pairs):
        self.batches.append(list(pairs))
        self.threads.add(threading.current_thread().name)
        if self.fail_on is not None and any(s == self.fail_on for _, s in pairs):
            raise RuntimeError("model exploded")
        return [[float(len(s)), float(len(p))] for p, s in pairs]


def run(coro):
    return asyncio.run(coro)


async def _with_batcher(scorer, body, **kwargs):
    batcher = DynamicBatcher(scorer, **kwargs)
    await batcher.start()
    try:
        return await body(batcher)
    finally:
        await batcher.stop()


def test_concurrent_requests_share_one_batch_and_get_their_own_results():
    scorer = RecordingScorer()
    requests = [[(f"p{r}", "x" * (r * 3 + k + 1)) for k in range(2)] for r in range(3)]

    async def body(batcher):
        return await asyncio.gather(*(batcher.submit(pairs, [1] * len(pairs)) for pairs in requests))

    results = run(_with_batcher(scorer, body, max_batch_tokens=100, max_wait_ms=200))
    assert [len(b) for b in scorer.batches] == [6]  # three requests, one forward batch
    for pairs, result in zip(requests, results):
        assert result == [[float(len(s)), float(len(p))] for p, s in pairs]
    assert all(name.startswith("e2h-batcher") for name in scorer.threads)  # not on the event loop


@pytest.mark.parametrize(
    "max_batch_tokens, max_batch_size, tokens, expected_sizes",
    [
        (10, 256, [5, 5, 5, 5, 5], [2, 2, 1]),  # token budget
        (1000, 2, [1, 1, 1, 1, 1], [2, 2, 1]),  # size budget
        (1000, 1, [1, 1, 1], [1, 1, 1]),  # batch size 1 (the benchmark baseline)
        (10, 256, [50, 3, 3], [1, 2]),  # a pair over the budget still runs, alone
    ],
)
def test_batches_respect_budgets(max_batch_tokens, max_batch_size, tokens, expected_sizes):
    scorer = RecordingScorer()
    pairs = [("p", "s" * (i + 1)) for i in range(len(tokens))]

    async def body(batcher):
        return await batcher.submit(pairs, tokens)

    result = run(_with_batcher(scorer, body, max_batch_tokens=max_batch_tokens, max_batch_size=max_batch_size,
                               max_wait_ms=50))
    assert [len(b) for b in scorer.batches] == expected_sizes
    assert result == [[float(len(s)), 1.0] for _, s in pairs]


def test_a_failing_batch_fails_its_requests_only():
    scorer = RecordingScorer(fail_on="boom")

    async def body(batcher):
        bad = await asyncio.gather(batcher.submit([("p", "boom")]), return_exceptions=True)
        good = await batcher.submit([("p", "fine")])
        return bad[0], good

    bad, good = run(_with_batcher(scorer, body, max_batch_tokens=100, max_wait_ms=0))
    assert isinstance(bad, RuntimeError) and "exploded" in str(bad)
    assert good == [[4.0, 1.0]]


def test_a_lone_request_is_not_held_past_max_wait():
    scorer = RecordingScorer()

    async def body(batcher):
        loop = asyncio.get_running_loop()
        started = loop.time()
        await batcher.submit([("p", "s")])
        return loop.time() - started

    elapsed = run(_with_batcher(scorer, body, max_batch_tokens=10_000, max_wait_ms=100))
    assert 0.09 <= elapsed < 2.0


def test_submit_before_start_is_an_error():
    batcher = DynamicBatcher(RecordingScorer(), max_batch_tokens=10, max_wait_ms=0)
    with pytest.raises(RuntimeError, match="not started"):
        run(batcher.submit([("p", "s")]))


def test_one_failing_pair_fails_only_its_own_request():
    """The backend retries a failed batch pair by pair; the batcher hands each pair its own outcome."""
    from e2h.serve.backend import PRMBackend

    class FussyScorer:  # stands in for prm.score.PRMScorer: refuses one text
        def encode(self, prompt, steps):  # (ids, scored positions, the solution's first token), as PRMScorer's
            return steps, list(range(len(steps))), 0

        def score_encoded(self, rows):
            if any("poison" in step for steps, _, _ in rows for step in steps):
                raise ValueError("cannot score poison")
            return [[0.5] * len(steps) for steps, _, _ in rows]

    backend = PRMBackend(FussyScorer(), name="fussy")

    async def body(batcher):
        return await asyncio.gather(*(batcher.submit(backend.encode(prompt, [steps]), [1])
                                      for prompt, steps in (("p", ["a", "b"]), ("p", ["poison"]), ("q", ["c"]))),
                                    return_exceptions=True)

    ok1, bad, ok2 = run(_with_batcher(backend.score_encoded, body, max_batch_tokens=1000, max_wait_ms=100))
    assert ok1 == [[0.5, 0.5]] and ok2 == [[0.5]]
    assert isinstance(bad, ValueError) and "poison" in str(bad)


def test_a_cancelled_request_leaves_the_queue_and_is_never_scored():
    """A request cancelled while its pairs wait (its client went away) takes them out of the queue at once; the
    model sees only the pairs of requests still waiting."""
    scorer = RecordingScorer()
    depths: list[int] = []

    async def body(batcher):
        batcher.on_queue_depth = depths.append
        gone = asyncio.create_task(batcher.submit([("p", "gone-1"), ("p", "gone-2")]))
        kept = asyncio.create_task(batcher.submit([("q", "kept")]))
        await asyncio.sleep(0.01)  # both queued; the batch is still waiting for its 200 ms
        assert batcher.queue_depth == 3
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        assert batcher.queue_depth == 1 and depths[-1] == 1
        return await kept

    assert run(_with_batcher(scorer, body, max_batch_tokens=10_000, max_wait_ms=200)) == [[4.0, 1.0]]
    assert scorer.batches == [[("q", "kept")]]


def test_the_token_budget_counts_padding():
    """A batch costs its longest pair times its pairs: [10, 10, 30] under a budget of 40 runs as [10, 10] and
    [30] (padded 60 > 40), though their plain sum (50) would be nearer the budget."""
    scorer = RecordingScorer()
    tokens = [10, 10, 30, 5, 5]
    pairs = [("p", "s" * n) for n in tokens]

    async def body(batcher):
        return await batcher.submit(pairs, tokens)

    result = run(_with_batcher(scorer, body, max_batch_tokens=40, max_wait_ms=0))
    assert [[len(s) for _, s in b] for b in scorer.batches] == [[10, 10], [30], [5, 5]]
    assert result == [[float(n), 1.0] for n in tokens]


def test_pairs_arriving_during_a_forward_pass_form_the_next_batch():
    """Continuous batching (max_wait_ms 0): a lone request runs at once, alone; the requests that arrive while
    it is being scored run together next."""
    import time

    class SlowScorer(RecordingScorer):
        def __init__(self):
            super().__init__()
            self.started = threading.Event()

        def __call__(self, pairs):
            self.started.set()
            time.sleep(0.5)
            return super().__call__(pairs)

    scorer = SlowScorer()

    async def body(batcher):
        first = asyncio.ensure_future(batcher.submit([("p", "first")]))
        # wait until the first pair's forward pass is running (a fixed sleep raced a loaded machine)
        assert await asyncio.get_running_loop().run_in_executor(None, scorer.started.wait, 10.0)
        later = [batcher.submit([("p", f"later-{i}")]) for i in range(5)]
        return await asyncio.gather(first, *later)

    run(_with_batcher(scorer, body, max_batch_tokens=10_000, max_wait_ms=0))
    assert [len(b) for b in scorer.batches] == [1, 5]
