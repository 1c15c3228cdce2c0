"""Load test of `air3d serve`: throughput and latency with batching on and off.

Starts the server on 127.0.0.1 (a free port) for each configuration, then runs N
concurrent clients, each posting an example image to POST /infer in a loop for a bounded
time, and reports requests/s, p50/p95/p99 latency, the mean forward-pass batch size (from
/metrics) and the failed requests (any status but 200; 0 expected below the queue limit).

    .venv/bin/python benchmarks/serve.py [--checkpoint PATH] [--clients 8] [--seconds 10]

Prints a markdown table (the one in benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from air3d.model import DEFAULT_CHECKPOINT

EXAMPLE = Path(__file__).resolve().parents[1] / "service/static/examples/2.png"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--seconds", type=float, default=10.0, help="per configuration")
    parser.add_argument("--max-batch", type=int, default=16, help="AIR3D_MAX_BATCH when on")
    parser.add_argument("--max-wait-ms", type=float, default=5.0, help="AIR3D_MAX_WAIT_MS")
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of the server")
    args = parser.parse_args()
    if not args.checkpoint.is_file():
        sys.exit(f"no checkpoint at {args.checkpoint}; pass --checkpoint PATH")
    image = EXAMPLE.read_bytes()
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    print(f"device: {args.device} ({machine}), server threads: {args.threads}, "
          f"clients: {args.clients}, {args.seconds:g} s each")  # fmt: skip
    print()
    print("| batching | max batch | requests | failed | requests/s | p50 ms | p95 ms | p99 ms "
          "| mean batch |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, max_batch in (("on", args.max_batch), ("off", 1)):
        env = {
            "AIR3D_MAX_BATCH": str(max_batch),
            "AIR3D_MAX_WAIT_MS": str(args.max_wait_ms),
            "AIR3D_QUEUE_SIZE": str(max(64, 4 * args.clients)),
            "AIR3D_DEVICE": args.device,
            "OMP_NUM_THREADS": str(args.threads),
        }
        with Server(args.checkpoint, env) as url:
            latencies, failed, seconds = asyncio.run(load(url, image, args.clients, args.seconds))
            mean_batch = mean_batch_size(httpx.get(f"{url}/metrics").text)
        ms = np.array(latencies) * 1000
        p50, p95, p99 = np.percentile(ms, [50, 95, 99]) if len(ms) else (float("nan"),) * 3
        print(f"| {label} | {max_batch} | {len(latencies) + failed} | {failed} "
              f"| {len(latencies) / seconds:.1f} | {p50:.1f} | {p95:.1f} | {p99:.1f} "
              f"| {mean_batch:.2f} |")  # fmt: skip


async def load(url: str, image: bytes, clients: int, seconds: float):
    latencies: list[float] = []
    failed = 0
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for _ in range(3):  # warm the connection pool and the server
            await client.post("/infer", files={"image": ("x.png", image, "image/png")})
        await client.get("/metrics")
        start = time.perf_counter()
        deadline = start + seconds

        async def one_client():
            nonlocal failed
            while time.perf_counter() < deadline:
                sent = time.perf_counter()
                try:
                    r = await client.post("/infer", files={"image": ("x.png", image, "image/png")})
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - sent)
                else:
                    failed += 1

        await asyncio.gather(*(one_client() for _ in range(clients)))
        return latencies, failed, time.perf_counter() - start


def mean_batch_size(metrics: str) -> float:
    values = {}
    for line in metrics.splitlines():
        name, _, value = line.rpartition(" ")
        if name in ("air3d_batch_size_sum", "air3d_batch_size_count"):
            values[name] = float(value)
    return values["air3d_batch_size_sum"] / max(values["air3d_batch_size_count"], 1)


class Server:
    """`air3d serve` on 127.0.0.1:<free port> in a subprocess."""

    def __init__(self, checkpoint: Path, env: dict[str, str]):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.env = {**os.environ, **env, "AIR3D_CHECKPOINT": str(checkpoint),
                    "AIR3D_HOST": "127.0.0.1", "AIR3D_PORT": str(self.port)}  # fmt: skip

    def __enter__(self) -> str:
        command = [sys.executable, "-m", "air3d.cli", "serve", "--log-level", "warning"]
        self.process = subprocess.Popen(command, env=self.env, stdout=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit("air3d serve exited early")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    return url
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
