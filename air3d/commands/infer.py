"""`air3d infer PATH... --out inferences.jsonl`: one JSON line per image, resumable.

`--format clevr` writes OUT as a CLEVR scenes JSON instead (air3d/clevr_format.py: the
world's attributes, pixel_coords in the world's frame); the resumable JSON lines then live
beside it, in OUT.lines.jsonl. `--world NAME` infers with the world's shipped model.

Under torchrun (`torchrun --nproc_per_node N -m air3d.cli infer ...`) each rank writes the
shard OUT.rank{r}-of-{N} and rank 0 merges them into OUT at the end; `--merge` folds in
shards left by a run that stopped early.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from air3d.batch import current_shard, find_images, merge_shards, process_group, run_inference
from air3d.batch.infer import DEFAULT_BATCH_SIZE, read_image_batches, write_clevr_scenes
from air3d.model import Predictor, choose_checkpoint
from air3d.model.refine import MAX_REFINE_STEPS
from air3d.model.scale_calibration import (
    MIN_IMAGES,
    SAMPLE_IMAGES,
    calibrate_to,
    calibration_sample,
)
from air3d.model.shipped import check_world


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "infer", help="infer the objects in image files or folders, one JSON line per image"
    )
    parser.add_argument(
        "paths", nargs="*", type=Path, help="images, or folders searched for .png/.jpg/.jpeg"
    )
    parser.add_argument("--out", type=Path, required=True, help="JSONL file to append to")
    parser.add_argument(
        "--format",
        choices=("jsonl", "clevr"),
        default="jsonl",
        help="jsonl: one line per image (default); clevr: a CLEVR scenes JSON at OUT, "
        "the lines in OUT.lines.jsonl",
    )
    parser.add_argument(
        "--checkpoint", type=Path, default=None, help="model (default: the world's shipped one)"
    )
    parser.add_argument(
        "--world", default=None, help="a shipped world NAME: infer with its shipped model "
        "(assets/model/NAME.pt; tabletop, the default: default.pt)",
    )  # fmt: skip
    parser.add_argument(
        "--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="images per forward pass"
    )
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda")
    parser.add_argument(
        "--refine",
        type=int,
        default=0,
        metavar="K",
        help=f"K render-and-compare steps after q (0..{MAX_REFINE_STEPS}; 0: plain AIR)",
    )
    parser.add_argument(
        "--max-objects",
        type=int,
        default=None,
        metavar="N",
        help="the most objects an answer holds (default: as many as the model was trained "
        "on); above that, q looks again at what is left after painting out what it found",
    )
    parser.add_argument(
        "--calibrate-scales",
        choices=("auto", "off"),
        default="auto",
        help="auto: where the model reads apparent scales to fit each image's camera and "
        f"holds their reference, calibrate them first on up to {SAMPLE_IMAGES} of the images "
        f"(sets of {MIN_IMAGES} or more; model/scale_calibration.py); off: as trained",
    )
    parser.add_argument(
        "--merge", action="store_true", help="only fold shards of OUT into OUT, infer nothing"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def run(args: argparse.Namespace) -> int:
    lines = (
        args.out.with_name(args.out.name + ".lines.jsonl") if args.format == "clevr" else args.out
    )
    if args.merge:
        if args.paths:
            raise ValueError("--merge takes no image paths")
        merged = merge_shards(lines)
        print(f"merged {merged} shards into {lines}")
        return 0
    if not args.paths:
        raise ValueError("give at least one image or folder (or --merge)")
    sources = find_images(args.paths)
    if not sources:
        raise ValueError(f"no .png/.jpg/.jpeg images in {', '.join(map(str, args.paths))}")
    shard = current_shard()
    device = shard.device(args.device)
    checkpoint = choose_checkpoint(args.checkpoint, args.world)
    predictor = Predictor.from_checkpoint(
        checkpoint, device, max_objects=args.max_objects, refine=args.refine
    )
    check_world(predictor.world, args.world, checkpoint)
    picked = calibration_sample(predictor, len(sources)) if args.calibrate_scales == "auto" else []
    if picked:
        sample = [sources[i] for i in picked]
        batches = read_image_batches(sample, predictor.canvas, args.batch_size)
        print(calibrate_to(predictor, batches), file=sys.stderr)
    with process_group(shard):
        summary = run_inference(
            predictor,
            sources,
            lines,
            batch_size=args.batch_size,
            shard=shard,
            progress=not args.no_progress,
        )
    who = f"rank {shard.rank} of {shard.world_size}: " if shard.distributed else ""
    print(
        f"{who}{summary.inferred} inferred ({summary.not_scenes} flagged not a scene), "
        f"{summary.errors} unreadable (error lines), "
        f"{summary.skipped} already in the output; wrote {summary.output}",
        file=sys.stderr,
    )
    if summary.merged_shards:
        print(f"merged {summary.merged_shards} shards into {lines}", file=sys.stderr)
    if args.format == "clevr" and shard.rank == 0:
        scenes = write_clevr_scenes(lines, args.out, predictor)
        print(f"wrote {scenes} scenes in CLEVR's format to {args.out}", file=sys.stderr)
    return 0
