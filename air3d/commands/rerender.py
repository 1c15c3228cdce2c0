"""`air3d rerender inferences.jsonl --out DIR [--compare]`: draw inferences back as PNGs.

Runs under torchrun too: each rank renders its share of the lines, rank 0 writes the index.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from air3d.batch import current_shard, process_group, run_rerender
from air3d.batch.rerender import DEFAULT_BATCH_SIZE
from air3d.renderer import WORLD_HELP, open_world

MAX_REPORTED = 20  # bad lines listed one by one; beyond this only counted


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "rerender", help="render each line of an inferences JSONL (beside its input: --compare)"
    )
    parser.add_argument("inferences", type=Path, help="JSONL written by `air3d infer`")
    parser.add_argument("--out", type=Path, required=True, help="directory to write")
    parser.add_argument(
        "--compare",
        action="store_true",
        help="also write input | reconstruction | difference sheets and an index.html",
    )
    parser.add_argument(
        "--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="scenes per render call"
    )
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda")
    parser.add_argument("--scale", type=int, default=4, help="sheet upscaling factor")
    parser.add_argument(
        "--root", type=Path, default=None, help="where relative sources are (default: .)"
    )
    parser.add_argument("--world", type=str, default=None, help=WORLD_HELP)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def run(args: argparse.Namespace) -> int:
    if not args.inferences.is_file():
        raise ValueError(f"{args.inferences}: no such file")
    shard = current_shard()
    with process_group(shard):
        summary = run_rerender(
            args.inferences,
            args.out,
            *open_world(args.world),
            compare=args.compare,
            batch_size=args.batch_size,
            device=shard.device(args.device),
            scale=args.scale,
            root=args.root,
            shard=shard,
            progress=not args.no_progress,
        )
    if shard.rank == 0:  # every rank reads the whole file: one report of its bad lines
        for message in summary.skipped[:MAX_REPORTED]:
            print(f"skipped {message}", file=sys.stderr)
        if len(summary.skipped) > MAX_REPORTED:
            print(f"... and {len(summary.skipped) - MAX_REPORTED} more", file=sys.stderr)
    for message in summary.missing_inputs:
        print(f"no sheet: {message}", file=sys.stderr)
    who = f"rank {shard.rank} of {shard.world_size}: " if shard.distributed else ""
    print(
        f"{who}{summary.rendered} rendered, {summary.already_done} already done, "
        f"{len(summary.skipped)} bad lines skipped, "
        f"{len(summary.missing_inputs)} inputs unreadable; wrote {args.out}",
        file=sys.stderr,
    )
    if summary.index is not None:
        print(f"index: {summary.index}", file=sys.stderr)
    return 0
