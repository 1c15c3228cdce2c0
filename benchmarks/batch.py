"""Throughput of `air3d infer` and `air3d rerender`: images/s at batch 1 and the default batch.

Measures the library calls behind the commands end to end (read the images, infer, write
and fsync the JSONL; render, write the PNGs, and the comparison sheets), on synthetic
scenes from make-data. Re-rendering draws the data set's true scenes, so its speed does
not depend on what the model answers.

    .venv/bin/python benchmarks/batch.py [--checkpoint PATH] [--device cpu|cuda] [--n 64]

Prints a markdown table (the one in benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from air3d.batch import find_images, run_inference, run_rerender
from air3d.batch.infer import DEFAULT_BATCH_SIZE as INFER_BATCH
from air3d.batch.rerender import DEFAULT_BATCH_SIZE as RERENDER_BATCH
from air3d.data import make_dataset
from air3d.model import DEFAULT_CHECKPOINT, Predictor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--n", type=int, default=64, help="images per measurement")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--repeat", type=int, default=3, help="runs per row; the best is kept")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    device = "cpu" if device == "auto" else device

    predictor = Predictor.from_checkpoint(args.checkpoint, device)
    predictor.warmup()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_dataset(tmp / "data", args.n, 0, predictor.world, predictor.shapes, progress=False)
        sources = find_images([tmp / "data" / "images"])
        truth = tmp / "truth.jsonl"  # the true scenes, as inference lines
        with truth.open("w") as file, (tmp / "data" / "scenes.jsonl").open() as scenes:
            for line in scenes:
                scene = json.loads(line)
                source = str(tmp / "data" / scene["image"])
                file.write(json.dumps({"source": source, "objects": scene["objects"]}) + "\n")

        for batch in (1, INFER_BATCH):

            def work(run, b=batch):  # a fresh output each run: a rerun would skip everything
                run_inference(predictor, sources, tmp / f"infer-{b}-{run}.jsonl", b,
                              progress=False)  # fmt: skip

            rows.append(("infer", batch, args.n, best_of(args.repeat, work, device)))
        for compare in (False, True):
            for batch in (1, RERENDER_BATCH):

                def work(run, b=batch, c=compare):
                    run_rerender(truth, tmp / f"rerender-{c}-{b}-{run}", predictor.world,
                                 predictor.shapes, compare=c, batch_size=b, device=device,
                                 progress=False)  # fmt: skip

                command = "rerender --compare" if compare else "rerender"
                rows.append((command, batch, args.n, best_of(args.repeat, work, device)))

    if device.startswith("cuda"):
        where = torch.cuda.get_device_name()
    else:
        where = f"{platform.machine()}, {os.cpu_count()} cores"
    print(f"device: {device} ({where}), torch threads: "
          f"{torch.get_num_threads()}, checkpoint: {args.checkpoint.name} "
          f"({predictor.name}, {predictor.checkpoint_hash})\n")  # fmt: skip
    print(f"| command | batch | images | seconds (best of {args.repeat}) | images/s |")
    print("|---|---:|---:|---:|---:|")
    for command, batch, n, seconds in rows:
        print(f"| {command} | {batch} | {n} | {seconds:.2f} | {n / seconds:.1f} |")


def best_of(repeat: int, work, device: str) -> float:
    """The fastest of `repeat` runs of work(run_index), in seconds (the machine is shared)."""
    times = []
    for run in range(repeat):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        work(run)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


if __name__ == "__main__":
    main()
