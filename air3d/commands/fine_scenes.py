"""What `train-centres` and `train-finder` share (not a command): both train a reader of
the fine canvas on the same rendered prior scenes, kept chunk by chunk in `--cache`, so one
rendering serves both."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import torch

from air3d.model import load_checkpoint
from air3d.model.augment import AugmentConfig
from air3d.model.centre_training import CentreData, render_centre_data, training_looks
from air3d.renderer import ShapeLibrary, World


def add_scene_arguments(parser: argparse.ArgumentParser, held_out: float) -> None:
    """The scenes' arguments (how many, their seed, the cache, the held-out share), and the
    run's (its curve, torch threads)."""
    parser.add_argument("--scenes", type=int, default=3000, help="prior scenes to render")
    parser.add_argument("--held-out", type=float, default=held_out, help="share of them to score")
    parser.add_argument("--seed", type=int, default=1000, help="of the scenes (and training)")
    parser.add_argument("--cache", type=Path, default=Path("runs/cache"), help="rendered chunks")
    parser.add_argument("--curve", type=Path, default=None, help="write the held-out curve here")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")


def open_run(args: argparse.Namespace) -> dict[str, Any]:
    """Logs progress, sets the threads, and reads the checkpoint to train a reader for."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    return load_checkpoint(args.checkpoint)


def render_scenes(
    args: argparse.Namespace,
    checkpoint: dict[str, Any],
    world: World,
    shapes: ShapeLibrary,
    fine_size: int,
) -> tuple[CentreData, CentreData, AugmentConfig | None]:
    """The scenes rendered on the fine canvas under the looks q was trained with (read from
    the cache where they are there), split into training and held-out ones, and those
    looks (None: none)."""
    looks = training_looks(checkpoint)
    data = render_centre_data(
        world, shapes, args.scenes, args.seed, fine_size, looks, cache_dir=args.cache
    )
    train, held_out = data.split(args.held_out)
    return train, held_out, looks
