"""Checkpoints that describe themselves, written atomically, read with weights_only=True.

A checkpoint is a dict of plain data and tensors:
  format        "air3d-checkpoint-v1"
  model_config  ModelConfig as a dict (its `kind` says which network)
  world         the scene config it was trained in (World.to_dict)
  shapes        the shape library, manifest and meshes (ShapeLibrary.to_dict)
  step, stage   where training was; metrics: the last logged values
  (a run writes checkpoint.pt as it goes, sleep.pt after stage 1, model.pt at the end)
  train_config  the training config (for --resume and for the record)
  model         the network's state dict; optimizer, baseline, rng: for resuming
  (optional parts, each written by write_part: calibration, centre_refiner, object_finder)
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

FORMAT = "air3d-checkpoint-v1"
REQUIRED = ("format", "model_config", "world", "shapes", "model")


DEFAULT_MODE = 0o644  # a new checkpoint's permissions: everyone may read it


def save_checkpoint(path: str | Path, checkpoint: dict[str, Any]) -> None:
    """Writes to a temporary file beside `path`, fsyncs, then renames over it: a crash or a
    full disk leaves the previous checkpoint intact, never a half-written one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # mkstemp's file is private (0600): the checkpoint keeps the mode it had, or gets a
    # plain file's, so that a service running as another user can still read it.
    mode = path.stat().st_mode & 0o777 if path.exists() else DEFAULT_MODE
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            torch.save({"format": FORMAT, **checkpoint}, file)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Reads and checks a checkpoint; ValueError saying what is wrong otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # torch raises many types for a damaged file
        raise ValueError(f"checkpoint {path} is damaged or not a checkpoint: {error}") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise ValueError(f"checkpoint {path} is not an air3d checkpoint (format {FORMAT})")
    missing = [key for key in REQUIRED if key not in checkpoint]
    if missing:
        raise ValueError(f"checkpoint {path} lacks {', '.join(missing)}")
    return checkpoint


def write_part(path: str | Path, key: str, part: Any) -> None:
    """Stores one optional part (a fit calibration, a centre refiner, an object finder)
    under `key` in the checkpoint at `path`, atomically; the rest stays as it was."""
    checkpoint = load_checkpoint(path)
    checkpoint[key] = part
    checkpoint.pop("format")  # save_checkpoint writes its own
    save_checkpoint(path, checkpoint)


def file_hash(path: str | Path) -> str:
    """First 12 hex digits of the file's SHA-256: names the exact weights in answers."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]
