"""Service fixtures: the tiny checkpoint served by an app, a client, example images."""

from __future__ import annotations

import io
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from air3d.model import Predictor
from air3d.service import Settings, create_app

EXAMPLES = Path(__file__).resolve().parents[2] / "service" / "static" / "examples"


@pytest.fixture(scope="session")
def predictor(tiny_checkpoint) -> Predictor:
    return Predictor.from_checkpoint(tiny_checkpoint, "cpu")


def make_app(predictor: Predictor, **settings):
    """The app on this predictor, run in this process (a worker process would load a file)."""
    settings = {"infer_process": False, **settings}
    return create_app(Settings(checkpoint=Path("unused.pt"), device="cpu", **settings), predictor)


@pytest.fixture
def client(predictor):
    with TestClient(make_app(predictor)) as client:
        yield client


@asynccontextmanager
async def async_client(app):
    """An httpx client on the app in this event loop, with the app's lifespan running."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


def example_png(index: int = 0) -> bytes:
    return (EXAMPLES / f"{index}.png").read_bytes()


def encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def metric(source, name: str, default: float | None = None) -> float:
    """The value of one sample of /metrics, e.g. 'air3d_batch_size_count' (text or client)."""
    text = source if isinstance(source, str) else source.get("/metrics").text
    for line in text.splitlines():
        sample, _, value = line.rpartition(" ")
        if sample == name:
            return float(value)
    if default is not None:
        return default
    raise KeyError(f"{name} not in /metrics")
