"""`air3d train-centres --checkpoint PATH`: train the checkpoint's centre refiner.

Renders prior scenes of the checkpoint's world on a finer canvas (`--fine-size`, CLEVR:
320, its frame's own width) under the random looks q was trained with, trains the
CentreRefiner (model/centre_refiner.py) to move a window onto each object's centre, and
writes it into the checkpoint, atomically. From then on the checkpoint's Predictor takes
images on that finer canvas and sharpens q's centres there. In a world whose camera
jitters the refiner also learns each object's apparent scale, from which the Predictor fits
each image's camera (model/camera_fit.py), and in every world with more than one kind it
names each object's shape and attribute values, which the Predictor weighs with q's. The
rendering is kept in `--cache` chunk by chunk: a stopped run resumes it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from air3d.commands.fine_scenes import add_scene_arguments, open_run, render_scenes
from air3d.model import DEFAULT_CHECKPOINT
from air3d.model.centre_refiner import (
    CentreRefiner,
    centre_heights,
    factor_sizes,
    focal_pixels,
    write_centre_refiner,
)
from air3d.model.centre_training import CentreTrainConfig, train_centre_refiner
from air3d.renderer import ShapeLibrary, World


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "train-centres", help="train the refiner that sharpens q's centres at full resolution"
    )
    parser.add_argument(
        "--checkpoint", type=Path, default=DEFAULT_CHECKPOINT,
        help="checkpoint to add the refiner to, rewritten in place (default: shipped)",
    )  # fmt: skip
    parser.add_argument(
        "--fine-size", type=int, default=None,
        help="the finer canvas's side (default: the world's frame width)",
    )  # fmt: skip
    add_scene_arguments(parser, held_out=0.05)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--window", type=int, default=64, help="window side, fine pixels")
    parser.add_argument(
        "--context", action="store_true",
        help="also read twice the window's side at half the resolution (large objects)",
    )  # fmt: skip
    parser.add_argument(
        "--neighbours", action="store_true",
        help="also show it where the image's other objects are (nearer and farther): it "
        "names an object beside a nearer one from its own pixels",
    )  # fmt: skip
    parser.add_argument(
        "--contact-shadows", type=float, default=0.0, metavar="P",
        help="chance that a training window's object gets a dark contact shadow at its foot, "
        "as renderers with global illumination draw (Blender); 0: none",
    )  # fmt: skip
    parser.add_argument(
        "--contact-shadow-shapes", nargs="+", default=["sphere"], metavar="SHAPE",
        help="the shapes that get them: those that meet the floor at a point (Blender's "
        "crescent under a sphere; flat feet show a thin line at most); default: sphere",
    )  # fmt: skip
    parser.add_argument(
        "--favour-hidden", type=float, default=0.0, metavar="W",
        help="draw training objects with weight 1 + W * the share of them hidden behind "
        "others (partly hidden objects hold most misread shapes); 0: uniformly",
    )  # fmt: skip
    parser.add_argument(
        "--read-noise", type=float, default=None, metavar="PX",
        help="train the scale and the kinds on windows that miss by this std (fine pixels), "
        "as on the second pass that reads them, the offsets on all windows; default: all "
        "windows miss alike",
    )  # fmt: skip
    parser.add_argument(
        "--from-existing", action="store_true",
        help="start from the checkpoint's refiner (of the same canvas and window), not afresh",
    )  # fmt: skip
    return parser


def run(args: argparse.Namespace) -> int:
    checkpoint = open_run(args)
    world = World.from_dict(checkpoint["world"])
    shapes = ShapeLibrary.from_dict(checkpoint["shapes"])
    fine_size = args.fine_size or (world.frame[0] if world.frame else 2 * world.image_size)
    if fine_size <= world.image_size:
        raise ValueError(f"--fine-size must be above the world's {world.image_size}")
    train, held_out, looks = render_scenes(args, checkpoint, world, shapes, fine_size)
    if not 0.0 <= args.contact_shadows <= 1.0:
        raise ValueError(f"--contact-shadows must be in [0, 1], got {args.contact_shadows}")
    if args.favour_hidden < 0:
        raise ValueError(f"--favour-hidden must be >= 0, got {args.favour_hidden}")
    if args.read_noise is not None and args.read_noise < 0:
        raise ValueError(f"--read-noise must be >= 0, got {args.read_noise}")
    config = CentreTrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        seed=args.seed,
        contact_shadow_probability=args.contact_shadows,
        contact_shadow_kinds=_kinds_of_shapes(shapes, args.contact_shadow_shapes),
        focal_px=focal_pixels(world, fine_size),
        favour_hidden=args.favour_hidden,
        read_noise_px=args.read_noise,
        kind_heights=centre_heights(shapes),
        kind_radii=torch.as_tensor(shapes.apparent_radii, dtype=torch.float32),
    )
    if looks is not None:
        config.augment = looks
    refiner = _new_refiner(
        fine_size, args.window, world, shapes, train, args.context, args.neighbours
    )
    if args.from_existing:
        _start_from(refiner, CentreRefiner.from_checkpoint(checkpoint, args.checkpoint))
    curve = train_centre_refiner(refiner, train, held_out, config, shapes.factor_index())
    if args.curve is not None:
        args.curve.write_text(json.dumps(curve, indent=1) + "\n")
    write_centre_refiner(args.checkpoint, refiner)
    last = curve[-1]
    scale = f"; log scale std {last['scale_std']:.4f}" if "scale_std" in last else ""
    named = ", ".join(
        f"{name} {last[f'factor{a}_accuracy']:.1%}"
        for a, (name, _) in enumerate(shapes.factors)
        if f"factor{a}_accuracy" in last
    )
    print(
        f"wrote the centre refiner into {args.checkpoint}: held-out miss {last['before']:.2f} px"
        f" -> {last['pass1']:.2f} (one pass) -> {last['pass2']:.2f} (two) on {fine_size}-px"
        f"{scale}{'; accuracy ' + named if named else ''}"
    )
    return 0


def _new_refiner(
    fine_size: int,
    window: int,
    world: World,
    shapes: ShapeLibrary,
    train,
    context: bool,
    neighbours: bool,
) -> CentreRefiner:
    """A refiner that also reads scales where the camera jitters (they fit the camera),
    starting at the training objects' mean log scale, and names the kinds where the
    library has more than one."""
    reads_scale = world.camera.jitter > 0
    reference = float(train.log_scales.mean()) if reads_scale else 0.0
    factors = factor_sizes(shapes) if len(shapes) > 1 else ()
    return CentreRefiner(
        fine_size,
        window=window,
        reads_scale=reads_scale,
        scale_reference=reference,
        factors=factors,
        context=context,
        neighbours=neighbours,
    )


def _start_from(refiner: CentreRefiner, existing: CentreRefiner | None) -> None:
    """Copies an existing refiner's weights into the new one; outputs the existing one
    lacks (the scale, the factors) start at zero (the reference scale, uniform kinds), and
    so do inputs it does not read (a context, neighbours: its first layer's new inputs)."""
    if existing is None:
        raise ValueError("--from-existing: the checkpoint has no centre refiner")
    if (existing.fine_size, existing.window) != (refiner.fine_size, refiner.window):
        raise ValueError(
            f"--from-existing: the checkpoint's refiner reads {existing.window}-px windows of"
            f" {existing.fine_size}-px canvases, not {refiner.window} of {refiner.fine_size}"
        )
    if existing.context > refiner.context or existing.neighbours > refiner.neighbours:
        raise ValueError("--from-existing: the checkpoint's refiner reads more than this one")
    own = refiner.state_dict()
    last = f"net.{len(refiner.net) - 1}."  # its rows: the offsets', the scale's, the factors'
    for name, weights in existing.state_dict().items():
        rows = own[name][: len(weights)] if name.startswith(last) else own.get(name)
        if name == "net.0.weight" and rows is not None and len(rows) == len(weights):
            rows.zero_()  # inputs it did not read start unread: the same answers
            rows[:, _inputs_of(existing, refiner)] = weights
            continue
        if rows is None or rows.shape != weights.shape:
            raise ValueError(f"--from-existing: the checkpoint's refiner differs at {name}")
        rows.copy_(weights)
    refiner.load_state_dict(own)


def _inputs_of(existing: CentreRefiner, refiner: CentreRefiner) -> torch.Tensor:
    """Where the existing refiner's input channels sit among the new one's: each view (the
    window, then the context) starts with its colours, then the neighbours' maps."""
    views = 1 + int(existing.context)
    old, new = existing.view_channels, refiner.view_channels
    return torch.tensor([view * new + c for view in range(views) for c in range(old)])


def _kinds_of_shapes(shapes: ShapeLibrary, names: list[str]) -> torch.Tensor:
    """(K,) bool: the library's kinds whose shape is one of `names`; ValueError for a name
    the library does not have."""
    known = {spec.name for spec in shapes.specs}
    unknown = sorted(set(names) - known)
    if unknown:
        raise ValueError(
            f"--contact-shadow-shapes: no shape {unknown} (the library's: {sorted(known)})"
        )
    return torch.tensor([spec.name in names for spec in shapes.specs])
