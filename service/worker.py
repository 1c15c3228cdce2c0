"""The forward pass in a process of its own (AIR3D_INFER_PROCESS, on by default).

The HTTP side is an asyncio loop in one Python process; a forward pass run in a thread of
that process needs the GIL between every torch call. Under overload the loop holds the GIL
almost all the time (parsing requests, answering 503s) and each pass waits for it between
ops: measured, a 35 ms pass took 0.25-2.5 s. In a process of its own the pass has its own
interpreter, and the operating system, not the GIL, shares the cores; the process also
runs at a higher priority than the HTTP side (nice), so under overload the forward pass
keeps its core and the refusals use what is left.

`InferenceProcess(checkpoint, device, threads)(images)` is a drop-in for Predictor.infer:
(B, 3, S, S) -> list of Inference, one call at a time (the batcher makes one at a time).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
from multiprocessing.connection import Connection
from pathlib import Path

import torch

from air3d.model import Inference

HTTP_NICENESS = 5  # how much lower the HTTP side's CPU priority is than the forward pass's


class InferenceProcess:
    def __init__(self, checkpoint: Path, device: str, threads: int):
        context = multiprocessing.get_context("spawn")  # no fork of a threaded process
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(child, str(checkpoint), device, threads), daemon=True,
            name="air3d-infer",
        )  # fmt: skip
        self._process.start()
        child.close()
        self._lock = threading.Lock()
        ready = self._conn.recv()  # the model loaded and warmed, or why not
        if isinstance(ready, BaseException):
            raise ready

    def __call__(self, images: torch.Tensor) -> list[Inference]:
        with self._lock:
            try:
                self._conn.send(images.numpy())
                answer = self._conn.recv()
            except (EOFError, OSError):  # killed (out of memory?): every later call fails too
                raise RuntimeError(
                    f"the inference process exited (code {self._process.exitcode}); "
                    "restart the service"
                ) from None
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def close(self) -> None:
        self._conn.close()  # the child's recv ends: it exits
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()


def lower_http_priority() -> None:
    """Called in the HTTP thread once the forward pass runs elsewhere (Linux: per thread)."""
    with contextlib.suppress(OSError):  # not allowed: the pass still has its own interpreter
        os.nice(HTTP_NICENESS)


def _serve(conn: Connection, checkpoint: str, device: str, threads: int) -> None:
    from air3d.allocator import keep_freed_memory
    from air3d.model import Predictor

    keep_freed_memory()  # this process runs every forward pass (air3d/allocator.py)
    torch.set_num_threads(threads)
    try:
        predictor = Predictor.from_checkpoint(checkpoint, device)
        predictor.warmup()
    except Exception as error:  # noqa: BLE001 - passed to the parent, which raises it
        conn.send(error)
        return
    conn.send("ready")
    while True:
        try:
            images = conn.recv()
        except EOFError:  # the parent closed the pipe or died
            return
        try:
            conn.send(predictor.infer(torch.from_numpy(images)))
        except Exception as error:  # noqa: BLE001 - the waiting requests get it
            conn.send(error)
