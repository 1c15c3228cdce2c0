"""`air3d train-finder --checkpoint PATH`: train the checkpoint's object finder.

The ObjectFinder (model/object_finder.py) looks at each image at the centre refiner's finer
resolution for the objects that q missed. It needs the refiner (the Predictor reads each
object it finds through it) and is trained on the same rendered scenes, so a cache that
`train-centres` filled (`--cache`, same `--seed` and `--scenes`) is read, not rendered
again. Held-out scenes choose the threshold at which a peak counts as an object, and then,
with the checkpoint's q, how the Predictor uses the finder: the peak at which an object q
missed is added and the peak below which one of q's objects is dropped (the pair that
counts the most held-out scenes right). The finder is written into the checkpoint,
atomically.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from air3d.commands.fine_scenes import add_scene_arguments, open_run, render_scenes
from air3d.model import DEFAULT_CHECKPOINT
from air3d.model.centre_refiner import CentreRefiner
from air3d.model.checkpoint import write_part
from air3d.model.finder_training import FinderTrainConfig, choose_use, train_object_finder
from air3d.model.object_finder import CHECKPOINT_KEY, ObjectFinder
from air3d.model.predictor import Predictor
from air3d.renderer import ShapeLibrary, World


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "train-finder", help="train the finder of objects q missed, at full resolution"
    )
    parser.add_argument(
        "--checkpoint", type=Path, default=DEFAULT_CHECKPOINT,
        help="checkpoint with a centre refiner, rewritten in place (default: shipped)",
    )  # fmt: skip
    add_scene_arguments(parser, held_out=0.1)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--from-existing", action="store_true",
        help="start from the checkpoint's finder, not afresh",
    )  # fmt: skip
    return parser


def run(args: argparse.Namespace) -> int:
    checkpoint = open_run(args)
    refiner = CentreRefiner.from_checkpoint(checkpoint, args.checkpoint)
    if refiner is None:
        raise ValueError(
            f"checkpoint {args.checkpoint} has no centre refiner: run `air3d train-centres` first"
        )
    world = World.from_dict(checkpoint["world"])
    shapes = ShapeLibrary.from_dict(checkpoint["shapes"])
    train, held_out, looks = render_scenes(args, checkpoint, world, shapes, refiner.fine_size)
    config = FinderTrainConfig(steps=args.steps, batch_size=args.batch_size, seed=args.seed)
    if looks is not None:
        config.augment = looks
    finder = _start(checkpoint, args)
    curve = train_object_finder(finder, train, held_out, config)
    alone = curve[-1]
    predictor = Predictor.from_checkpoint(args.checkpoint, frozen=False, fit=False)
    predictor.finder = finder
    threshold, support, right = choose_use(predictor, held_out)
    curve.append({"threshold": threshold, "support": support, "count_with_q": right})
    if args.curve is not None:
        args.curve.write_text(json.dumps(curve, indent=1) + "\n")
    write_part(args.checkpoint, CHECKPOINT_KEY, finder.state())
    at = alone["threshold"]
    print(
        f"wrote the object finder into {args.checkpoint}: on {len(held_out.images)} held-out"
        f" scenes it counts {alone[f'count_{at}']:.1%} right alone (peaks at or above {at}),"
        f" finding {alone[f'recall_{at}']:.1%} of the objects; with q {right:.1%} (it adds"
        f" q's misses at {threshold} and drops q's objects below {support})"
    )
    return 0


def _start(checkpoint: dict, args: argparse.Namespace) -> ObjectFinder:
    """A new finder, or with --from-existing the checkpoint's."""
    if not args.from_existing:
        return ObjectFinder()
    existing = ObjectFinder.from_checkpoint(checkpoint, args.checkpoint)
    if existing is None:
        raise ValueError("--from-existing: the checkpoint has no object finder")
    return existing
