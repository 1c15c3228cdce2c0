"""Micro-batching: concurrent requests' images gathered into one forward pass.

Each image waits in a bounded queue. One worker task takes the first waiting image and
every other one already waiting, up to `max_batch`; it waits for more (at most
`max_wait_s` since the first) only while `more_coming()` says requests are on their way
(admitted, still being read or decoded). An idle service so runs a lone request at once,
and a busy one gathers whatever queued during the last forward pass without waiting. The
batch runs through `infer` in a worker thread (the event loop keeps serving meanwhile).
A full queue refuses new images at once (QueueFullError, the service's 503) instead of
growing without limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

POLL_S = 0.001  # how often a waiting batch re-asks whether more images are coming


class QueueFullError(RuntimeError):
    """The batcher's queue has no room for the images of this request."""


@dataclass
class _Item:
    image: torch.Tensor  # (3, S, S)
    future: asyncio.Future


class MicroBatcher:
    """Takes images one at a time, answers them from batched calls of `infer`.

    infer:     (B, 3, S, S) -> list of B results, run in a worker thread
    on_batch:  called with each batch's size and forward-pass seconds (metrics)
    on_depth:  called with the queue depth whenever it changes (metrics)
    more_coming: whether images are on their way, worth waiting for (default: never wait)
    """

    def __init__(
        self,
        infer: Callable[[torch.Tensor], Sequence[Any]],
        max_batch: int,
        max_wait_s: float,
        queue_size: int,
        on_batch: Callable[[int, float], None] | None = None,
        on_depth: Callable[[int], None] | None = None,
        more_coming: Callable[[], bool] | None = None,
    ):
        self.infer = infer
        self.max_batch, self.max_wait_s = max_batch, max_wait_s
        self.queue: asyncio.Queue[_Item] = asyncio.Queue(maxsize=queue_size)
        self.on_batch = on_batch or (lambda size, seconds: None)
        self.on_depth = on_depth or (lambda depth: None)
        self.more_coming = more_coming or (lambda: False)
        self._worker: asyncio.Task | None = None

    @property
    def depth(self) -> int:
        return self.queue.qsize()

    @property
    def room(self) -> int:
        return self.queue.maxsize - self.queue.qsize()

    def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        while not self.queue.empty():  # answer whatever still waits
            item = self.queue.get_nowait()
            if not item.future.done():
                item.future.set_exception(QueueFullError("the service is shutting down"))

    async def submit(self, images: Sequence[torch.Tensor]) -> list[Any]:
        """Queues the images (all or none) and returns their results, in order."""
        if len(images) > self.room:
            raise QueueFullError(
                f"the inference queue is full ({self.queue.qsize()} of {self.queue.maxsize} "
                f"images waiting); retry shortly"
            )
        loop = asyncio.get_running_loop()
        items = [_Item(image, loop.create_future()) for image in images]
        for item in items:
            self.queue.put_nowait(item)
        self.on_depth(self.queue.qsize())
        return list(await asyncio.gather(*(item.future for item in items)))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            deadline = loop.time() + self.max_wait_s
            while len(batch) < self.max_batch:
                try:
                    batch.append(self.queue.get_nowait())
                    continue
                except asyncio.QueueEmpty:
                    pass
                remaining = deadline - loop.time()
                if remaining <= 0 or not self.more_coming():
                    break
                try:  # short polls: a request on its way may yet fail and never arrive
                    wait = min(remaining, POLL_S)
                    batch.append(await asyncio.wait_for(self.queue.get(), wait))
                except TimeoutError:
                    continue
            self.on_depth(self.queue.qsize())
            await self._answer(batch)

    async def _answer(self, batch: list[_Item]) -> None:
        started = time.perf_counter()
        try:
            results = await asyncio.to_thread(self.infer, torch.stack([i.image for i in batch]))
        except Exception as error:  # every waiting request gets the failure, the worker lives on
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(error)
            return
        self.on_batch(len(batch), time.perf_counter() - started)
        for item, result in zip(batch, results, strict=True):
            if not item.future.done():  # a cancelled request (client gone) is skipped
                item.future.set_result(result)
