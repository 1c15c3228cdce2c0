"""Admission before work: a busy service refuses before reading the body; decoding is
bounded (pixel budget, JPEG draft mode, decode metrics); the batch waits only for requests
on their way."""

from __future__ import annotations

import asyncio
import io
import json

import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from air3d.images import decode_image
from air3d.service.batching import MicroBatcher
from air3d.service.decoding import decode, probe
from tests.service.conftest import async_client, encode, example_png, make_app, metric
from tests.service.test_bad_input import png_header_only
from tests.service.test_batching import BlockingPredictor


def infer_scope(path: str = "/infer") -> dict:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 1), "server": ("test", 80),
        "headers": [(b"host", b"test"), (b"content-type", b"multipart/form-data; boundary=b"),
                    (b"content-length", b"1000000")],
    }  # fmt: skip


async def call_raw(app, scope: dict) -> tuple[int, dict, bool]:
    """Calls the app directly; returns (status, body, whether it ever read the body)."""
    read = False
    sent: list[dict] = []

    async def receive():
        nonlocal read
        read = True
        return {"type": "http.request", "body": b"--b--\r\n", "more_body": False}

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    status = sent[0]["status"]
    headers = {k.decode(): v.decode() for k, v in sent[0]["headers"]}
    return status, {"headers": headers, "body": json.loads(sent[1]["body"])}, read


@pytest.mark.parametrize("path", ["/infer", "/infer/batch"])
def test_over_the_concurrency_cap_is_503_without_reading_the_body(predictor, path):
    blocking = BlockingPredictor(predictor)
    app = make_app(blocking, max_batch=1, max_wait_ms=0, max_concurrent=1)

    async def main():
        async with async_client(app) as client:
            files = {"image": ("x.png", example_png(0), "image/png")}
            first = asyncio.create_task(client.post("/infer", files=files))
            while not blocking.started.is_set():
                await asyncio.sleep(0.01)
            refused = await call_raw(app, infer_scope(path))
            text = (await client.get("/metrics")).text
            blocking.release.set()
            return (await first).status_code, refused, text

    first, (status, answer, read), text = asyncio.run(main())
    assert first == 200
    assert status == 503 and not read, "the body was read before refusing"
    assert answer["headers"]["retry-after"] == "1"
    assert "too many inference requests" in answer["body"]["detail"]
    assert metric(text, 'air3d_refused_total{reason="concurrency"}') == 1
    route = f'air3d_requests_total{{method="POST",route="{path}",status="503"}}'
    assert metric(text, route) == 1


def test_full_queue_is_503_without_reading_the_body(predictor):
    app = make_app(predictor, queue_size=1)

    async def main():
        async with async_client(app):
            batcher = app.state.service.batcher
            batcher.queue.put_nowait(object())  # the queue is full (the worker is not asked)
            try:
                return await call_raw(app, infer_scope())
            finally:
                batcher.queue.get_nowait()

    status, answer, read = asyncio.run(main())
    assert status == 503 and not read
    assert "queue is full" in answer["body"]["detail"]


def test_batch_over_the_pixel_budget_is_413_before_decoding(predictor):
    with TestClient(make_app(predictor, max_pixels=16_000_000)) as client:
        files = [("images", (f"{i}.png", png_header_only(3000, 3000), "image/png"))
                 for i in range(2)]  # fmt: skip
        response = client.post("/infer/batch", files=files)
        assert response.status_code == 413
        assert response.json()["detail"] == (
            "images: 18000000 pixels in all, over the limit of 16000000 decoded pixels per "
            "request (AIR3D_MAX_PIXELS)"
        )
        assert metric(client, "air3d_decode_seconds_count", 0.0) == 0  # nothing was decoded


def test_large_jpeg_decodes_in_draft_mode_close_to_a_full_decode():
    x, y = torch.meshgrid(torch.linspace(0, 1, 3000), torch.linspace(0, 1, 4000), indexing="ij")
    pixels = (torch.stack([x, y, (x + y) / 2], -1) * 255).to(torch.uint8).numpy()
    jpeg = encode(Image.fromarray(pixels), "JPEG")
    image = probe(jpeg, 16_000_000)
    tensor = decode(image, 64)
    assert image.size == (500, 375)  # the decoder's 1/8 scale, not 4000x3000
    assert tensor.shape == (3, 64, 64)
    assert (tensor - decode_image(jpeg, 64)).abs().mean() < 0.01


def test_metrics_have_decode_time_and_the_process(client):
    client.post("/infer", files={"image": ("x.png", example_png(1), "image/png")})
    text = client.get("/metrics").text
    assert metric(text, "air3d_decode_seconds_count") == 1
    assert metric(text, "process_resident_memory_bytes") > 10_000_000
    assert metric(text, "process_cpu_seconds_total") > 0


def test_a_lone_request_does_not_wait_for_a_batch_to_fill():
    async def main():
        batcher = MicroBatcher(lambda images: [0] * len(images), 8, 30.0, 8)
        batcher.start()
        try:
            return await asyncio.wait_for(batcher.submit([torch.zeros(3, 2, 2)]), 10)
        finally:
            await batcher.stop()

    assert asyncio.run(main()) == [0]  # would time out if it waited the 30 s


def test_the_batch_waits_for_requests_on_their_way():
    sizes = []
    coming = {"n": 1}

    def infer(images):
        sizes.append(len(images))
        return [0] * len(images)

    async def main():
        batcher = MicroBatcher(infer, 8, 30.0, 8, more_coming=lambda: coming["n"] > 0)
        batcher.start()
        first = asyncio.create_task(batcher.submit([torch.zeros(3, 2, 2)]))
        await asyncio.sleep(0.2)  # the worker has the first image and waits: one is coming
        coming["n"] = 0
        second = await batcher.submit([torch.zeros(3, 2, 2)])
        await first
        await batcher.stop()
        return second

    assert asyncio.run(main()) == [0]
    assert sizes == [2]


def test_decoded_upload_matches_the_library_decode_for_png(client, predictor):
    size = predictor.image_size
    image = probe(example_png(2), 16_000_000)
    assert torch.equal(decode(image, size), decode_image(example_png(2), size))
    assert Image.open(io.BytesIO(example_png(2))).size == image.size
