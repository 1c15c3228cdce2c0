"""`air3d serve`: not built yet (see the open issues)."""

from __future__ import annotations

import argparse


def register(subparsers) -> argparse.ArgumentParser:
    return subparsers.add_parser("serve", help="(not built yet)")


def run(args: argparse.Namespace) -> int:
    raise ValueError("'air3d serve' is not built yet")
