"""`air3d calibrate-scales --checkpoint C --images DIR`: the camera fit, calibrated to a renderer.

The centre refiner reads each object's apparent scale, and the camera fit reads each
image's eye from those scales (model/camera_fit.py). On images of another renderer (CLEVR's
Blender) the refiner reads the scales a little off, which moves every image's eye the same
way. This measures that bias and the scales' noise on unlabeled images of the renderer, no
labels needed (model/scale_calibration.py), measures the same on our renderer's images of
the world's prior scenes (the reference), and writes the difference into the checkpoint's
refiner, atomically (in place, or a copy at --out). Some dozens of images with several objects each
are enough; a hundred or more pin the bias to about 0.2%.
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Iterator
from pathlib import Path

import torch
from tqdm import tqdm

from air3d.batch import find_images
from air3d.images import ImageError, read_image
from air3d.model import Predictor
from air3d.model.centre_refiner import fine_world, write_centre_refiner
from air3d.model.scale_calibration import ScaleCalibration, ScaleReadings, calibrate_scales
from air3d.renderer import SceneRenderer
from air3d.renderer.prior import sample_scenes

REFERENCE_SCENES = 200  # pin the reference's bias to about 0.15% (as many as the images)
REFERENCE_SEED = 20_000  # of the reference's prior scenes, apart from training's seeds


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "calibrate-scales",
        help="calibrate the camera fit's apparent scales on unlabeled images of a renderer",
    )
    parser.add_argument(
        "--checkpoint", type=Path, required=True, help="a checkpoint with a centre refiner"
    )
    parser.add_argument(
        "--images", type=Path, nargs="+", required=True, help="images, or folders of them"
    )
    parser.add_argument("--out", type=Path, help="write a calibrated copy here (default: in place)")
    parser.add_argument("--limit", type=int, default=500, help="use at most N images")
    parser.add_argument(
        "--reference", type=int, default=REFERENCE_SCENES, metavar="N",
        help="prior scenes drawn by our renderer to measure the reference on",
    )  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def run(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    if args.reference < 1:
        raise ValueError(f"--reference must be >= 1, got {args.reference}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    predictor = Predictor.from_checkpoint(args.checkpoint, args.device, fit=False)
    if predictor.centres is None:
        raise ValueError(f"{args.checkpoint} has no centre refiner: it reads no scales")
    sources = find_images(args.images)[: args.limit]
    progress = not args.no_progress
    theirs = _calibrate(predictor, _read_batches(predictor, sources, args.batch_size), progress)
    ours = _calibrate(predictor, _reference_batches(predictor, args.reference), progress)
    out = args.out or args.checkpoint
    if out != args.checkpoint:
        shutil.copyfile(args.checkpoint, out)
    refiner = predictor.centres
    theirs.apply(refiner, reference=ours)
    write_centre_refiner(out, refiner)
    print(
        f"calibrated the scales of {out} on {theirs.objects} objects in {theirs.images} "
        f"images (reference: {ours.objects} objects in {ours.images} of our renders): "
        f"bias {theirs.bias - ours.bias:+.4f} (log scale), noise x{theirs.noise / ours.noise:.2f}"
    )
    return 0


def _calibrate(
    predictor: Predictor, batches: Iterator[torch.Tensor], progress: bool
) -> ScaleCalibration:
    """The predictor's scale calibration on batches of images on its canvas; ValueError if
    it reads no scales in them."""
    parts: list[ScaleReadings] = []
    for images in tqdm(batches, desc="read scales", unit="batch", disable=not progress):
        part = predictor.scale_readings(images)
        if part is None:
            raise ValueError(
                "this model reads no scales (its refiner does not, or its world's camera "
                "does not jitter): there is nothing to calibrate"
            )
        parts.append(part)
    if not parts:
        raise ValueError("no readable images")
    world, noise = predictor.world, predictor.centres.scale_noise
    return calibrate_scales(ScaleReadings.cat(parts), world, noise)


def _read_batches(
    predictor: Predictor, sources: list[str], batch_size: int
) -> Iterator[torch.Tensor]:
    """The images at `sources` on the predictor's canvas, in batches; unreadable ones are
    skipped and named."""
    for start in range(0, len(sources), batch_size):
        images = []
        for source in sources[start : start + batch_size]:
            try:
                images.append(read_image(source, predictor.canvas))
            except ImageError as error:
                print(f"skipped: {error}")
        if images:
            yield torch.stack(images)


def _reference_batches(predictor: Predictor, n: int, batch: int = 20) -> Iterator[torch.Tensor]:
    """n prior scenes of the predictor's world, drawn by our renderer on its canvas, each
    from its own camera, in batches."""
    world, shapes = predictor.world, predictor.shapes
    renderer = SceneRenderer(fine_world(world, predictor.canvas.size), shapes)
    scenes = sample_scenes(world, shapes, n, REFERENCE_SEED)
    for start in range(0, n, batch):
        with torch.no_grad():
            yield renderer.render_scenes(scenes[start : start + batch])
