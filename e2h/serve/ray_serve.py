"""The same FastAPI app on Ray Serve, N replicas behind Ray's HTTP proxy (scale-out beyond one process).

    url = start(settings, replicas=2)        # local Ray on loopback, or address= an existing cluster
    httpx.post(url + "/v1/score", json={...})
    stop()

Each replica builds the app itself (``create_app`` runs on the replica, so the model loads there, once) and
loads synchronously: Ray routes traffic to a replica only after its model is loaded and warmed up. Each replica
batches its own requests; Ray's proxy spreads requests over replicas.
"""

from __future__ import annotations

import os

import signal
import threading

from e2h.config import ServeSection
from e2h.loopback import LOOPBACK
from e2h.ray_cluster import LOCAL, start_ray
from e2h.serve.backend import resolve_device

APP_NAME = "e2h"


class _Ingress:
    """Ray Serve wraps this class with the app's routes; it holds no state of its own."""


def build_application(settings: ServeSection, replicas: int):
    try:
        from ray import serve
    except ImportError as err:
        raise RuntimeError('Ray Serve is not installed: pip install "e2h[ray]"') from err
    from e2h.serve.app import create_app  # local: imports fastapi (e2h[serve])

    def builder():  # a plain function: Ray calls it on each replica (a partial would be taken for the app itself)
        return create_app(settings, background_load=False)

    num_gpus = 1 if settings.device == "cuda" or (settings.device == "auto" and resolve_device("auto") == "cuda") else 0
    deployment = serve.deployment(
        name="e2h-rerank",
        num_replicas=replicas,
        ray_actor_options={"num_cpus": settings.cpus_per_replica, "num_gpus": num_gpus},
        health_check_period_s=10,
    )(serve.ingress(builder)(_Ingress))
    return deployment.bind()


def start(settings: ServeSection, replicas: int, address: str | None = None, num_cpus: int | None = None) -> str:
    """Start (or join) Ray, deploy the app with ``replicas`` replicas, return its base URL once every replica is up."""
    from ray import serve  # ray is an extra (e2h[ray])

    # Ray Serve gives its HTTP proxy 5 s to report ready, then kills and restarts it: on a loaded machine
    # (a busy 2-core CI box) it never gets there. Processes started by start_ray below inherit these.
    os.environ.setdefault("RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S", "60")
    os.environ.setdefault("RAY_SERVE_PROXY_HEALTH_CHECK_TIMEOUT_S", "60")
    node_ip = LOOPBACK if settings.host == LOOPBACK else None  # loopback service, loopback cluster
    start_ray(address or LOCAL, num_cpus=num_cpus, node_ip=node_ip, need="e2h serve --ray")
    serve.start(http_options={"host": settings.host, "port": settings.port})
    serve.run(build_application(settings, replicas), name=APP_NAME, route_prefix="/", blocking=False)
    return f"http://{settings.host}:{settings.port}"


def stop() -> None:
    import ray
    from ray import serve

    try:
        serve.shutdown()
    finally:
        ray.shutdown()


def serve_forever(settings: ServeSection, replicas: int, address: str | None = None) -> None:
    url = start(settings, replicas, address)
    print(f"e2h serve: {replicas} Ray Serve replicas at {url} (Ctrl-C stops)", flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    stop()
