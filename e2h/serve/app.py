"""The reranking service: a FastAPI app over the PRM scorer (batched), e2h.rerank and the grader.

    settings = load_config("configs/serve.yaml").serve
    uvicorn.Server(uvicorn_config(create_app(settings), settings)).run()    # e2h.serve.server: slow-socket limits

Routes (schemas and examples in e2h/serve/schemas.py, live docs at /docs):
    POST /v1/score    step texts, step probabilities and min/prod/last/mean per solution
    POST /v1/rerank   ranked solutions, chosen answer, vote mass per answer; grader verdicts when ``gold`` is given
    GET  /healthz     200 while the process is up (answers at once, even while the model loads)
    GET  /readyz      200 only after the model is loaded AND a warm-up forward pass ran; 503 before
    GET  /metrics     Prometheus text

Statuses: 413 a request limit (message and ``limit`` name it: max_body_bytes, max_solutions,
max_solution_chars, max_problem_chars, model_max_tokens); 415 a body not sent as ``Content-Type:
application/json``; 422 malformed JSON or a wrong field (message names it); 503 not ready; 499 (in the metrics
only) the client closed its connection first: its queued solutions are dropped, never scored; 500 never leaves
the process in a bad state (the handler catches, logs, answers, and keeps the keep-alive connection open).

The model loads in a background thread (``background_load=True``, uvicorn) or before startup completes
(``background_load=False``, Ray Serve: a replica takes traffic only once warm). Model output, solutions and gold
answers are untrusted text: they only reach the grader (no eval, process-based timeouts) and the tokenizer.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, Awaitable, Callable, TypeVar

import numpy as np

from e2h.config import ServeSection
from e2h.grading import completion_answer, grade_many, normalize_answer
from e2h.rerank import aggregate_steps, select_answer, select_steps, vote_table
from e2h.serve.backend import Backend, Encoded, PRMBackend
from e2h.serve.batcher import BatchStats, DynamicBatcher
from e2h.serve.metrics import CONTENT_TYPE, ServeMetrics
from e2h.serve.schemas import (
    DEFAULT_AGGREGATION, Aggregates, AnswerVotes, ErrorResponse, RankedSolution, RerankRequest, RerankResponse,
    ScoredSolution, ScoreRequest, ScoreResponse, Verdict)
from e2h.text_format import ends_with_answer, format_prompt, split_solution

try:  # module level: FastAPI resolves a route's string annotations (``request: Request``) in this namespace
    from fastapi import Request
except ImportError:  # create_app says what to install
    Request = Any  # type: ignore[misc,assignment]

log = logging.getLogger("e2h.serve")
AGGREGATIONS = ("min", "prod", "last", "mean")


class LimitExceeded(Exception):
    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit
        self.message = message


class NotReady(Exception):
    pass


class ClientGone(Exception):
    """The client closed its connection before its answer was ready."""


class NotJSON(Exception):
    """A body sent without ``Content-Type: application/json`` (FastAPI would not parse it as JSON)."""


class ServiceState:
    """Everything one app instance owns: settings, model (once loaded), batcher, metrics, grader threads."""

    def __init__(self, settings: ServeSection, backend_factory: Callable[[], Backend]) -> None:
        self.settings = settings
        self.backend_factory = backend_factory
        self.backend: Backend | None = None
        self.ready = False
        self.load_error: str | None = None
        self.metrics = ServeMetrics()
        self.batcher: DynamicBatcher | None = None
        self.grader_pool = ThreadPoolExecutor(max_workers=max(1, settings.grader_threads), thread_name_prefix="grade")

    def load(self) -> None:
        """Load the model and run one warm-up forward; only then is the service ready."""
        started = time.monotonic()
        try:
            backend = self.backend_factory()
            backend.warm_up()
        except Exception as err:
            self.load_error = f"{type(err).__name__}: {err}"
            log.exception("model load failed")
            return
        self.backend = backend
        self.ready = True
        self.metrics.ready.set(1)
        log.info("model %s ready in %.1f s", backend.name, time.monotonic() - started)

    def _score_batch(self, items: list[Encoded]) -> list[list[float] | Exception]:
        assert self.backend is not None
        return self.backend.score_encoded(items)

    def make_batcher(self) -> DynamicBatcher:
        s = self.settings
        metrics = self.metrics

        def on_batch(stats: BatchStats) -> None:
            metrics.batch_size.observe(stats.size)
            metrics.batch_tokens.observe(stats.tokens)
            metrics.batch_seconds.observe(stats.seconds)
            metrics.solutions.inc(stats.size)

        return DynamicBatcher(
            self._score_batch,
            max_batch_tokens=s.max_batch_tokens,
            max_wait_ms=s.max_wait_ms,
            max_batch_size=s.max_batch_size,
            on_batch=on_batch,
            on_queue_depth=metrics.queue_depth.set,
        )


# ---------------------------------------------------------------------------------------------------- limits


def check_limits(request: ScoreRequest, settings: ServeSection) -> None:
    if len(request.solutions) > settings.max_solutions:
        raise LimitExceeded(
            "max_solutions", f"{len(request.solutions)} solutions > max_solutions={settings.max_solutions}"
        )
    if len(request.problem) > settings.max_problem_chars:
        raise LimitExceeded(
            "max_problem_chars",
            f"problem has {len(request.problem)} chars > max_problem_chars={settings.max_problem_chars}",
        )
    for i, text in enumerate(request.solutions):
        if len(text) > settings.max_solution_chars:
            raise LimitExceeded(
                "max_solution_chars",
                f"solutions[{i}] has {len(text)} chars > max_solution_chars={settings.max_solution_chars}",
            )


class BodyLimitMiddleware:
    """413 for bodies over ``max_bytes``: by Content-Length before reading, or while reading a chunked body."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _reject(self, send, detail: str) -> None:
        from starlette.responses import JSONResponse

        body = ErrorResponse(error="limit_exceeded", message=detail, limit="max_body_bytes").model_dump()
        await JSONResponse(body, status_code=413)({"type": "http"}, None, send)  # type: ignore[arg-type]

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or self.max_bytes <= 0:
            await self.app(scope, receive, send)
            return
        from starlette.exceptions import HTTPException

        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            if not length.isdigit():
                await self._reject(send, "invalid Content-Length header")
                return
            if int(length) > self.max_bytes:
                await self._reject(send, f"body of {int(length)} bytes > max_body_bytes={self.max_bytes}")
                return
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # FastAPI re-raises HTTPException from body reading; the app's handler answers 413
                    raise HTTPException(413, f"body > max_body_bytes={self.max_bytes}")
            return message

        await self.app(scope, limited_receive, send)


class InternalErrorMiddleware:
    """A 500 answered here, inside the app, instead of by Starlette's outermost handler, which re-raises to the
    server after answering: uvicorn then closes the connection, and a pooled client's next request on it fails.
    Registered first, so it sits just outside the routes' exception handlers."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked_send)
        except Exception as exc:
            if started:  # half an answer is out: only closing the connection can tell the client
                raise
            from starlette.responses import JSONResponse

            log.exception("unhandled error on %s", scope.get("path", ""))
            body = ErrorResponse(error="internal_error", message=f"{type(exc).__name__}: {exc}").model_dump()
            await JSONResponse(body, status_code=500)(scope, receive, send)


class MetricsMiddleware:
    """Requests by route and status, and latency (plain ASGI: exceptions from body reading pass through unwrapped)."""

    def __init__(self, app, metrics: ServeMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observed_send(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            route = self.metrics.route_label(scope.get("path", ""))
            self.metrics.requests.labels(route, str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - started)


# ---------------------------------------------------------------------------------------------------- scoring


async def _score_request(state: ServiceState, request: ScoreRequest) -> list[ScoredSolution]:
    if not state.ready or state.batcher is None or state.backend is None:
        raise NotReady(state.load_error or "model is loading")
    check_limits(request, state.settings)
    steps = [split_solution(text) for text in request.solutions]  # once: encoding, scoring and the reply use them
    encoded = await asyncio.to_thread(state.backend.encode, format_prompt(request.problem), steps)
    max_tokens = getattr(state.backend, "max_tokens", None)
    for i, item in enumerate(encoded):
        if max_tokens and item.tokens > max_tokens:
            raise LimitExceeded(
                "model_max_tokens",
                f"solutions[{i}] is {item.tokens} tokens with the prompt > the model's {max_tokens}",
            )
    answers_future = asyncio.get_running_loop().run_in_executor(state.grader_pool, _extract_answers, request.solutions)
    try:
        step_scores = await state.batcher.submit(encoded, [item.tokens for item in encoded])
    except BaseException:
        answers_future.cancel()  # a cancelled request (client gone) needs no answers either
        raise
    answers, keys = await answers_future
    for i, (s, p) in enumerate(zip(steps, step_scores)):
        if len(s) != len(p) or not p:
            raise RuntimeError(f"solutions[{i}]: the scorer gave {len(p)} step scores for {len(s)} steps")
    convention = state.settings.steps or "reasoning_and_answer"  # score.steps (e2h.serve.commands.serve_settings)
    chosen = [select_steps(p, ends_with_answer(s), convention) for s, p in zip(steps, step_scores)]
    aggregates = {how: aggregate_steps(chosen, how) for how in AGGREGATIONS}
    return [
        ScoredSolution(
            index=i,
            steps=steps[i],
            step_scores=step_scores[i],
            aggregates=Aggregates(**{how: float(aggregates[how][i]) for how in AGGREGATIONS}),
            answer=answers[i],
            answer_key=keys[i],
        )
        for i in range(len(request.solutions))
    ]


def _extract_answers(texts: list[str]) -> tuple[list[str | None], list[str | None]]:
    """Final answers and their grader-normalised keys (the form answers are grouped by)."""
    answers = [completion_answer(text) for text in texts]
    return answers, [normalize_answer(a) if a is not None else None for a in answers]


# ---------------------------------------------------------------------------------------------------- clients

T = TypeVar("T")
JSON_CONTENT_TYPES = ("application/json",)


async def wait_for_disconnect(receive) -> None:
    """Return once the client has closed its connection. Once the body is read, the server's ``receive()`` blocks
    until then (uvicorn and Starlette answer ``http.disconnect``), so waiting costs nothing."""
    while (await receive())["type"] != "http.disconnect":
        await asyncio.sleep(0.01)  # a server that answers at once with empty bodies must not spin the loop


async def unless_client_gone(receive, work: Awaitable[T]) -> T:
    """Await ``work``, but cancel it as soon as the client disconnects: the cancelled batcher futures are never
    scored, so a client that gave up costs no forward pass (the batcher drops cancelled pairs)."""
    work_task = asyncio.ensure_future(work)
    watcher = asyncio.create_task(wait_for_disconnect(receive))
    try:
        await asyncio.wait({work_task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if not work_task.done() and watcher.exception() is not None:
            await work_task  # the connection cannot be watched: just wait for the answer
    finally:
        watcher.cancel()
        if not work_task.done():
            work_task.cancel()  # the client left, or this handler itself was cancelled
    if work_task.done():
        return work_task.result()
    await asyncio.wait({work_task})  # the cancellation reaches the batcher's futures before the handler answers
    raise ClientGone("the client closed the connection before the answer was ready")


def require_json(content_type: str | None) -> None:
    """Refuse a body FastAPI would not parse as JSON, saying which header to send (curl -d sends a form type)."""
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type in JSON_CONTENT_TYPES or media_type.endswith("+json"):
        return
    got = f"Content-Type is {content_type!r}" if content_type else "the Content-Type header is missing"
    raise NotJSON(f"{got}: send the JSON body with the header 'Content-Type: application/json'")


# ---------------------------------------------------------------------------------------------------- reranking


def rerank_scored(
    scored: list[ScoredSolution], method: str, aggregation: str
) -> tuple[int | None, list[RankedSolution], list[AnswerVotes]]:
    """Rank by the aggregate; group answers by their grader-normalised key and choose by ``method`` (e2h.rerank)."""
    scores = np.array([getattr(s.aggregates, aggregation) for s in scored], dtype=np.float64)
    keys = [s.answer_key for s in scored]
    order = sorted(range(len(scored)), key=lambda i: (-scores[i], i))
    ranked = [
        RankedSolution(rank=r, index=i, score=float(scores[i]), answer=scored[i].answer,
                       step_scores=scored[i].step_scores)
        for r, i in enumerate(order)
    ]
    votes = [AnswerVotes(answer=scored[members[0]].answer or "", key=keys[members[0]] or "", count=len(members),
                         mass=mass, solutions=members) for mass, members in vote_table(keys, scores, method)]
    _, chosen = select_answer(keys, scores, method)
    return chosen, ranked, votes


def _grade(solutions: list[str], gold: str, timeout_s: float, workers: int) -> list[Verdict]:
    """Grader verdicts (killable worker processes with timeouts; repeated answers are graded once)."""
    verdicts = grade_many([(text, gold) for text in solutions], timeout_s=timeout_s, workers=workers)
    return [Verdict(correct=bool(v.correct), reason=str(v.reason), pred_answer=v.pred_answer) for v in verdicts]


# ---------------------------------------------------------------------------------------------------- the app


def create_app(
    settings: ServeSection,
    *,
    backend_factory: Callable[[], Backend] | None = None,
    background_load: bool = True,
):
    """Build the FastAPI app. ``backend_factory`` defaults to loading ``settings.prm_path`` with prm.score."""
    try:
        from fastapi import FastAPI
    except ImportError as err:
        raise RuntimeError("e2h serve needs fastapi and uvicorn: pip install 'e2h[serve]'") from err

    if backend_factory is None:
        if not settings.prm_path:
            raise ValueError("serve.prm_path is not set")
        path, device = settings.prm_path, settings.device
        backend_factory = lambda: PRMBackend.load(path, device)  # noqa: E731
    state = ServiceState(settings, backend_factory)
    app = FastAPI(
        title="e2h reranking service",
        version="1",
        description="Process-reward-model step scores and reranking (best-of-N, weighted voting, majority).",
        lifespan=_lifespan(state, background_load),
    )
    app.state.e2h = state
    _add_error_handlers(app)
    _add_probe_routes(app, state)
    _add_work_routes(app, state)
    app.add_middleware(InternalErrorMiddleware)  # innermost: added first
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)  # outermost: counts 413s and 500s too
    return app


def _lifespan(state: ServiceState, background_load: bool):
    """Start the batcher and load the model (in the background, or before startup completes); stop both."""
    @asynccontextmanager
    async def lifespan(app):
        state.batcher = state.make_batcher()
        await state.batcher.start()
        if background_load:
            threading.Thread(target=state.load, name="e2h-load-model", daemon=True).start()
        else:
            await asyncio.to_thread(state.load)
            if not state.ready:
                raise RuntimeError(f"model failed to load: {state.load_error}")
        yield
        await state.batcher.stop()
        state.grader_pool.shutdown(wait=False, cancel_futures=True)

    return lifespan


def _error(status: int, kind: str, message: str, limit: str | None = None):
    from fastapi.responses import JSONResponse  # fastapi is an extra (e2h[serve]); create_app checked it

    return JSONResponse(ErrorResponse(error=kind, message=message, limit=limit).model_dump(), status_code=status)


def _add_error_handlers(app) -> None:
    """Every error answers an ErrorResponse with the status the module docstring lists."""
    from fastapi.exceptions import RequestValidationError  # fastapi is an extra (e2h[serve])
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.requests import ClientDisconnect

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        return _error(422, "validation_error", describe_validation_errors(exc.errors()))

    @app.exception_handler(LimitExceeded)
    async def _limit(request: Request, exc: LimitExceeded):
        return _error(413, "limit_exceeded", exc.message, exc.limit)

    @app.exception_handler(NotReady)
    async def _not_ready(request: Request, exc: NotReady):
        return _error(503, "not_ready", f"model not ready: {exc}")

    @app.exception_handler(NotJSON)
    async def _not_json(request: Request, exc: NotJSON):
        return _error(415, "unsupported_media_type", str(exc))

    @app.exception_handler(ClientGone)
    async def _client_gone(request: Request, exc: ClientGone):
        # nobody reads this answer; the status (nginx's "client closed request") shows in the metrics
        return _error(499, "client_gone", str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 413:
            return _error(413, "limit_exceeded", str(exc.detail), "max_body_bytes")
        if exc.status_code == 400 and isinstance(exc.__cause__, ClientDisconnect):  # gone while sending its body
            return await _client_gone(request, ClientGone("the client closed the connection while sending"))
        if exc.status_code == 400 and exc.__cause__ is not None:  # FastAPI could not decode the body (bad UTF-8)
            cause = exc.__cause__
            return _error(422, "validation_error", f"malformed JSON body: {type(cause).__name__}: {cause}")
        return _error(exc.status_code, "http_error", str(exc.detail))

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception):
        log.exception("unhandled error on %s", request.url.path)
        return _error(500, "internal_error", f"{type(exc).__name__}: {exc}")


def _add_probe_routes(app, state: ServiceState) -> None:
    """/healthz, /readyz and /metrics."""
    from fastapi.responses import Response  # fastapi is an extra (e2h[serve])

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "alive"}

    @app.get("/readyz", responses={503: {"model": ErrorResponse}})
    async def readyz():
        if state.ready:
            return {"status": "ready", "model": state.backend.name if state.backend else None}
        return _error(503, "not_ready", state.load_error or "model is loading")

    @app.get("/metrics")
    async def metrics():
        state.metrics.queue_depth.set(state.batcher.queue_depth if state.batcher else 0)
        return Response(state.metrics.render(), media_type=CONTENT_TYPE)


def _add_work_routes(app, state: ServiceState) -> None:
    """/v1/score and /v1/rerank: JSON bodies only, abandoned when the client goes."""
    from fastapi import Depends  # fastapi is an extra (e2h[serve])

    errors = {status: {"model": ErrorResponse} for status in (413, 415, 422, 503)}

    def json_body(request: Request) -> None:
        require_json(request.headers.get("content-type"))

    @app.post("/v1/score", response_model=ScoreResponse, responses=errors, dependencies=[Depends(json_body)])
    async def score(body: ScoreRequest, request: Request) -> ScoreResponse:
        solutions = await unless_client_gone(request.receive, _score_request(state, body))
        return ScoreResponse(model=state.backend.name, solutions=solutions)  # type: ignore[union-attr]

    @app.post("/v1/rerank", response_model=RerankResponse, responses=errors, dependencies=[Depends(json_body)])
    async def rerank(body: RerankRequest, request: Request) -> RerankResponse:
        return await unless_client_gone(request.receive, _rerank_request(state, body))


async def _rerank_request(state: ServiceState, body: RerankRequest) -> RerankResponse:
    scored = await _score_request(state, body)
    aggregation = body.aggregation or DEFAULT_AGGREGATION[body.method]
    chosen, ranked, votes = rerank_scored(scored, body.method, aggregation)
    chosen_correct = None
    if body.gold is not None:
        verdicts = await asyncio.get_running_loop().run_in_executor(
            state.grader_pool,
            _grade,
            body.solutions,
            body.gold,
            state.settings.grader_timeout_s,
            state.settings.grader_threads,
        )
        for item in ranked:
            item.verdict = verdicts[item.index]
        chosen_correct = verdicts[chosen].correct if chosen is not None else False
    return RerankResponse(
        model=state.backend.name,  # type: ignore[union-attr]
        method=body.method,
        aggregation=aggregation,
        chosen_index=chosen,
        chosen_answer=scored[chosen].answer if chosen is not None else None,
        ranked=ranked,
        answers=votes,
        chosen_correct=chosen_correct,
    )


def describe_validation_errors(errors: list[dict]) -> str:
    """'solutions.2: Input should be a valid string; problem: Field required' (the 'body' prefix dropped)."""
    parts = []
    for item in errors:
        loc = [str(p) for p in item.get("loc", ()) if p != "body"]
        if item.get("type") == "json_invalid":
            ctx = item.get("ctx") or {}
            parts.append(f"malformed JSON at position {loc[-1] if loc else '?'}: {ctx.get('error', item.get('msg'))}")
            continue
        field = ".".join(loc) or "body"
        parts.append(f"{field}: {item.get('msg')}")
    return "; ".join(parts) or "invalid request"
