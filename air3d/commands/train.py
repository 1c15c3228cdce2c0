"""`air3d train --config FILE [key=value ...] [--resume]`: train q(z | x).

Under torchrun (`torchrun --nproc_per_node 4 -m air3d.cli train ...`) each process trains
on its own share of data with DistributedDataParallel; rank 0 writes logs and checkpoints.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from air3d.model.train_config import load_train_config
from air3d.model.training import train
from air3d.renderer import WORLD_HELP


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("train", help="train the inference network")
    parser.add_argument("--config", type=Path, default=None, help="training config YAML")
    parser.add_argument("--world", default=None, help=WORLD_HELP + "; overrides the config's")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. sleep_steps=10")
    parser.add_argument(
        "--resume", action="store_true", help="continue from OUT/checkpoint.pt if it exists"
    )
    return parser


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """`kill`, a scheduler's stop: unwind like Ctrl-C, so that training's cleanup runs (its
    pool-refresh worker would otherwise outlive it). The last checkpoint stays as written."""
    sys.exit(128 + signum)


def run(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    overrides = [*args.overrides, *([f"world={args.world}"] if args.world else [])]
    config = load_train_config(args.config, overrides)
    metrics = train(config, resume=args.resume)
    print(json.dumps({"out": config.out, **metrics}, indent=2))
    return 0
