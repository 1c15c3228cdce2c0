"""The FastAPI app: `create_app(settings)` loads the model once (lifespan) and wires routes.

HTTP status codes are decided here and in routes/, nowhere else: library errors
(ImageError, ValueError from Scene.from_json, ...) carry messages written for people,
and the service passes them on as `{"detail": message}`.
"""

from __future__ import annotations

import logging
import time
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from air3d.model import Predictor
from air3d.service.batching import MicroBatcher
from air3d.service.limits import BodyLimitMiddleware
from air3d.service.metrics import Metrics
from air3d.service.routes import health, infer, render, shapes
from air3d.service.settings import Settings
from air3d.service.state import ServiceState

STATIC = Path(__file__).resolve().parent / "static"
log = logging.getLogger("air3d.service")


def create_app(settings: Settings | None = None, predictor: Predictor | None = None) -> FastAPI:
    """The service. `predictor`: serve this one instead of loading settings.checkpoint."""
    settings = settings or Settings.from_env()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        model = predictor or Predictor.from_checkpoint(
            settings.checkpoint, settings.resolved_device()
        )
        model.warmup()
        batcher = MicroBatcher(
            model.infer,
            max_batch=settings.max_batch,
            max_wait_s=settings.max_wait_ms / 1000.0,
            queue_size=settings.queue_size,
            on_batch=metrics.observe_batch,
            on_depth=metrics.queue_depth.set,
        )
        batcher.start()
        state = ServiceState(settings, model, metrics, batcher, ready=True)
        app.state.service = state
        log.info("serving %s (%s) on %s", model.name, model.checkpoint_hash, model.device)
        try:
            yield
        finally:
            state.ready = False
            await batcher.stop()

    app = FastAPI(
        title="air3d",
        version="0.1.0",
        summary="Attend-Infer-Repeat inverse graphics of tabletop scenes",
        lifespan=lifespan,
    )
    app.state.settings, app.state.metrics = settings, metrics
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_upload_bytes)

    @app.middleware("http")
    async def count_requests(request: Request, call_next):
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")  # the template: bounded label values
        metrics.observe_request(
            request.method, path, response.status_code, time.perf_counter() - started
        )
        return response

    for module in (infer, render, shapes, health):
        app.include_router(module.router)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
