"""`air3d train-finder --checkpoint PATH`: train the checkpoint's object finder.

The ObjectFinder (model/object_finder.py) looks at each image at the centre refiner's finer
resolution for the objects that q missed. It needs the refiner (the Predictor reads each
object it finds through it) and is trained on the same rendered scenes, so a cache that
`train-centres` filled (`--cache`, same `--seed` and `--scenes`) is read, not rendered
again. Held-out scenes choose the threshold at which a peak counts as an object; the finder
is written into the checkpoint, atomically.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from air3d.model import DEFAULT_CHECKPOINT, load_checkpoint
from air3d.model.centre_refiner import CentreRefiner
from air3d.model.centre_training import render_centre_data, training_looks
from air3d.model.checkpoint import write_part
from air3d.model.finder_training import FinderTrainConfig, train_object_finder
from air3d.model.object_finder import CHECKPOINT_KEY, ObjectFinder
from air3d.renderer import ShapeLibrary, World


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "train-finder", help="train the finder of objects q missed, at full resolution"
    )
    parser.add_argument(
        "--checkpoint", type=Path, default=DEFAULT_CHECKPOINT,
        help="checkpoint with a centre refiner, rewritten in place (default: shipped)",
    )  # fmt: skip
    parser.add_argument("--scenes", type=int, default=3000, help="prior scenes to render")
    parser.add_argument("--held-out", type=float, default=0.05, help="share of them to score")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1000, help="of the scenes (and training)")
    parser.add_argument("--cache", type=Path, default=Path("runs/cache"), help="rendered chunks")
    parser.add_argument("--curve", type=Path, default=None, help="write the held-out curve here")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    return parser


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    checkpoint = load_checkpoint(args.checkpoint)
    refiner = CentreRefiner.from_checkpoint(checkpoint, args.checkpoint)
    if refiner is None:
        raise ValueError(
            f"checkpoint {args.checkpoint} has no centre refiner: run `air3d train-centres` first"
        )
    world = World.from_dict(checkpoint["world"])
    shapes = ShapeLibrary.from_dict(checkpoint["shapes"])
    looks = training_looks(checkpoint)
    data = render_centre_data(
        world, shapes, args.scenes, args.seed, refiner.fine_size, looks, cache_dir=args.cache
    )
    train, held_out = data.split(args.held_out)
    config = FinderTrainConfig(steps=args.steps, batch_size=args.batch_size, seed=args.seed)
    if looks is not None:
        config.augment = looks
    finder = ObjectFinder()
    curve = train_object_finder(finder, train, held_out, config)
    if args.curve is not None:
        args.curve.write_text(json.dumps(curve, indent=1) + "\n")
    write_part(args.checkpoint, CHECKPOINT_KEY, finder.state())
    last = curve[-1]
    threshold = last["threshold"]
    print(
        f"wrote the object finder into {args.checkpoint}: on {len(held_out.images)} held-out"
        f" scenes it counts {last[f'count_{threshold}']:.1%} right and finds"
        f" {last[f'recall_{threshold}']:.1%} of the objects (peaks at or above {threshold})"
    )
    return 0
