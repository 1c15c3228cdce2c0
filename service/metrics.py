"""Prometheus metrics of one app, in a registry of its own (several apps, one process)."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
DECODE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """Request counts and latency, refusals, decode time, batch sizes, forward-pass time,
    queue depth, and the process (process_resident_memory_bytes, process_cpu_seconds_total:
    prometheus_client's process collector, which reads /proc and so reports on Linux only)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self):
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.requests = Counter(
            "air3d_requests", "HTTP requests answered", ["method", "route", "status"],
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "air3d_request_seconds", "HTTP request latency", ["method", "route"],
            registry=self.registry,
        )  # fmt: skip
        self.refused = Counter(
            "air3d_refused", "inference requests refused before their body was read (503)",
            ["reason"], registry=self.registry,
        )  # fmt: skip
        self.decode_seconds = Histogram(
            "air3d_decode_seconds", "decoding and resizing one uploaded image",
            buckets=DECODE_BUCKETS, registry=self.registry,
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
        self.in_flight = Gauge(
            "air3d_inference_requests_in_flight", "inference requests admitted and not answered",
            registry=self.registry,
        )  # fmt: skip

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.forward_seconds.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
