"""Service settings, read from the environment (AIR3D_*) once at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path

import torch

from air3d.model import DEFAULT_CHECKPOINT

SMALL_CPU = 4  # cores; at or below this, one torch thread per worker serves more requests


@dataclass(frozen=True)
class Settings:
    checkpoint: Path = DEFAULT_CHECKPOINT  # AIR3D_CHECKPOINT: the model to serve
    device: str = "auto"  # AIR3D_DEVICE: auto (CUDA if available), cpu, cuda, cuda:1, ...
    host: str = "127.0.0.1"  # AIR3D_HOST: loopback only by default; the Docker image sets 0.0.0.0
    port: int = 8000  # AIR3D_PORT
    max_upload_bytes: int = 10 * 1024 * 1024  # AIR3D_MAX_UPLOAD_BYTES: per request body
    # AIR3D_MAX_PIXELS: decoded pixels per request (all its images together): decoding cost is
    # bounded by this, not by the upload's bytes (a 39 KB PNG can declare 40 MP)
    max_pixels: int = 16_000_000
    max_batch: int = 16  # AIR3D_MAX_BATCH: images per forward pass (1 turns batching off)
    # AIR3D_MAX_WAIT_MS: how long a batch waits to fill up, only while more requests are on
    # their way (being read or decoded); an idle service runs each request at once
    max_wait_ms: float = 5.0
    queue_size: int = 64  # AIR3D_QUEUE_SIZE: images waiting at most; beyond it, 503
    # AIR3D_MAX_CONCURRENT: inference requests admitted at once (reading, decoding, waiting);
    # beyond it a 503 before the body is read. About two forward passes' worth keeps the
    # forward pass busy without letting the latency of accepted requests grow.
    max_concurrent: int = 32
    decode_threads: int = 2  # AIR3D_DECODE_THREADS: threads decoding uploads at most
    # AIR3D_TORCH_THREADS: torch's intra-op threads; 0: one on a small CPU (<= 4 cores),
    # where batching and decoding use the other cores better, else torch's default
    torch_threads: int = 0
    # AIR3D_INFER_PROCESS: the forward pass in a process of its own (worker.py): under
    # overload it keeps its speed instead of waiting for the HTTP side's GIL
    infer_process: bool = True
    access_log: bool = False  # AIR3D_ACCESS_LOG: uvicorn's line per request (costs ~10% req/s)
    api_key: str | None = None  # AIR3D_API_KEY: when set, required in the X-API-Key header

    def __post_init__(self):
        for name in ("port", "max_upload_bytes", "max_pixels", "max_batch", "queue_size",
                     "max_concurrent", "decode_threads"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"AIR3D_{name.upper()} must be at least 1")
        for name in ("max_wait_ms", "torch_threads"):
            if getattr(self, name) < 0:
                raise ValueError(f"AIR3D_{name.upper()} must be at least 0")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> Settings:
        """Settings from AIR3D_* variables; keyword overrides win (the CLI's flags)."""
        environ = os.environ if environ is None else environ
        values = {}
        for field in fields(cls):
            raw = environ.get(f"AIR3D_{field.name.upper()}")
            if raw is None or raw == "":
                continue
            values[field.name] = _parse(field.name, raw)
        settings = cls(**values)
        return replace(settings, **{k: v for k, v in overrides.items() if v is not None})

    def resolved_device(self) -> str:
        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return self.device

    def resolved_torch_threads(self) -> int:
        if self.torch_threads:
            return self.torch_threads
        cores = os.cpu_count() or 1
        return 1 if cores <= SMALL_CPU else torch.get_num_threads()


def _flag(raw: str) -> bool:
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


_TYPES = {"checkpoint": Path, "port": int, "max_upload_bytes": int, "max_pixels": int,
          "max_batch": int, "queue_size": int, "max_concurrent": int, "decode_threads": int,
          "torch_threads": int, "max_wait_ms": float, "access_log": _flag,
          "infer_process": _flag}  # fmt: skip


def _parse(name: str, raw: str):
    kind = _TYPES.get(name, str)
    try:
        return kind(raw)
    except ValueError:
        label = "boolean (1/0, true/false)" if kind is _flag else kind.__name__
        raise ValueError(f"AIR3D_{name.upper()}={raw!r} is not a valid {label}") from None
