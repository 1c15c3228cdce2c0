"""`air3d render SCENE.json -o out.png`: draw a scene JSON with the crisp renderer."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from air3d.images import to_pil
from air3d.renderer import Scene, SceneRenderer, load_shape_library, load_world


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("render", help="render a scene JSON to a PNG")
    parser.add_argument("scene", type=Path, help='scene JSON: {"objects": [...]}')
    parser.add_argument("-o", "--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--mode", choices=("crisp", "soft"), default="crisp")
    parser.add_argument(
        "--size", type=int, default=None, help="upscale the PNG to this many pixels"
    )
    parser.add_argument("--world", type=Path, default=None, help="scene config (default: shipped)")
    return parser


def run(args: argparse.Namespace) -> int:
    world, shapes = load_world(args.world), load_shape_library()
    try:
        data = json.loads(args.scene.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{args.scene}: cannot read scene JSON: {error}") from None
    scene = Scene.from_json(data, world, shapes)
    with torch.no_grad():
        image = SceneRenderer(world, shapes).render_scenes([scene], args.mode)[0]
    picture = to_pil(image)
    if args.size:
        picture = picture.resize((args.size, args.size), resample=0)  # nearest: keep pixels crisp
    args.out.parent.mkdir(parents=True, exist_ok=True)
    picture.save(args.out)
    print(f"wrote {args.out}")
    return 0
