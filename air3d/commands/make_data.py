"""`air3d make-data --n N --seed S --out DIR`: scenes from the prior with ground truth.

`--renderer blender` draws the same scenes with Blender's Cycles (renderer/blender.py; needs
`pip install air3d[blender]`) instead of our PyTorch3D renderer (in the clevr world: CLEVR's
lamps and materials at its 320 x 240, the lamps moved per image by the world's lamp_jitter);
in a world with camera jitter (CLEVR's 0.5) each scene is drawn from its own camera, which
the ground truth records; `--camera-jitter J` overrides the world's. `--renderer mujoco` with
MuJoCo's OpenGL renderer (renderer/mujoco.py; `pip install air3d[mujoco]` and OSMesa),
optionally in another look (`--look FILE`: light, colours, ground, tone; e.g.
configs/look-mujoco.yaml), the unlabeled images that `air3d adapt` learns from.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from air3d.data import ImageSource, make_dataset
from air3d.renderer import WORLD_HELP, ShapeLibrary, World, open_world


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("make-data", help="render synthetic scenes with ground truth")
    parser.add_argument("--n", type=int, required=True, help="number of scenes")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same files")
    parser.add_argument("--out", type=Path, required=True, help="directory to write")
    parser.add_argument(
        "--count", type=int, default=None, help="objects per scene (default: drawn from the prior)"
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--world", type=str, default=None, help=WORLD_HELP)
    parser.add_argument(
        "--renderer",
        choices=("pytorch3d", "blender", "mujoco"),
        default="pytorch3d",
        help="pytorch3d: ours, crisp (default); blender: Cycles path tracing (air3d[blender]); "
        "mujoco: MuJoCo's OpenGL renderer with shadows (air3d[mujoco])",
    )
    parser.add_argument(
        "--look",
        type=Path,
        default=None,
        help="look file for --renderer mujoco: light, colours, ground, tone (configs/look-*.yaml)",
    )
    parser.add_argument(
        "--samples", type=int, default=64, help="Cycles samples per pixel (--renderer blender)"
    )
    parser.add_argument(
        "--camera-jitter",
        type=float,
        default=None,
        help="move each scene's camera by uniform[-j, j] on each axis, still aimed at the "
        "world's look-at (default: the world's camera.jitter; CLEVR 0.5; 0: a fixed camera)",
    )
    parser.add_argument(
        "--lamp-jitter",
        type=float,
        default=None,
        help="--renderer blender: move each area lamp per image likewise (default: the "
        "world's lamp_jitter; CLEVR 1.0)",
    )
    parser.add_argument(
        "--denoise",
        action="store_true",
        help="--renderer blender: denoise each image (OpenImageDenoise); 32 samples denoised "
        "are cleaner than 64 without, and faster",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the images an interrupted run with the same settings left in --out and "
        "draw only the missing ones",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    if args.n < 0:
        raise ValueError(f"--n must be >= 0, got {args.n}")
    if args.count is not None and args.count < 0:
        raise ValueError(f"--count must be >= 0, got {args.count}")
    if args.samples < 1:
        raise ValueError(f"--samples must be >= 1, got {args.samples}")
    if args.look is not None and args.renderer != "mujoco":
        raise ValueError("--look needs --renderer mujoco")
    if (args.lamp_jitter is not None or args.denoise) and args.renderer != "blender":
        raise ValueError("--lamp-jitter and --denoise need --renderer blender")
    for name in ("camera_jitter", "lamp_jitter"):
        if (getattr(args, name) or 0) < 0:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    world, shapes = open_world(args.world)
    if args.camera_jitter is not None:
        world = replace(world, camera=replace(world.camera, jitter=args.camera_jitter))
    source = _source(args, world, shapes)
    make_dataset(
        args.out,
        args.n,
        args.seed,
        world,
        shapes,
        count=args.count,
        batch_size=args.batch_size,
        device=args.device,
        source=source,
        resume=args.resume,
    )
    if hasattr(source, "close"):
        source.close()
    print(f"wrote {args.n} scenes to {args.out}")
    return 0


def _source(args: argparse.Namespace, world: World, shapes: ShapeLibrary) -> ImageSource | None:
    """The renderer that draws the images; None: make_dataset's default (ours)."""
    if args.renderer == "pytorch3d":
        return None
    if args.renderer == "mujoco":
        from air3d.renderer.mujoco import Look, MujocoRenderer, load_look  # mujoco when asked

        look = load_look(args.look) if args.look is not None else Look()
        return MujocoRenderer(world, shapes, look, slots=args.count)
    from air3d.renderer.blender import BlenderConfig, BlenderRenderer  # bpy only when asked

    config = BlenderConfig(samples=args.samples, lamp_jitter=args.lamp_jitter, denoise=args.denoise)
    return BlenderRenderer(world, shapes, config)
