"""The fit's cost: Predictor.infer with and without the fit, at batch 1 and batched.

    .venv/bin/python benchmarks/fit.py [--checkpoint PATH] [--threads 1] [--repeats 50]

Both predictors share one network and answer the same prior samples; their calls
alternate (with, without, with, ...) so that both see the same load on a shared machine.
Medians of --repeats calls after a warm-up. "assess" times the fit alone
(FitScorer.assess: the batch's crisp render at the model's input size and the
likelihood under each tone curve) on q's answers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch
from prior_images import prior_images

from air3d.model import DEFAULT_CHECKPOINT, Predictor


def _seconds(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def measure(with_fit: Predictor, images: torch.Tensor, repeats: int) -> dict[str, float]:
    """Median seconds per call: infer without the fit, with it, and the fit alone."""
    without = Predictor(
        with_fit.model, with_fit.world, with_fit.shapes, with_fit.name,
        with_fit.checkpoint_hash, fit=False,
    )  # fmt: skip
    answers = without._ask_q(images)[0]
    scorer = with_fit.scorer()
    calls = {
        "without": lambda: without.infer(images),
        "with": lambda: with_fit.infer(images),
        "assess": lambda: scorer.assess(images, answers),
    }
    for call in calls.values():
        call()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            times[name].append(_seconds(call))
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    predictor = Predictor.from_checkpoint(args.checkpoint, "cpu")
    images = prior_images(predictor, args.batch)
    load = os.getloadavg()[0]
    rows = {size: measure(predictor, images[:size], args.repeats) for size in (1, args.batch)}
    print(f"checkpoint {args.checkpoint.name}; torch threads {torch.get_num_threads()}; "
          f"load average (1 min) before {load:.1f}, after {os.getloadavg()[0]:.1f}")  # fmt: skip
    print()
    print("| batch | infer without fit, ms | with fit, ms | fit alone (assess), ms "
          "| fit's cost per image, ms |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|")
    for size, row in rows.items():
        cost = (row["with"] - row["without"]) * 1e3 / size
        print(f"| {size} | {row['without'] * 1e3:.2f} | {row['with'] * 1e3:.2f} | "
              f"{row['assess'] * 1e3:.2f} | {cost:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
