"""Request counts and latency for /metrics, as a plain ASGI middleware (no per-request task)."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from air3d.service.admission import ADMITTED_PATHS
from air3d.service.metrics import Metrics


class RequestMetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers if the app raises before starting a response

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.observe_request(
                scope["method"], route_label(scope), status, time.perf_counter() - started
            )


def route_label(scope: Scope) -> str:
    """The route's template (bounded label values); refused inference requests never reach
    the router, so they are labelled with their (fixed) path."""
    route = scope.get("route")
    if route is not None:
        return route.path
    return scope["path"] if scope["path"] in ADMITTED_PATHS else "unmatched"
