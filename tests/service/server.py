"""Running the real server in a subprocess on loopback (for Chromium and the CLI tests)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(checkpoint: Path, timeout: float = 120.0, **env: str):
    """`air3d serve` on 127.0.0.1:<free port> until the block ends; yields the base URL."""
    port = free_port()
    environ = {**os.environ, "OMP_NUM_THREADS": "1", "AIR3D_DEVICE": "cpu", **env}
    environ.update(AIR3D_CHECKPOINT=str(checkpoint), AIR3D_HOST="127.0.0.1", AIR3D_PORT=str(port))
    command = [sys.executable, "-m", "air3d.cli", "serve", "--log-level", "warning"]
    process = subprocess.Popen(command, env=environ, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"air3d serve exited: {process.stderr.read()}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"air3d serve not ready after {timeout} s")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
