"""Test-time refinement's accuracy/time curve: the shipped model at K = 0, 1, 2, 5, 10, 20, 50.

    .venv/bin/python benchmarks/refine.py --data DIR [--look linear|srgb] [--max-objects N]
        [--limit N] [--ks 0,1,2,5,10,20,50] [--batch-size 50] [--threads 1]

DIR is a data set made by `air3d make-data` (e.g. `--n 200 --seed 123`; `--count 4` for
scenes with more objects than the prior's). `--look srgb` writes the images through the
standard sRGB tone curve first (what most renderers and cameras save; the renderer's are
linear). `--max-objects` lets AIR (and refinement) take that many steps. For each K it
infers the first `--limit` images in batches and prints a Markdown row: count and shape
accuracy, mean position error (% of the workspace), mean rotation error and milliseconds
per image (wall clock of the batched calls, the q pass included).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from air3d.data import load_dataset
from air3d.evaluation.metrics import compute_metrics
from air3d.model import DEFAULT_CHECKPOINT, Predictor


def srgb(images: torch.Tensor) -> torch.Tensor:
    """Linear [0, 1] images through the sRGB transfer function (IEC 61966-2-1)."""
    low = 12.92 * images
    high = 1.055 * images.clamp(min=0.0031308) ** (1 / 2.4) - 0.055
    return torch.where(images <= 0.0031308, low, high)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a data set made by air3d make-data")
    parser.add_argument("--look", choices=("linear", "srgb"), default="linear")
    parser.add_argument("--max-objects", type=int, default=None, help="AIR steps (default: 3)")
    parser.add_argument("--limit", type=int, default=None, help="first N images only")
    parser.add_argument("--ks", default="0,1,2,5,10,20,50", help="refinement steps to time")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    predictor = Predictor.from_checkpoint(args.checkpoint, max_objects=args.max_objects, fit=False)
    data = load_dataset(args.data, predictor.world, predictor.shapes, args.limit)
    images = srgb(data.images) if args.look == "srgb" else data.images
    width = predictor.world.workspace.width
    print(
        f"data: {args.data} ({len(images)} images, look {args.look}), AIR steps: "
        f"{args.max_objects or predictor.world.max_objects}, checkpoint: {predictor.name} "
        f"({predictor.checkpoint_hash}), cpu: {platform.machine()}, {os.cpu_count()} cores, "
        f"torch threads: {args.threads}, batch: {args.batch_size}\n"
    )
    print("| K | count | shape | position error (% ws) | rotation error (deg) | ms / image |")
    print("|---:|---:|---:|---:|---:|---:|")
    for k in [int(k) for k in args.ks.split(",")]:
        started, results = time.perf_counter(), []
        for start in range(0, len(images), args.batch_size):
            results += predictor.infer(images[start : start + args.batch_size], refine=k)
        ms = (time.perf_counter() - started) / len(images) * 1000
        scenes = [result.scene() for result in results]
        m = compute_metrics(data.scenes, scenes, predictor.shapes, width)
        print(
            f"| {k} | {m['count_accuracy']:.1%} | {m['shape_accuracy']:.1%} "
            f"| {m['position_error_mean_pct']:.2f} | {m['rotation_error_mean_deg']:.2f} "
            f"| {ms:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
