"""`air3d render SCENE.json -o out.png`: draw a scene JSON with the crisp renderer, in the
shipped world, a scene config (`--world`) or a checkpoint's world and look (`--checkpoint`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from air3d.images import to_pil
from air3d.model.checkpoint import load_checkpoint
from air3d.model.predictor import LOOK_AGAIN_FACTOR
from air3d.renderer import (
    WORLD_HELP,
    Scene,
    SceneRenderer,
    ShapeLibrary,
    World,
    open_world,
)
from air3d.renderer.world import with_max_objects


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("render", help="render a scene JSON to a PNG")
    parser.add_argument("scene", type=Path, help='scene JSON: {"objects": [...]}')
    parser.add_argument("-o", "--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--mode", choices=("crisp", "soft"), default="crisp")
    parser.add_argument(
        "--size", type=int, default=None, help="upscale the PNG to this many pixels"
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--world", type=str, default=None, help=WORLD_HELP)
    where.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="render in this checkpoint's world and shapes (e.g. the look `air3d adapt` learned)",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    if args.checkpoint is not None:
        checkpoint = load_checkpoint(args.checkpoint)
        world = World.from_dict(checkpoint["world"])
        shapes = ShapeLibrary.from_dict(checkpoint["shapes"])
    else:
        world, shapes = open_world(args.world)
    try:
        data = json.loads(args.scene.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{args.scene}: cannot read scene JSON: {error}") from None
    # what `air3d infer` and POST /infer answer: up to LOOK_AGAIN_FACTOR times the world's count
    scene = Scene.from_json(
        data, with_max_objects(world, LOOK_AGAIN_FACTOR * world.max_objects), shapes
    )
    with torch.no_grad():
        image = SceneRenderer(world, shapes).render_scenes([scene], args.mode)[0]
    picture = to_pil(image)
    if args.size:
        picture = picture.resize((args.size, args.size), resample=0)  # nearest: keep pixels crisp
    args.out.parent.mkdir(parents=True, exist_ok=True)
    picture.save(args.out)
    print(f"wrote {args.out}")
    return 0
