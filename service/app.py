"""The FastAPI app: `create_app(settings)` loads the model once (lifespan) and wires routes.

HTTP status codes are decided here and in routes/, nowhere else: library errors
(ImageError, ValueError from Scene.from_json, ...) carry messages written for people,
and the service passes them on as `{"detail": message}`.

Middleware, outermost first: metrics (every request, refusals included), admission (503
before an inference request's body is read), the body size limit.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from air3d.model import Predictor
from air3d.service.admission import Admission, AdmissionMiddleware
from air3d.service.batching import MicroBatcher
from air3d.service.deps import require_api_key
from air3d.service.docs import install_docs
from air3d.service.limits import BodyLimitMiddleware
from air3d.service.metrics import Metrics
from air3d.service.openapi import install_openapi
from air3d.service.requests import RequestMetricsMiddleware
from air3d.service.routes import health, infer, render, shapes
from air3d.service.routes.errors import install_error_handlers
from air3d.service.settings import Settings
from air3d.service.state import ServiceState
from air3d.service.worker import InferenceProcess, lower_http_priority

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
        worker = None
        if settings.infer_process:  # loads its own copy of settings.checkpoint
            threads = settings.resolved_torch_threads()
            worker = await asyncio.to_thread(
                InferenceProcess, settings.checkpoint, str(model.device), threads
            )
            lower_http_priority()
        admission = Admission(settings.max_concurrent)
        batcher = MicroBatcher(
            worker or model.infer,
            max_batch=settings.max_batch,
            max_wait_s=settings.max_wait_ms / 1000.0,
            queue_size=settings.queue_size,
            on_batch=metrics.observe_batch,
            on_depth=metrics.queue_depth.set,
            more_coming=lambda: admission.arriving > 0,
        )
        batcher.start()
        decoders = ThreadPoolExecutor(settings.decode_threads, thread_name_prefix="air3d-decode")
        state = ServiceState(settings, model, metrics, batcher, admission, decoders, ready=True)
        app.state.service = state
        log.info("serving %s (%s) on %s", model.name, model.checkpoint_hash, model.device)
        try:
            yield
        finally:
            state.ready = False
            await batcher.stop()
            decoders.shutdown(wait=False, cancel_futures=True)
            if worker is not None:
                worker.close()

    app = FastAPI(
        title="air3d",
        version="0.1.0",
        summary="Attend-Infer-Repeat inverse graphics of tabletop scenes",
        lifespan=lifespan,
        docs_url=None,  # served from local files below (docs.py), not from a CDN
        redoc_url=None,
    )
    app.state.settings, app.state.metrics = settings, metrics
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_upload_bytes)
    app.add_middleware(AdmissionMiddleware)
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)
    install_error_handlers(app)

    # The key's security scheme is declared (and checked) only when a key is set.
    keyed = [Depends(require_api_key)] if settings.api_key else []
    for module in (infer, render, shapes):
        app.include_router(module.router, dependencies=keyed)
    app.include_router(health.router)
    install_docs(app)
    install_openapi(app, predictor)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
