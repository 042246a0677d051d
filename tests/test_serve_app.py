"""Readiness, load failure and reranking on constructed scores, over real HTTP (uvicorn on 127.0.0.1)."""

from __future__ import annotations

import json
import math
import re
import socket
import threading
import time

import httpx
import pytest

from e2h.config import ServeSection

pytestmark = pytest.mark.distributed


class GatedBackend:
    """The real tiny PRM, but warm-up waits for the test's go-ahead; counts forward calls."""

    def __init__(self, path: str, gate: threading.Event) -> None:
        from e2h.serve.backend import PRMBackend

        self.inner = PRMBackend.load(path, "cpu")
        self.name = self.inner.name
        self.gate = gate
        self.forward_calls = 0
        self.warmed = False

    def score_encoded(self, items):
        self.forward_calls += 1
        return self.inner.score_encoded(items)

    def encode(self, prompt, solutions):
        return self.inner.encode(prompt, solutions)

    def warm_up(self):
        from e2h.serve.backend import WARM_UP_PAIR
        from e2h.text_format import split_solution

        assert self.gate.wait(30)

        assert self.score_encoded(self.encode(WARM_UP_PAIR[0], [split_solution(WARM_UP_PAIR[1])]))[0]
        self.warmed = True


def test_readiness_flips_only_after_the_warm_up_forward(serve_tiny_prm, serve_thread_server):
    from e2h.serve.app import create_app

    gate = threading.Event()
    backends = []

    def factory():
        backends.append(GatedBackend(serve_tiny_prm, gate))
        return backends[-1]

    server = serve_thread_server(create_app(ServeSection(prm_path=None), backend_factory=factory))
    body = {"problem": "What is 1+1?", "solutions": ["So 2.\n\n# Answer\n\n2"]}
    # the model loads in the background: the process is alive at once, but not ready, and refuses work
    assert httpx.get(server.url + "/healthz", timeout=10).status_code == 200
    r = httpx.get(server.url + "/readyz", timeout=10)
    assert r.status_code == 503 and r.json()["error"] == "not_ready"
    r = httpx.post(server.url + "/v1/score", json=body, timeout=10)
    assert r.status_code == 503 and r.json()["error"] == "not_ready"
    assert "e2h_serve_ready 0.0" in httpx.get(server.url + "/metrics", timeout=10).text
    gate.set()
    deadline = time.monotonic() + 30
    while httpx.get(server.url + "/readyz", timeout=10).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert backends[0].warmed and backends[0].forward_calls == 1  # ready came after one warm-up forward
    assert httpx.post(server.url + "/v1/score", json=body, timeout=30).status_code == 200
    assert "e2h_serve_ready 1.0" in httpx.get(server.url + "/metrics", timeout=10).text


def test_a_failed_load_stays_not_ready_and_says_why(serve_thread_server, tmp_path):
    from e2h.serve.app import create_app

    missing = tmp_path / "no-such-prm"
    server = serve_thread_server(create_app(ServeSection(prm_path=str(missing), device="cpu")))
    deadline = time.monotonic() + 30
    while True:
        r = httpx.get(server.url + "/readyz", timeout=10)
        assert r.status_code == 503
        if "not found" in r.json()["message"]:
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert str(missing) in r.json()["message"]
    assert httpx.get(server.url + "/healthz", timeout=10).status_code == 200


class ConstructedBackend:
    """Scores by hand: a reasoning step's score is the '[p=0.9]' written in it, the answer step's is the
    '[ans=0.8]' written anywhere in the solution (0.5 when absent), so the right choice is known in advance."""

    name = "constructed"

    def score_encoded(self, items):
        from e2h.text_format import is_answer_step

        out = []
        for item in items:
            ans = re.search(r"\[ans=([0-9.]+)\]", item.data)
            scores = []
            for step in item.steps:
                m = ans if is_answer_step(step) else re.search(r"\[p=([0-9.]+)\]", step)
                scores.append(float(m.group(1)) if m else 0.5)
            out.append(scores)
        return out

    def encode(self, prompt, solutions):
        from e2h.serve.backend import Encoded
        from e2h.text_format import format_solution

        texts = [format_solution(steps) for steps in solutions]
        return [Encoded(steps, len(prompt) + len(text), text) for steps, text in zip(solutions, texts)]

    def warm_up(self):
        pass


@pytest.fixture(scope="module")
def constructed_server(serve_thread_server):
    from e2h.serve.app import create_app

    app = create_app(ServeSection(prm_path=None, max_wait_ms=0), backend_factory=ConstructedBackend)
    return serve_thread_server(app).wait_ready()


# The paper's case study (Fig. 22) in miniature: many low-scored "36", fewer high-scored "10", one confident "7".
#   idx  steps        answer-step  answer   min   prod   last  mean
#   0    .3           .4           36       .3    .12    .4    .35
#   1    .2           .5           36       .2    .10    .5    .35
#   2    .3           .3           36       .3    .09    .3    .30
#   3    .9 .95       .8           10       .8    .684   .8    .883
#   4    .99 .6       .9           10       .6    .535   .9    .83
#   5    1.0          .85          7        .85   .85    .85   .925
CASE = [
    "[p=0.3] Try. [ans=0.4]\n\n# Answer\n\n36",
    "[p=0.2] Try. [ans=0.5]\n\n# Answer\n\n36",
    "[p=0.3] Try. [ans=0.3]\n\n# Answer\n\n36",
    "[p=0.9] Careful.\n\n[p=0.95] Check. [ans=0.8]\n\n# Answer\n\n10",
    "[p=0.99] Careful.\n\n[p=0.6] Check. [ans=0.9]\n\n# Answer\n\n10",
    "[p=1.0] Lucky. [ans=0.85]\n\n# Answer\n\n7",
]


@pytest.mark.parametrize(
    "method, aggregation, chosen_answer, chosen_index, top_mass",
    [
        ("majority", None, "36", None, 3.0),  # 3 votes
        ("weighted_vote", "prod", "10", None, 0.684 + 0.5346),  # beats 36 (0.31) and 7 (0.85)
        ("weighted_vote", "min", "10", None, 1.4),
        ("best_of_n", "min", "7", 5, None),
        ("best_of_n", "prod", "7", 5, None),
        ("best_of_n", "last", "10", 4, None),
        ("best_of_n", "mean", "7", 5, None),
    ],
)
def test_rerank_picks_the_constructed_answer(constructed_server, method, aggregation, chosen_answer, chosen_index,
                                             top_mass):
    body = {"problem": "How many?", "solutions": CASE, "method": method}
    if aggregation:
        body["aggregation"] = aggregation
    r = httpx.post(constructed_server.url + "/v1/rerank", json=body, timeout=30)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["chosen_answer"] == chosen_answer
    assert CASE[out["chosen_index"]].endswith(chosen_answer)
    if chosen_index is not None:
        assert out["chosen_index"] == chosen_index
        assert out["ranked"][0]["index"] == chosen_index
    if top_mass is not None:
        assert out["answers"][0]["answer"] == chosen_answer
        assert out["answers"][0]["mass"] == pytest.approx(top_mass, abs=1e-6)


@pytest.mark.parametrize("steps, kept", [(None, [0.9, 0.95, 0.8]), ("reasoning_and_answer", [0.9, 0.95, 0.8]),
                                         ("reasoning", [0.9, 0.95]), ("with_answer", [0.9, 0.8])])
def test_the_service_aggregates_the_steps_score_steps_selects(serve_thread_server, steps, kept):
    """serve.steps (e2h serve takes score.steps) picks what the aggregates read, through e2h.rerank.select_steps
    as `e2h score` does; step_scores still hold every step. A solution without an answer keeps all its steps."""
    from e2h.serve.app import create_app

    app = create_app(ServeSection(prm_path=None, max_wait_ms=0, steps=steps), backend_factory=ConstructedBackend)
    server = serve_thread_server(app).wait_ready()
    body = {"problem": "How many?", "solutions": [CASE[3], "[p=0.9] Careful.\n\n[p=0.6] Cut"]}
    r = httpx.post(server.url + "/v1/score", json=body, timeout=30)
    assert r.status_code == 200, r.text
    answered, cut = r.json()["solutions"]
    assert answered["step_scores"] == pytest.approx([0.9, 0.95, 0.8])
    assert answered["aggregates"] == pytest.approx(
        {"min": min(kept), "prod": math.prod(kept), "last": kept[-1], "mean": sum(kept) / len(kept)})
    assert cut["aggregates"]["min"] == pytest.approx(0.6) and cut["aggregates"]["last"] == pytest.approx(0.6)



# ---------------------------------------------------------------------------------------------- clients that go


class GatedCountingBackend(ConstructedBackend):
    """Constructed scores; a forward pass waits while ``gate`` is closed (``entered`` says one is waiting), and
    every pair it scores is counted: work done for a request shows here."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.scored: list[str] = []

    def score_encoded(self, items):
        self.entered.set()
        assert self.gate.wait(60)
        self.scored.extend(item.data for item in items)
        return super().score_encoded(items)


def metric(server, name: str, labels: str = "") -> float:
    text = httpx.get(server.url + "/metrics", timeout=10).text
    found = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def wait_until(condition, timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def raw_post(port: int, path: str, body: dict) -> "socket.socket":
    """Send one HTTP/1.1 POST on a fresh socket and return the socket without reading the answer."""
    payload = json.dumps(body).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
    return sock


def test_requests_whose_client_closed_are_never_scored(serve_thread_server):
    """The issue's case in small: while a forward pass runs, 5 clients queue 8 solutions each and close their
    sockets. Their 40 solutions must leave the queue and never reach the model; the service keeps serving."""
    from e2h.serve.app import create_app

    backend = GatedCountingBackend()
    server = serve_thread_server(create_app(ServeSection(prm_path=None, max_wait_ms=0),
                                            backend_factory=lambda: backend)).wait_ready()
    blocker: dict = {}
    first = threading.Thread(target=lambda: blocker.update(r=httpx.post(
        server.url + "/v1/score", json={"problem": "p", "solutions": ["Held.\n\n# Answer\n\n1"]}, timeout=60)))
    first.start()
    assert backend.entered.wait(30)  # the one worker is busy: whatever comes next waits in the queue
    gone = [f"Gone {c}.{k}.\n\n# Answer\n\n{k}" for c in range(5) for k in range(8)]
    sockets = [raw_post(server.port, "/v1/score" if c % 2 else "/v1/rerank",
                        {"problem": "p", "solutions": gone[c * 8:(c + 1) * 8]}) for c in range(5)]
    wait_until(lambda: metric(server, "e2h_serve_queue_depth") == 40, what="40 queued solutions")
    for sock in sockets:
        sock.close()
    wait_until(lambda: sum(metric(server, "e2h_serve_requests_total", f'{{route="{route}",status="499"}}')
                           for route in ("/v1/score", "/v1/rerank")) == 5, what="5 requests counted as gone")
    assert metric(server, "e2h_serve_queue_depth") == 0  # dropped at once, not when the worker gets to them
    backend.gate.set()
    first.join(60)
    assert blocker["r"].status_code == 200, blocker["r"].text
    r = httpx.post(server.url + "/v1/score", json={"problem": "p", "solutions": ["After.\n\n# Answer\n\n2"]},
                   timeout=60)
    assert r.status_code == 200, r.text
    assert backend.scored == ["Held.\n\n# Answer\n\n1", "After.\n\n# Answer\n\n2"]  # no forward pass for the gone
    assert metric(server, "e2h_serve_solutions_total") == 2


# ---------------------------------------------------------------------------------------------- connections


def exchange(sock: "socket.socket", path: str, body: dict) -> int:
    """One keep-alive POST on an open socket; returns the status (raises if the server closed the socket)."""
    payload = json.dumps(body).encode()
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        head += chunk
    head, rest = head.split(b"\r\n\r\n", 1)
    length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))
    while len(rest) < length:
        rest += sock.recv(65536)
    return int(head.split()[1])


class ExplodingBackend(ConstructedBackend):
    """Raises from the token count for a solution saying 'explode' (a bug the handler did not foresee)."""

    def encode(self, prompt, solutions):
        if any("explode" in step for steps in solutions for step in steps):
            raise TypeError("a tokenizer bug")
        return super().encode(prompt, solutions)


def test_a_500_keeps_the_keep_alive_connection_open(serve_thread_server):
    """A pooled client reuses its connection: an internal error must answer 500 and leave it open (uvicorn
    closes it when the error reaches the server), so the next request on it is served."""
    from e2h.serve.app import create_app

    server = serve_thread_server(create_app(ServeSection(prm_path=None, max_wait_ms=0),
                                            backend_factory=ExplodingBackend)).wait_ready()
    ok = {"problem": "p", "solutions": ["Fine.\n\n# Answer\n\n1"]}
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        assert exchange(sock, "/v1/score", ok) == 200
        assert exchange(sock, "/v1/rerank", {"problem": "p", "solutions": ["explode\n\n# Answer\n\n1"]}) == 500
        assert exchange(sock, "/v1/score", ok) == 200
        assert exchange(sock, "/v1/score", {"problem": "p", "solutions": ["a\ud800b\n\n# Answer\n\n7"]}) == 422
        assert exchange(sock, "/v1/rerank", ok) == 200
    r = httpx.post(server.url + "/v1/score", json={"problem": "p", "solutions": ["explode"]}, timeout=30)
    assert r.status_code == 500 and r.json() == {"error": "internal_error", "message": "TypeError: a tokenizer bug",
                                                 "limit": None}


class SlowBackend(ConstructedBackend):
    """Each forward pass takes ``seconds`` (longer than the request timeout: answering must not count)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def score_encoded(self, items):
        time.sleep(self.seconds)
        return super().score_encoded(items)


def closed_within(sock: "socket.socket", seconds: float) -> float:
    """Seconds until the server closes ``sock`` (reads and drops what it sends); fails after ``seconds``."""
    started = time.monotonic()
    sock.settimeout(seconds)
    while sock.recv(65536):
        pass
    return time.monotonic() - started


def test_slow_sockets_are_closed_after_the_configured_timeouts(serve_thread_server):
    from e2h.serve.app import create_app

    settings = ServeSection(prm_path=None, max_wait_ms=0, request_timeout_s=0.5, keep_alive_timeout_s=0.5)
    server = serve_thread_server(create_app(settings, backend_factory=lambda: SlowBackend(1.0)),
                                 settings).wait_ready()
    address = ("127.0.0.1", server.port)
    with socket.create_connection(address) as silent, socket.create_connection(address) as slow_headers, \
            socket.create_connection(address) as slow_body:
        slow_headers.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\n")  # ... and never the rest
        slow_body.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"problem\"")
        for sock in (silent, slow_headers, slow_body):
            assert closed_within(sock, 10) < 5
    with socket.create_connection(address, timeout=10) as sock:
        # a forward pass of 1 s > the 0.5 s request timeout: the timer stops once the request is in
        assert exchange(sock, "/v1/score", {"problem": "p", "solutions": ["Slow.\n\n# Answer\n\n1"]}) == 200
        assert closed_within(sock, 10) < 5  # then idle on keep-alive: closed after keep_alive_timeout_s
    assert httpx.get(server.url + "/healthz", timeout=10).status_code == 200
