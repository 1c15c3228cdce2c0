"""`air3d calibrate-scales --checkpoint C [--images DIR]`: the camera fit, calibrated to a renderer.

The centre refiner reads each object's apparent scale, and the camera fit reads each
image's eye from those scales (model/camera_fit.py). On images of another renderer (CLEVR's
Blender) the refiner reads the scales a little off, which moves every image's eye the same
way. model/scale_calibration.py measures that bias and the scales' noise on unlabeled
images, relative to the same measure on our renders (the reference).

Without --images this measures the reference (once per trained refiner: `train-centres`
starts a new one) and stores it in the checkpoint; `air3d infer` and `evaluate` then
calibrate on the images they are given (`--calibrate-scales auto`). With --images it writes
the calibration to those images into the refiner (in place, or a copy at --out): some
dozens of images with several objects each are enough; a hundred or more pin the bias to
about 0.2%. Both write atomically.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from tqdm import tqdm

from air3d.batch import find_images
from air3d.batch.infer import read_image_batches
from air3d.model import Predictor
from air3d.model.centre_refiner import write_centre_refiner
from air3d.model.scale_calibration import REFERENCE_SCENES, measure_scales, reference_batches


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "calibrate-scales",
        help="calibrate the camera fit's apparent scales: the reference on our renders, or "
        "to unlabeled images of another renderer",
    )
    parser.add_argument(
        "--checkpoint", type=Path, required=True, help="a checkpoint with a centre refiner"
    )
    parser.add_argument(
        "--images", type=Path, nargs="+", help="images, or folders of them, to calibrate to"
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
    for name in ("limit", "reference", "batch_size"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    predictor = Predictor.from_checkpoint(args.checkpoint, args.device, fit=False)
    refiner = predictor.centres
    if refiner is None:
        raise ValueError(f"{args.checkpoint} has no centre refiner: it reads no scales")
    progress = not args.no_progress
    out = args.out or args.checkpoint
    if args.images is None:
        if refiner.scale_evidence is not None:
            raise ValueError(
                f"{args.checkpoint} already holds its reference (and may be calibrated to "
                "other images since): give --images to calibrate it to a renderer"
            )
        batches = reference_batches(predictor, args.reference)
        ours = measure_scales(predictor, tqdm(batches, "our renders", disable=not progress))
        refiner.scale_evidence = ours.as_reference(refiner)
        message = (
            f"the reference of {out}: {ours.objects} objects in {ours.images} of our renders, "
            f"bias {ours.bias:+.4f} (log scale), noise {ours.noise:.4f}"
        )
    else:
        sources = find_images(args.images)[: args.limit]
        batches = read_image_batches(
            sources, predictor.canvas, args.batch_size, lambda error: print(f"skipped: {error}")
        )
        theirs = measure_scales(predictor, tqdm(batches, "images", disable=not progress))
        shift, factor = theirs.apply(refiner)
        message = (
            f"calibrated the scales of {out} on {theirs.objects} objects in {theirs.images} "
            f"images: bias {shift:+.4f} (log scale), noise x{factor:.2f} (relative to our renders)"
        )
    if out != args.checkpoint:
        shutil.copyfile(args.checkpoint, out)
    write_centre_refiner(out, refiner)
    print(message)
    return 0
