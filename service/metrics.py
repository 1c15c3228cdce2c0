"""Prometheus metrics of one app, in a registry of its own (several apps, one process)."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class Metrics:
    """Request counts, request latency, batch sizes, forward-pass time and queue depth."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "air3d_requests", "HTTP requests answered", ["method", "route", "status"],
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "air3d_request_seconds", "HTTP request latency", ["method", "route"],
            registry=self.registry,
        )  # fmt: skip
        self.batch_size = Histogram(
            "air3d_batch_size", "images per forward pass", buckets=BATCH_BUCKETS,
            registry=self.registry,
        )  # fmt: skip
        self.forward_seconds = Histogram(
            "air3d_forward_seconds", "time of one batched forward pass", registry=self.registry
        )
        self.queue_depth = Gauge(
            "air3d_queue_depth", "images waiting for a forward pass", registry=self.registry
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.forward_seconds.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
