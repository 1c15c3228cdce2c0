"""Admission: an inference request is refused (503, Retry-After) before its body is read.

Under overload the costly part of a refused request is not the refusal but the work done
before it: reading a multipart body and decoding an image only to find the queue full.
`AdmissionMiddleware` sits in front of everything and decides from two counters: the
requests already admitted (a cap, AIR3D_MAX_CONCURRENT) and the room in the batcher's
queue. A refused request costs a few header bytes of work and answers in microseconds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

ADMITTED_PATHS = frozenset({"/infer", "/infer/batch"})  # POST: the routes that decode and infer
ADMITTED = frozenset(("POST", path) for path in ADMITTED_PATHS)
RETRY_AFTER_S = 1
TICKET = "air3d.ticket"  # the scope key under which a request carries its Ticket


@dataclass
class Ticket:
    """One admitted request; `arrived` once its images are in the batcher's queue."""

    arrived: bool = False


class Admission:
    """Counts admitted inference requests: all of them, and those still on their way to the
    queue (being read or decoded; the batcher waits for those to fill a batch)."""

    def __init__(self, max_concurrent: int):
        self.max_concurrent = max_concurrent
        self.active = 0
        self.arriving = 0

    def refusal(self, queue_room: int) -> str | None:
        """Why a new request is refused now, or None to admit it."""
        if queue_room < 1:
            return "queue"
        if self.active >= self.max_concurrent:
            return "concurrency"
        return None

    def enter(self) -> Ticket:
        self.active += 1
        self.arriving += 1
        return Ticket()

    def arrive(self, ticket: Ticket | None) -> None:
        if ticket is not None and not ticket.arrived:
            ticket.arrived = True
            self.arriving -= 1

    def leave(self, ticket: Ticket) -> None:
        self.arrive(ticket)
        self.active -= 1


MESSAGES = {
    "queue": "the inference queue is full; retry shortly",
    "concurrency": "too many inference requests in progress; retry shortly",
}


class AdmissionMiddleware:
    """503 + Retry-After for POST /infer and /infer/batch when the service has no room.

    Until the model is loaded (no service state yet) requests pass through to the routes,
    which answer their own 503."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = None
        if scope["type"] == "http" and (scope["method"], scope["path"]) in ADMITTED:
            state = getattr(scope["app"].state, "service", None)
        if state is None or not state.ready:
            await self.app(scope, receive, send)
            return
        reason = state.admission.refusal(state.batcher.room)
        if reason is not None:
            state.metrics.refused.labels(reason).inc()
            await _refuse(send, MESSAGES[reason])
            return
        ticket = state.admission.enter()
        scope[TICKET] = ticket
        state.metrics.in_flight.set(state.admission.active)
        try:
            await self.app(scope, receive, send)
        finally:
            state.admission.leave(ticket)
            state.metrics.in_flight.set(state.admission.active)


async def _refuse(send: Send, message: str) -> None:
    body = json.dumps({"detail": message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(RETRY_AFTER_S).encode()),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})
