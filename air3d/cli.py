"""The `air3d` command line: one subcommand per module in air3d/commands/."""

from __future__ import annotations

import argparse
import importlib
import sys

from air3d.allocator import keep_freed_memory

# Each module defines register(subparsers) -> argparse.ArgumentParser and run(args) -> int.
COMMANDS = (
    "serve",
    "train",
    "evaluate",
    "infer",
    "render",
    "rerender",
    "make_data",
    "calibrate",
    "calibrate_scales",
    "adapt",
    "train_centres",
    "train_finder",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="air3d", description="Attend-Infer-Repeat inverse graphics of tabletop scenes."
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"air3d.commands.{name}")
        module.register(subparsers).set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    keep_freed_memory()  # a quarter of a batch's time went to page faults (air3d/allocator.py)
    try:
        return int(args.run(args) or 0)
    except (ValueError, OSError) as error:  # library errors are written to be read by people
        print(f"air3d {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
