"""Helpers for the batch tests: run the CLI in this process or in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from air3d.cli import main

REPO = Path(__file__).resolve().parents[2]


def cli(*args: object) -> int:
    """Runs `air3d ARGS` in this process."""
    return main([str(a) for a in args])


def subprocess_env() -> dict[str, str]:
    """Environment for CLI subprocesses: one thread (the machine is shared), repo importable."""
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }


def run_cli(*args: object, timeout: float = 120) -> subprocess.CompletedProcess:
    """Runs `python -m air3d.cli ARGS` in a subprocess."""
    command = [sys.executable, "-m", "air3d.cli", *map(str, args)]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env=subprocess_env()
    )


def read_lines(path: Path) -> list[dict]:
    """Every line of a JSONL file, decoded (fails on any line that is not JSON)."""
    return [json.loads(line) for line in path.read_text().splitlines()]
