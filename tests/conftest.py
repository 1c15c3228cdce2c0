"""Shared fixtures: the shipped world and shapes, and a small real checkpoint."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from air3d.model.train_config import TrainConfig
from air3d.model.training import train
from air3d.renderer import open_world

torch.set_num_threads(1)  # tests are tiny; threads only add contention on small CI machines


@pytest.fixture(scope="session")
def world():
    return open_world()[0]


@pytest.fixture(scope="session")
def shapes():
    return open_world()[1]


def tiny_train_config(out: Path, **overrides) -> TrainConfig:
    """A model and a run small enough for a test: seconds on one CPU core."""
    settings = dict(
        out=str(out),
        pool_size=64,
        pool_cache=None,
        batch_size=8,
        sleep_steps=3,
        elbo_steps=2,
        elbo_batch_size=4,
        log_every=1,
        checkpoint_every=2,
        validate_size=8,
        model=dict(encoder_channels=[8, 8], feature_dim=16, hidden_dim=16,
                   glimpse_channels=[8], glimpse_dim=8),
    )  # fmt: skip
    settings.update(overrides)
    return TrainConfig.from_dict(settings)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """Path to a real AIR checkpoint trained for a few steps (poor answers, real format)."""
    out = tmp_path_factory.mktemp("tiny_model")
    train(tiny_train_config(out))
    return out / "model.pt"


@pytest.fixture(scope="session")
def calibrated_checkpoint(tiny_checkpoint, tmp_path_factory) -> Path:
    """The tiny checkpoint with a fit calibration on a few valid scenes (`air3d calibrate`)."""
    from air3d.cli import main

    path = tmp_path_factory.mktemp("calibrated") / "model.pt"
    shutil.copy(tiny_checkpoint, path)
    assert main(["calibrate", "--checkpoint", str(path), "--n", "16", "--no-progress"]) == 0
    return path


@pytest.fixture(scope="session")
def tiny_clevr_world(tmp_path_factory) -> Path:
    """A shrunken copy of the clevr world folder (CLEVR's attributes and 320 x 240 frame,
    a 32-pixel canvas, at most 3 objects): for tests of attributes and the letterbox."""
    import yaml

    from air3d.renderer.worlds import WORLDS_DIR

    folder = tmp_path_factory.mktemp("worlds") / "tinyclevr"
    shutil.copytree(WORLDS_DIR / "clevr", folder)
    config = yaml.safe_load((folder / "world.yaml").read_text())
    config.update(image_size=32, max_objects=3)
    config["prior"]["count_probs"] = [0.1, 0.3, 0.3, 0.3]
    (folder / "world.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


@pytest.fixture(scope="session")
def tiny_clevr_checkpoint(tiny_clevr_world, tmp_path_factory) -> Path:
    """A real AIR checkpoint of the tiny clevr world, trained a few steps (poor answers)."""
    out = tmp_path_factory.mktemp("tiny_clevr_model")
    train(tiny_train_config(out, world=str(tiny_clevr_world)))
    return out / "model.pt"
