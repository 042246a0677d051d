"""The reranking service over real HTTP: uvicorn on 127.0.0.1, the real app, a tiny PRM.

Scores must equal the offline scorer's; reranking must agree with e2h.rerank offline and pick known answers;
every error path answers its documented status; the server survives all of them.
"""

from __future__ import annotations

import asyncio
import json
import re

import httpx
import pytest

from e2h.config import ServeSection
from e2h.text_format import format_prompt, split_solution

pytestmark = pytest.mark.distributed

PROBLEM = "What is 3 + 4?"
SOLUTIONS = [
    "We add 3 and 4.\n\nThat gives 7.\n\n# Answer\n\n7",
    "3 + 4 = 8.\n\n# Answer\n\n8",
    "Start at 3.\n\nCount 4 more: 4, 5, 6, 7.\n\nSo it is 7.\n\n# Answer\n\n7",
    "The sum is 34.\n\n# Answer\n\n34",
    "We think hard but give no answer.",
    "  Odd spacing.\n\n\n\nExtra blank lines. 🙂\n\n# Answer\n\n7\n\nText after the answer.",
    "# Answer\n\n7",
]
LIMITS = dict(max_solutions=8, max_solution_chars=2000, max_problem_chars=500, max_body_bytes=40_000)


def settings(prm_path: str, **overrides) -> ServeSection:
    return ServeSection(prm_path=prm_path, device="cpu", max_wait_ms=20, grader_timeout_s=2.0,
                        **{**LIMITS, **overrides})


@pytest.fixture(scope="module")
def server(serve_tiny_prm, serve_thread_server):
    from e2h.serve.app import create_app

    return serve_thread_server(create_app(settings(serve_tiny_prm))).wait_ready()


@pytest.fixture(scope="module")
def offline_scorer(serve_tiny_prm):
    from prm.score import PRMScorer

    return PRMScorer(serve_tiny_prm, device="cpu")


def post(server, route, body, **kwargs):
    return httpx.post(server.url + route, json=body, timeout=60, **kwargs)


# ------------------------------------------------------------------------------------------------ scoring


def test_scores_equal_the_offline_scorer(server, offline_scorer):
    from e2h import rerank

    r = post(server, "/v1/score", {"problem": PROBLEM, "solutions": SOLUTIONS})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["api_version"] == "v1"
    expected = offline_scorer.score(format_prompt(PROBLEM), SOLUTIONS)
    assert [s["index"] for s in body["solutions"]] == list(range(len(SOLUTIONS)))
    for text, got, want in zip(SOLUTIONS, body["solutions"], expected):
        assert got["steps"] == split_solution(text)
        assert len(got["step_scores"]) == len(got["steps"])
        assert got["step_scores"] == pytest.approx(want, abs=1e-5)
        for how in ("min", "prod", "last", "mean"):
            assert got["aggregates"][how] == pytest.approx(rerank.aggregate_steps([want], how)[0], abs=1e-5)
    assert [s["answer"] for s in body["solutions"]] == ["7", "8", "7", "34", None, "7", "7"]
    # a random tiny PRM: the scores differ between steps (else equality above would prove little)
    assert len({round(x, 6) for s in body["solutions"] for x in s["step_scores"]}) > 3


def test_concurrent_requests_are_batched_together_and_still_exact(server, offline_scorer):
    problems = [f"What is {a} + {a + 1}?" for a in range(12)]
    bodies = [{"problem": p, "solutions": [f"We add.\n\n# Answer\n\n{2 * a + 1}", f"Guess.\n\n# Answer\n\n{a}"]}
              for a, p in enumerate(problems)]

    def batch_counts():
        text = httpx.get(server.url + "/metrics", timeout=10).text
        return (float(re.search(r"^e2h_serve_batch_size_sum (\S+)$", text, re.M).group(1)),
                float(re.search(r"^e2h_serve_batch_size_count (\S+)$", text, re.M).group(1)))

    async def send_all():
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            return await asyncio.gather(*(client.post("/v1/score", json=b) for b in bodies))

    solutions_before, batches_before = batch_counts()
    responses = asyncio.run(send_all())
    solutions_after, batches_after = batch_counts()
    assert solutions_after - solutions_before == 24
    assert batches_after - batches_before < 12  # fewer forward batches than requests: batched across requests
    for body, r in zip(bodies, responses):
        assert r.status_code == 200, r.text
        want = offline_scorer.score(format_prompt(body["problem"]), body["solutions"])
        for got, w in zip(r.json()["solutions"], want):
            assert got["step_scores"] == pytest.approx(w, abs=1e-5)


# ------------------------------------------------------------------------------------------------ reranking


@pytest.mark.parametrize("method, aggregation", [("best_of_n", "min"), ("best_of_n", "last"),
                                                 ("weighted_vote", "prod"), ("weighted_vote", "mean"),
                                                 ("majority", None)])
def test_rerank_agrees_with_offline_rerank(server, offline_scorer, method, aggregation):
    from e2h import rerank
    from e2h.grading import extract_answer, normalize_answer

    body = {"problem": PROBLEM, "solutions": SOLUTIONS, "method": method}
    if aggregation:
        body["aggregation"] = aggregation
    r = post(server, "/v1/rerank", body)
    assert r.status_code == 200, r.text
    out = r.json()
    how = aggregation or {"best_of_n": "min", "weighted_vote": "prod", "majority": "prod"}[method]
    assert out["aggregation"] == how
    steps = offline_scorer.score(format_prompt(PROBLEM), SOLUTIONS)
    scores = rerank.aggregate_steps(steps, how).tolist()
    answers = [extract_answer(t) for t in SOLUTIONS]
    keys = [normalize_answer(a) if a is not None else None for a in answers]
    expected_key, expected = rerank.select_answer(keys, scores, method)
    assert out["chosen_index"] == expected
    assert out["chosen_answer"] == answers[expected]
    assert out["ranked"][0]["index"] == max(range(len(scores)), key=lambda i: (scores[i], -i))
    assert [x["index"] for x in out["ranked"]] == sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    assert [x["score"] for x in out["ranked"]] == pytest.approx(sorted(scores, reverse=True), abs=1e-5)


def test_majority_groups_equivalent_answers_and_grades_against_gold(server):
    # 1/2 is written three ways (3 votes), 3 twice: majority is 1/2 whatever the PRM thinks.
    solutions = ["Half.\n\n# Answer\n\n\\frac{1}{2}", "It is 3.\n\n# Answer\n\n3", "Point five.\n\n# Answer\n\n0.5",
                 "Again 3.\n\n# Answer\n\n3", "One over two.\n\n# Answer\n\n\\dfrac12"]
    r = post(server, "/v1/rerank", {"problem": "What is 1/2?", "solutions": solutions, "method": "majority",
                                    "gold": "\\frac{1}{2}"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["chosen_index"] in (0, 2, 4)
    assert out["answers"][0]["count"] == 3 and sorted(out["answers"][0]["solutions"]) == [0, 2, 4]
    assert out["answers"][0]["mass"] == 3.0 and out["answers"][1]["count"] == 2
    assert out["chosen_correct"] is True
    verdicts = {x["index"]: x["verdict"]["correct"] for x in out["ranked"]}
    assert verdicts == {0: True, 1: False, 2: True, 3: False, 4: True}


def test_hostile_text_is_just_a_wrong_answer(server, tmp_path):
    marker = tmp_path / "pwned"
    evil = f"__import__('os').system('touch {marker}')"
    solutions = [f"Run it.\n\n# Answer\n\n{evil}", "Big.\n\n# Answer\n\n9**9**9**9", "Ok.\n\n# Answer\n\n2"]
    r = post(server, "/v1/rerank", {"problem": "What is 1+1?", "solutions": solutions, "method": "majority",
                                    "gold": evil})
    assert r.status_code == 200, r.text
    assert not marker.exists()
    r = post(server, "/v1/rerank", {"problem": "What is 1+1?", "solutions": solutions, "gold": "2"})
    assert r.status_code == 200, r.text
    verdicts = {x["index"]: x["verdict"]["correct"] for x in r.json()["ranked"]}
    assert verdicts == {0: False, 1: False, 2: True}
    assert not marker.exists()


# ------------------------------------------------------------------------------------------------ error paths

BIG = "x" * 2001
# JSON's escape for a lone surrogate (json.dumps would write the same); the request, after a valid solution
SURROGATE_SOLUTION = b'{"problem": "x", "solutions": ["ok", "a\\ud800b\\n\\n# Answer\\n\\n7"]}'


@pytest.mark.parametrize(
    "route, content, status, needle",
    [
        ("/v1/score", {"problem": "p", "solutions": ["s\n\n# Answer\n\n1"] * 9}, 413, "max_solutions"),
        ("/v1/score", {"problem": "p", "solutions": ["ok", BIG]}, 413, "max_solution_chars"),
        ("/v1/rerank", {"problem": "p" * 501, "solutions": ["ok"]}, 413, "max_problem_chars"),
        ("/v1/score", {"problem": "p", "solutions": ["ok", "1 2 " * 450]}, 413, "model_max_tokens"),
        ("/v1/score", {"problem": "p", "solutions": ["y" * 1999] * 8, "pad": "z" * 30_000}, 413, "max_body_bytes"),
        ("/v1/score", b'{"problem": "p", "solutions": ["a", ', 422, "malformed JSON"),
        ("/v1/score", b"\xff\xfe not json", 422, "JSON"),
        ("/v1/score", {"solutions": ["a"]}, 422, "problem"),
        ("/v1/score", {"problem": "p", "solutions": ["a", 5]}, 422, "solutions.1"),
        ("/v1/score", {"problem": "p", "solutions": "a"}, 422, "solutions"),
        ("/v1/score", {"problem": "p", "solutions": []}, 422, "solutions"),
        ("/v1/score", {"problem": "p", "solutions": ["a", "   "]}, 422, "blank"),
        ("/v1/score", {"problem": "   ", "solutions": ["a"]}, 422, "problem"),
        ("/v1/score", {"problem": "p", "solutions": ["a"], "extra": 1}, 422, "extra"),
        ("/v1/score", [1, 2], 422, "body"),
        ("/v1/rerank", {"problem": "p", "solutions": ["a"], "method": "vibes"}, 422, "method"),
        ("/v1/rerank", {"problem": "p", "solutions": ["a"], "aggregation": "max"}, 422, "aggregation"),
        ("/v1/rerank", {"problem": "p", "solutions": ["a"], "gold": "g" * 1001}, 422, "gold"),
        # a lone surrogate (not Unicode text; the tokenizer raised on it: a 500) names its field and position
        ("/v1/score", SURROGATE_SOLUTION, 422, "solutions.1: Value error, lone surrogate U+D800 at character 1"),
        ("/v1/rerank", SURROGATE_SOLUTION, 422, "solutions.1: Value error, lone surrogate U+D800 at character 1"),
        ("/v1/score", b'{"problem": "x\\udfff", "solutions": ["a"]}', 422, "problem"),
        ("/v1/rerank", b'{"problem": "x", "solutions": ["a"], "gold": "\\ud800"}', 422, "gold"),
    ],
)
def test_error_paths_answer_their_documented_status(server, route, content, status, needle):
    if isinstance(content, bytes):
        r = httpx.post(server.url + route, content=content, headers={"content-type": "application/json"},
                       timeout=30)
    else:
        r = httpx.post(server.url + route, content=json.dumps(content), headers={"content-type": "application/json"},
                       timeout=30)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == ("limit_exceeded" if status == 413 else "validation_error")
    assert needle in body["message"] + str(body.get("limit")), body
    if status == 413:
        assert body["limit"] == needle


def test_a_solution_one_token_past_the_context_is_refused(server, offline_scorer):
    """The limit counts the tokens the scorer encodes (the trailing separator after a last reasoning step
    included), so one token past the model's context is a 413 and exactly the context is scored."""
    prompt = format_prompt("p")
    context = offline_scorer.model.net.config.max_position_embeddings

    def scored_tokens(text):
        return len(offline_scorer.encode(prompt, split_solution(text))[0])

    filler = "1 2 34 5 " * 300  # one reasoning step, no answer: the layout appends a separator
    at_context = past_context = None
    for end in range(1, len(filler)):
        text = filler[:end].strip()
        n = scored_tokens(text)
        if n == context:
            at_context = text
        if n == context + 1:
            past_context = text
            break
    assert at_context and past_context, "no prefix of the filler scores to exactly context / context + 1 tokens"
    raw_tokens = len(offline_scorer.tokenizer(prompt + past_context)["input_ids"])
    assert raw_tokens <= context  # the old count (prompt + text, no separator) let this one through

    r = post(server, "/v1/score", {"problem": "p", "solutions": [past_context]})
    assert r.status_code == 413, r.text
    assert r.json()["limit"] == "model_max_tokens"
    assert f"solutions[0] is {context + 1} tokens" in r.json()["message"]
    r = post(server, "/v1/score", {"problem": "p", "solutions": [at_context]})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("headers, needle", [
    ({}, "the Content-Type header is missing"),
    ({"content-type": "application/x-www-form-urlencoded"}, "Content-Type is 'application/x-www-form-urlencoded'"),
    ({"content-type": "text/plain"}, "Content-Type is 'text/plain'"),
])
def test_a_json_body_without_the_json_content_type_says_which_header_to_send(server, headers, needle):
    body = json.dumps({"problem": PROBLEM, "solutions": SOLUTIONS[:1]})
    for route in ("/v1/score", "/v1/rerank"):
        r = httpx.post(server.url + route, content=body, headers=headers, timeout=30)
        assert r.status_code == 415, r.text
        assert r.json()["error"] == "unsupported_media_type"
        assert needle in r.json()["message"]
        assert "send the JSON body with the header 'Content-Type: application/json'" in r.json()["message"]
    # with the header (and a charset) the same body is scored
    r = httpx.post(server.url + "/v1/score", content=body, timeout=60,
                   headers={"content-type": "application/json; charset=utf-8"})
    assert r.status_code == 200, r.text


def test_chunked_body_over_the_limit_is_413(server):
    def chunks():
        yield b'{"problem": "p", "solutions": ["'
        for _ in range(50):
            yield b"y" * 1000
        yield b'"]}'

    r = httpx.post(server.url + "/v1/score", content=chunks(), headers={"content-type": "application/json"},
                   timeout=30)
    assert r.status_code == 413, r.text
    assert r.json()["limit"] == "max_body_bytes"


def test_wrong_method_and_unknown_route(server):
    assert httpx.get(server.url + "/v1/score", timeout=10).status_code == 405
    assert httpx.get(server.url + "/v2/score", timeout=10).status_code == 404


def test_server_survives_bad_input_and_counts_it(server):
    assert httpx.get(server.url + "/healthz", timeout=10).json() == {"status": "alive"}
    assert httpx.get(server.url + "/readyz", timeout=10).status_code == 200
    r = post(server, "/v1/score", {"problem": PROBLEM, "solutions": SOLUTIONS[:1]})
    assert r.status_code == 200
    metrics = httpx.get(server.url + "/metrics", timeout=10)
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    for name in ("e2h_serve_requests_total", "e2h_serve_request_latency_seconds_bucket", "e2h_serve_batch_size_bucket",
                 "e2h_serve_queue_depth", "e2h_serve_ready 1.0"):
        assert name in text
    assert re.search(r'e2h_serve_requests_total\{route="/v1/score",status="200"\} [1-9]', text)
    assert re.search(r'e2h_serve_requests_total\{route="/v1/score",status="413"\} [1-9]', text)
    assert re.search(r'e2h_serve_requests_total\{route="/v1/score",status="422"\} [1-9]', text)


def test_openapi_documents_versioned_routes_with_examples(server):
    spec = httpx.get(server.url + "/openapi.json", timeout=10).json()
    assert {"/v1/score", "/v1/rerank", "/healthz", "/readyz", "/metrics"} <= set(spec["paths"])
    schemas = spec["components"]["schemas"]
    assert schemas["ScoreRequest"]["examples"] and schemas["RerankRequest"]["examples"]
