"""`air3d train`: not built yet (see the open issues)."""

from __future__ import annotations

import argparse


def register(subparsers) -> argparse.ArgumentParser:
    return subparsers.add_parser("train", help="(not built yet)")


def run(args: argparse.Namespace) -> int:
    raise ValueError("'air3d train' is not built yet")
