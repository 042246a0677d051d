"""Prometheus metrics of one app instance (own registry, so several apps in one process do not collide).

    e2h_serve_requests_total{route="/v1/score",status="200"} 12
    e2h_serve_request_latency_seconds_bucket{route="/v1/score",le="0.05"} 9
    e2h_serve_batch_size_bucket{le="8"} 3          # solutions per forward batch
    e2h_serve_queue_depth 0                        # solutions waiting for a batch
    e2h_serve_ready 1
"""

from __future__ import annotations

ROUTES = ("/v1/score", "/v1/rerank", "/healthz", "/readyz", "/metrics", "/docs", "/openapi.json")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ServeMetrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter(
            "e2h_serve_requests", "HTTP requests by route and status", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "e2h_serve_request_latency_seconds",
            "request latency",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "e2h_serve_batch_size",
            "solutions per forward batch",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=self.registry,
        )
        self.batch_tokens = Histogram(
            "e2h_serve_batch_tokens",
            "tokens per forward batch",
            buckets=(64, 256, 1024, 4096, 16384, 65536),
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "e2h_serve_batch_seconds", "forward time per batch", registry=self.registry
        )
        self.queue_depth = Gauge("e2h_serve_queue_depth", "solutions waiting for a batch", registry=self.registry)
        self.ready = Gauge("e2h_serve_ready", "1 once the model is loaded and warmed up", registry=self.registry)
        self.solutions = Counter("e2h_serve_solutions", "solutions scored", registry=self.registry)

    @staticmethod
    def route_label(path: str) -> str:
        return path if path in ROUTES else "other"  # bounded label values whatever clients send

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)
