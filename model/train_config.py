"""The training run's settings: TrainConfig, read from YAML plus `key=value` overrides."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from air3d.model.config import check_keys


@dataclass(frozen=True)
class TrainConfig:
    out: str = "runs/default"  # directory for checkpoint.pt, model.pt, metrics.csv, tb/
    seed: int = 0
    device: str = "auto"  # "auto": cuda when available, else cpu
    num_threads: int = 0  # CPU threads for torch (0: torch's default)
    world: str | None = None  # world NAME or PATH (renderer/worlds.py); None: tabletop
    pool_size: int = 20000  # prior samples rendered once and reused (per rank)
    pool_cache: str | None = "runs/cache"  # where rendered pools are kept (None: nowhere)
    refresh_every: int = 0  # every this many steps a block of fresh prior scenes is written
    refresh_size: int = 128  # over the pool's oldest (pool_refresh.py); 0: the pool stays
    batch_size: int = 64
    sleep_steps: int = 1000  # stage 1: fit q to (z, x) from prior + renderer
    elbo_steps: int = 0  # stage 2: maximise the ELBO through the soft renderer
    elbo_batch_size: int = 32  # soft rendering is the cost of a stage-2 step
    lr: float = 1e-3  # stage 1, cosine-decayed to lr_floor * lr
    lr_floor: float = 0.05
    elbo_lr: float = 1e-4  # stage 2, for q
    baseline_lr: float = 1e-3  # stage 2, for the NVIL baseline (separate, as in the paper)
    log_every: int = 50
    checkpoint_every: int = 500
    validate_size: int = 256  # held-out prior samples for the count accuracy logged in training
    extra_steps: int = 3  # sleep stage: AIR runs max_objects + this many steps, the extra ones
    #                       trained "absent" (learning to stop); 0: as many steps as objects
    init_from: str | None = None  # checkpoint whose q starts the run (fine-tuning); None: fresh
    augment: dict[str, Any] = field(default_factory=dict)  # AugmentConfig overrides (looks)
    model: dict[str, Any] = field(default_factory=dict)  # ModelConfig overrides

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        check_keys(cls, data, "train config")
        return cls(**data)


def load_train_config(path: str | Path | None, overrides: list[str]) -> TrainConfig:
    """YAML file (optional) plus `key=value` overrides (`model.hidden_dim=64` for nested)."""
    data: dict[str, Any] = {}
    if path is not None:
        with open(path) as file:
            data = yaml.safe_load(file) or {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} must look like key=value")
        target = data
        *parents, leaf = key.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = yaml.safe_load(value)
    return TrainConfig.from_dict(data)
