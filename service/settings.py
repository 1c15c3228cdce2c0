"""Service settings, read from the environment (AIR3D_*) once at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path

import torch

from air3d.model import DEFAULT_CHECKPOINT


@dataclass(frozen=True)
class Settings:
    checkpoint: Path = DEFAULT_CHECKPOINT  # AIR3D_CHECKPOINT: the model to serve
    device: str = "auto"  # AIR3D_DEVICE: auto (CUDA if available), cpu, cuda, cuda:1, ...
    host: str = "127.0.0.1"  # AIR3D_HOST: loopback only by default; the Docker image sets 0.0.0.0
    port: int = 8000  # AIR3D_PORT
    max_upload_bytes: int = 10 * 1024 * 1024  # AIR3D_MAX_UPLOAD_BYTES: per request body
    max_batch: int = 16  # AIR3D_MAX_BATCH: images per forward pass (1 turns batching off)
    max_wait_ms: float = 5.0  # AIR3D_MAX_WAIT_MS: how long a batch waits to fill up
    queue_size: int = 64  # AIR3D_QUEUE_SIZE: images waiting at most; beyond it, 503
    api_key: str | None = None  # AIR3D_API_KEY: when set, required in the X-API-Key header

    def __post_init__(self):
        for name in ("port", "max_upload_bytes", "max_batch", "queue_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"AIR3D_{name.upper()} must be at least 1")
        if self.max_wait_ms < 0:
            raise ValueError("AIR3D_MAX_WAIT_MS must be at least 0")

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


_TYPES = {"checkpoint": Path, "port": int, "max_upload_bytes": int, "max_batch": int,
          "queue_size": int, "max_wait_ms": float}  # fmt: skip


def _parse(name: str, raw: str):
    kind = _TYPES.get(name, str)
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f"AIR3D_{name.upper()}={raw!r} is not a valid {kind.__name__}") from None
