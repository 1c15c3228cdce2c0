"""q's own speed: latency at batch 1, throughput batched, and where the time goes.

    .venv/bin/python benchmarks/q.py [--checkpoint PATH] [--threads 1] [--repeats 50]

Times `Predictor.infer` without the fit (benchmarks/fit.py times that): the model's
forward pass in inference mode plus building the answers, on prior samples at batch 1
and at --batch, median of --repeats calls after a warm-up. The breakdown times the
model's submodules with forward hooks (the image encoder, the two glimpse encoders, the
recurrent core, the heads); "rest" is what lies outside them: glimpse extraction (affine
grids and sampling), the latents' transforms, Python per step, and building the answers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from air3d.model import DEFAULT_CHECKPOINT, Predictor
from air3d.renderer import SceneBatch, SceneRenderer
from air3d.renderer.prior import sample_scene


def _images(predictor: Predictor, n: int) -> torch.Tensor:
    world, shapes = predictor.world, predictor.shapes
    rng = np.random.default_rng(0)
    scenes = [sample_scene(world, shapes, rng) for _ in range(n)]
    with torch.no_grad():
        return SceneRenderer(world, shapes)(SceneBatch.from_scenes(scenes, shapes))


def _breakdown(predictor: Predictor, images: torch.Tensor, repeats: int) -> dict[str, float]:
    """Median seconds per call of each submodule (summed over its calls) and the rest."""
    spent: dict[str, list[float]] = defaultdict(list)
    started: dict[str, float] = {}
    current: dict[str, float] = defaultdict(float)
    handles = []
    for name, module in predictor.model.named_children():
        if not list(module.parameters()):
            continue

        def pre(_module, _inputs, name=name) -> None:
            started[name] = time.perf_counter()

        def post(_module, _inputs, _output, name=name) -> None:
            current[name] += time.perf_counter() - started[name]

        handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    predictor.infer(images)  # warm-up
    for _ in range(repeats):
        current.clear()
        start = time.perf_counter()
        predictor.infer(images)
        total = time.perf_counter() - start
        for name, seconds in current.items():
            spent[name].append(seconds)
        spent["rest"].append(total - sum(current.values()))
        spent["total"].append(total)
    for handle in handles:
        handle.remove()
    return {name: statistics.median(times) for name, times in spent.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    predictor = Predictor.from_checkpoint(args.checkpoint, "cpu", fit=False)
    images = _images(predictor, args.batch)
    load = os.getloadavg()[0]
    rows = {size: _breakdown(predictor, images[:size], args.repeats) for size in (1, args.batch)}
    names = [name for name in rows[1] if name not in ("rest", "total")] + ["rest", "total"]
    print(f"checkpoint {args.checkpoint.name}; torch threads {torch.get_num_threads()}; "
          f"load average (1 min) before {load:.1f}, after {os.getloadavg()[0]:.1f}")  # fmt: skip
    print()
    print("| batch | " + " | ".join(names) + " | ms / image |")
    print("|---:|" + "---:|" * (len(names) + 1))
    for size, row in rows.items():
        cells = " | ".join(f"{row[name] * 1e3:.2f}" for name in names)
        print(f"| {size} | {cells} | {row['total'] * 1e3 / size:.3f} |")


if __name__ == "__main__":
    main()
