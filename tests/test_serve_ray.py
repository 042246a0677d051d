"""The same app on Ray Serve with 2 replicas on a local Ray (loopback): both replicas come up, scores are exact."""

from __future__ import annotations


import httpx
import pytest

from e2h.config import ServeSection
from e2h.text_format import format_prompt
from e2h.loopback import free_port

pytestmark = [pytest.mark.distributed, pytest.mark.slow]  # ~45-65 s on 2 shared cores (Ray start + 2 replicas)


def test_ray_serve_two_replicas_score_like_the_offline_scorer(serve_tiny_prm):
    pytest.importorskip("ray.serve", reason='Ray Serve not installed (pip install "ray[serve]")')
    from ray import serve

    from e2h.serve import ray_serve
    from prm.score import PRMScorer

    settings = ServeSection(prm_path=serve_tiny_prm, device="cpu", port=free_port(), cpus_per_replica=0.5,
                            max_wait_ms=5)
    url = ray_serve.start(settings, replicas=2, num_cpus=2)
    try:
        status = serve.status().applications[ray_serve.APP_NAME]
        deployment = next(iter(status.deployments.values()))
        assert status.status == "RUNNING"
        assert deployment.replica_states.get("RUNNING") == 2
        assert httpx.get(url + "/readyz", timeout=30).status_code == 200  # replicas serve only once warmed up
        solutions = ["We add 2 and 2.\n\n# Answer\n\n4", "It is 5.\n\n# Answer\n\n5"]
        r = httpx.post(url + "/v1/score", json={"problem": "What is 2 + 2?", "solutions": solutions}, timeout=60)
        assert r.status_code == 200, r.text
        want = PRMScorer(serve_tiny_prm, device="cpu").score(format_prompt("What is 2 + 2?"), solutions)
        for got, w in zip(r.json()["solutions"], want):
            assert got["step_scores"] == pytest.approx(w, abs=1e-5)
        r = httpx.post(url + "/v1/score", json={"problem": "p", "solutions": []}, timeout=30)
        assert r.status_code == 422  # the same error handling behind Ray's proxy
    finally:
        ray_serve.stop()
