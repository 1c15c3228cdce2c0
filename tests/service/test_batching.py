"""Concurrent requests share forward passes; a full queue answers 503 with Retry-After."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import torch

from air3d.service.batching import MicroBatcher, QueueFullError
from tests.service.conftest import async_client, example_png, make_app, metric


def test_concurrent_requests_are_gathered_into_one_batch(predictor):
    app = make_app(predictor, max_batch=8, max_wait_ms=300, queue_size=16)

    async def main():
        async with async_client(app) as client:
            files = {"image": ("x.png", example_png(2), "image/png")}
            answers = await asyncio.gather(*(client.post("/infer", files=files) for _ in range(6)))
            return answers, (await client.get("/metrics")).text

    answers, text = asyncio.run(main())
    assert [a.status_code for a in answers] == [200] * 6
    assert len({str(a.json()["objects"]) for a in answers}) == 1  # same image, same answer
    batches = metric(text, "air3d_batch_size_count")  # warmup calls the predictor directly
    assert metric(text, "air3d_batch_size_sum") == 6  # images
    assert batches < 6, "every request ran alone"
    assert metric(text, 'air3d_batch_size_bucket{le="1.0"}') < batches  # some batch > 1


class BlockingPredictor:
    """The tiny predictor, but infer waits until released (to fill the queue on purpose)."""

    def __init__(self, predictor):
        self.inner = predictor
        self.started, self.release = threading.Event(), threading.Event()
        for name in ("world", "shapes", "name", "checkpoint_hash", "image_size", "device"):
            setattr(self, name, getattr(predictor, name))

    def warmup(self):
        pass

    def infer(self, images):
        self.started.set()
        assert self.release.wait(30), "never released"
        return self.inner.infer(images)


def test_full_queue_answers_503_with_retry_after_and_recovers(predictor):
    blocking = BlockingPredictor(predictor)
    app = make_app(blocking, max_batch=1, max_wait_ms=0, queue_size=1)

    async def main():
        async with async_client(app) as client:
            files = {"image": ("x.png", example_png(0), "image/png")}
            first = asyncio.create_task(client.post("/infer", files=files))
            while not blocking.started.is_set():  # the worker holds the first image
                await asyncio.sleep(0.01)
            second = asyncio.create_task(client.post("/infer", files=files))
            state = app.state.service
            while state.batcher.depth < 1:  # the second image waits in the queue
                await asyncio.sleep(0.01)
            refused = await client.post("/infer", files=files)
            refused_batch = await client.post(
                "/infer/batch", files=[("images", ("x.png", example_png(0), "image/png"))]
            )
            depth = metric((await client.get("/metrics")).text, "air3d_queue_depth")
            blocking.release.set()
            done = await asyncio.gather(first, second)
            after = await client.post("/infer", files=files)
            return refused, refused_batch, depth, done, after

    refused, refused_batch, depth, done, after = asyncio.run(main())
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert "queue is full" in refused.json()["detail"]
    assert refused_batch.status_code == 503
    assert depth == 1
    assert [r.status_code for r in done] == [200, 200]
    assert after.status_code == 200


def test_batcher_keeps_order_and_respects_max_batch():
    sizes = []

    def infer(images):
        sizes.append(len(images))
        return [float(image.sum()) for image in images]

    async def main():
        batcher = MicroBatcher(infer, max_batch=3, max_wait_s=0.2, queue_size=10)
        batcher.start()
        images = [torch.full((3, 2, 2), float(i)) for i in range(7)]
        results = await batcher.submit(images)
        with pytest.raises(QueueFullError):
            await batcher.submit([torch.zeros(3, 2, 2)] * 11)
        await batcher.stop()
        return results

    results = asyncio.run(main())
    assert results == [12.0 * i for i in range(7)]
    assert max(sizes) == 3 and sum(sizes) == 7


def test_batcher_passes_an_error_to_every_waiting_request_and_lives_on():
    calls = []

    def infer(images):
        calls.append(len(images))
        if len(calls) == 1:
            raise RuntimeError("boom")
        return list(range(len(images)))

    async def main():
        batcher = MicroBatcher(infer, max_batch=4, max_wait_s=0.05, queue_size=8)
        batcher.start()
        with pytest.raises(RuntimeError, match="boom"):
            await batcher.submit([torch.zeros(3, 2, 2)] * 2)
        started = time.perf_counter()
        again = await batcher.submit([torch.zeros(3, 2, 2)])
        await batcher.stop()
        return again, time.perf_counter() - started

    again, seconds = asyncio.run(main())
    assert again == [0] and seconds < 5
