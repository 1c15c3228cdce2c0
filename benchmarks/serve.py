"""Load test of `air3d serve`: goodput and latency from 1 to 256 clients, and large JPEGs.

Starts the server on 127.0.0.1 (a free port) with the given settings, then runs closed-loop
clients (each posts, waits for the answer, posts again; a 503 is retried at once, as a
load generator like `hey` does) for a bounded time per row:

- clients 1, 8, 32, 128, 256 posting a small example PNG to POST /infer: goodput (200s per
  second), p50/p99 latency of the accepted requests, how many were refused (503) and how
  fast (p99), the mean batch per forward pass (from /metrics);
- 16 clients posting a large JPEG (a 12-megapixel, 4000x3000 photo-like image) beside one
  client posting the small PNG: the small requests' p99 and the server's peak RSS.

The clients speak raw HTTP/1.1 over asyncio streams (pre-encoded requests, keep-alive): an
HTTP library in the same process would cost more CPU than the server on a small machine.

    .venv/bin/python benchmarks/serve.py [--checkpoint PATH] [--seconds 6]

Prints a markdown table (the one in benchmarks/RESULTS.md). Server settings come from
AIR3D_* in the environment (e.g. AIR3D_MAX_WAIT_MS=5), defaults otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import platform
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from air3d.model import DEFAULT_CHECKPOINT

EXAMPLE = Path(__file__).resolve().parents[1] / "service/static/examples/2.png"
LOADS = (1, 8, 32, 128, 256)
LARGE_CLIENTS = 16


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--seconds", type=float, default=6.0, help="per row")
    parser.add_argument("--clients", type=int, nargs="*", default=list(LOADS))
    parser.add_argument(
        "--client-nice", type=int, default=0,
        help="niceness of the clients (after the server started): 19 stands in for clients "
        "on another machine, which do not take the server's cores",
    )  # fmt: skip
    args = parser.parse_args()
    if not args.checkpoint.is_file():
        sys.exit(f"no checkpoint at {args.checkpoint}; pass --checkpoint PATH")
    small, large = EXAMPLE.read_bytes(), large_jpeg()
    settings = {k: v for k, v in os.environ.items() if k.startswith("AIR3D_")}
    print(f"device: {args.device} ({platform.machine()}, {os.cpu_count()} cores), "
          f"{args.seconds:g} s per row, settings: {settings or 'defaults'}, "
          f"client niceness: {args.client_nice}, "
          f"large JPEG: 4000x3000, {len(large) / 1e6:.1f} MB")  # fmt: skip
    print()
    print("| load | clients | 200/s | p50 ms | p99 ms | 503s | 503 p99 ms | mean batch "
          "| small p99 ms | peak RSS MB |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    with Server(args.checkpoint, {"AIR3D_DEVICE": args.device}) as server:
        os.nice(args.client_nice)
        for clients in args.clients:
            row = asyncio.run(run_row(server, [(small, clients)], args.seconds))
            print(row.markdown("small PNG", clients))
        row = asyncio.run(run_row(server, [(large, LARGE_CLIENTS), (small, 1)], args.seconds))
        print(row.markdown("large JPEG + 1 small", LARGE_CLIENTS))


def large_jpeg() -> bytes:
    """A 4000x3000 JPEG with smooth gradients and fine texture (a photo's size in bytes)."""
    y, x = np.mgrid[0:3000, 0:4000].astype(np.float32)
    texture = 20 * np.sin(x / 7) * np.cos(y / 5)
    rgb = np.stack([x / 4000 * 200 + texture, y / 3000 * 200 - texture, 128 + texture], -1)
    buffer = io.BytesIO()
    Image.fromarray(rgb.clip(0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@dataclass
class Tally:
    ok: list[float] = field(default_factory=list)  # seconds, 200s
    refused: list[float] = field(default_factory=list)  # seconds, 503s
    other: int = 0


@dataclass
class Row:
    seconds: float
    tallies: list[Tally]  # one per client group
    mean_batch: float
    peak_rss_mb: float

    def markdown(self, load: str, clients: int) -> str:
        main = self.tallies[0]
        ok, refused = np.array(main.ok) * 1000, np.array(main.refused) * 1000
        p50, p99 = np.percentile(ok, [50, 99]) if len(ok) else (float("nan"),) * 2
        r99 = f"{np.percentile(refused, 99):.1f}" if len(refused) else "-"
        small = "-"
        if len(self.tallies) > 1 and self.tallies[1].ok:
            small = f"{np.percentile(np.array(self.tallies[1].ok) * 1000, 99):.1f}"
        other = f" ({main.other} other)" if main.other else ""
        return (
            f"| {load} | {clients} | {len(ok) / self.seconds:.1f} | {p50:.1f} | {p99:.1f} "
            f"| {len(refused)}{other} | {r99} | {self.mean_batch:.2f} | {small} "
            f"| {self.peak_rss_mb:.0f} |"
        )


async def run_row(server: Server, groups: list[tuple[bytes, int]], seconds: float) -> Row:
    before = batch_counters(server.url)
    peak = RssSampler(server.pid)
    tallies = [Tally() for _ in groups]
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    with peak:
        await asyncio.gather(*(
            client_loop(server.port, request(body), tally, deadline)
            for (body, clients), tally in zip(groups, tallies, strict=True)
            for _ in range(clients)
        ))  # fmt: skip
    elapsed = time.perf_counter() - started
    after = batch_counters(server.url)
    images, batches = after[0] - before[0], after[1] - before[1]
    await asyncio.sleep(1.0)  # let the server drain before the next row
    return Row(elapsed, tallies, images / max(batches, 1), peak.peak_kb / 1024)


def request(image: bytes) -> bytes:
    boundary = b"air3dbenchboundary"
    body = (
        b"--" + boundary + b"\r\n"
        b'Content-Disposition: form-data; name="image"; filename="x"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n" + image + b"\r\n"
        b"--" + boundary + b"--\r\n"
    )
    head = (
        f"POST /infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary.decode()}\r\n\r\n"
    ).encode()
    return head + body


async def client_loop(port: int, payload: bytes, tally: Tally, deadline: float) -> None:
    reader = writer = None
    while time.perf_counter() < deadline:
        sent = time.perf_counter()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(payload)
            await writer.drain()
            status, keep_alive = await read_response(reader)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            tally.other += 1
            writer = await close(writer)
            continue
        took = time.perf_counter() - sent
        if status == 200:
            tally.ok.append(took)
        elif status == 503:
            tally.refused.append(took)
        else:
            tally.other += 1
        if not keep_alive:
            writer = await close(writer)
    await close(writer)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers.get("connection") != "close"


async def close(writer: asyncio.StreamWriter | None) -> None:
    if writer is not None:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def batch_counters(url: str) -> tuple[float, float]:
    values = {}
    for line in httpx.get(f"{url}/metrics", timeout=30).text.splitlines():
        name, _, value = line.rpartition(" ")
        if name in ("air3d_batch_size_sum", "air3d_batch_size_count"):
            values[name] = float(value)
    return values["air3d_batch_size_sum"], values["air3d_batch_size_count"]


def tree(pid: int) -> list[int]:
    """The process and its descendants (the server and its inference process); threads and
    processes that end while they are listed are left out."""
    children = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            children += (task / "children").read_text().split()
    except FileNotFoundError:  # a thread (or the process) ended meanwhile
        pass
    return [pid, *(p for child in children for p in tree(int(child)))]


def rss_kb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return float(line.split()[1])
    return 0.0


class RssSampler:
    """The highest resident set size of a process and its children together, sampled every
    50 ms while in the block."""

    def __init__(self, pid: int):
        self.pid, self.peak_kb = pid, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.peak_kb = max(self.peak_kb, sum(rss_kb(pid) for pid in tree(self.pid)))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


class Server:
    """`air3d serve` on 127.0.0.1:<free port> in a subprocess."""

    def __init__(self, checkpoint: Path, env: dict[str, str]):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **env, "AIR3D_CHECKPOINT": str(checkpoint),
                    "AIR3D_HOST": "127.0.0.1", "AIR3D_PORT": str(self.port)}  # fmt: skip

    def __enter__(self) -> Server:
        command = [sys.executable, "-m", "air3d.cli", "serve", "--log-level", "warning"]
        self.process = subprocess.Popen(command, env=self.env, stdout=subprocess.DEVNULL)
        self.pid = self.process.pid
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit("air3d serve exited early")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    files = {"image": ("x.png", EXAMPLE.read_bytes(), "image/png")}
                    for _ in range(3):  # warm up
                        httpx.post(f"{self.url}/infer", files=files, timeout=30)
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.process.kill()
        sys.exit("air3d serve did not become ready")

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


if __name__ == "__main__":
    main()
