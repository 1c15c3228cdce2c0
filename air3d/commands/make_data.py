"""`air3d make-data --n N --seed S --out DIR`: scenes from the prior with ground truth."""

from __future__ import annotations

import argparse
from pathlib import Path

from air3d.data import make_dataset
from air3d.renderer import load_shape_library, load_world


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
    parser.add_argument("--world", type=Path, default=None, help="scene config (default: shipped)")
    return parser


def run(args: argparse.Namespace) -> int:
    if args.n < 0:
        raise ValueError(f"--n must be >= 0, got {args.n}")
    if args.count is not None and args.count < 0:
        raise ValueError(f"--count must be >= 0, got {args.count}")
    make_dataset(
        args.out,
        args.n,
        args.seed,
        load_world(args.world),
        load_shape_library(),
        count=args.count,
        batch_size=args.batch_size,
        device=args.device,
    )
    print(f"wrote {args.n} scenes to {args.out}")
    return 0
