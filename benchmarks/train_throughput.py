"""Training throughput: images per second through each part of a training step.

    .venv/bin/python benchmarks/train_throughput.py --world tabletop|clevr|PATH
        [--batches 16,64] [--where regress,spatial] [--threads 1] [--repeats 3] [--device cpu]

What an hour of training buys (issue 18, item 3). For each batch size and each `where`
(ModelConfig.where: the regressing AIR, the spatial one), on scenes drawn from the world's
prior, it times (median of --repeats after one warm-up, wall clock):
- render crisp: drawing the sleep stage's images (the ScenePool's cost per scene, or the
  cost of each fresh scene when training renders as it goes);
- render soft: the ELBO stage's differentiable drawing (forward only);
- q forward: q in "mean" mode over the sleep stage's steps (max_objects + extra_steps),
  no gradients;
- sleep step: q + sleep loss + backward + Adam on a batch (the images given);
- ELBO step: q sampled + soft render + ELBO + backward + Adam;
- sleep, fresh scenes: a sleep step on newly rendered scenes (render crisp + sleep step).
The model is TrainConfig's default ModelConfig (with `where` set) at the world's size.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from air3d.model.config import ModelConfig
from air3d.model.objective import stage_loss
from air3d.model.train_config import TrainConfig
from air3d.model.training import Trainee
from air3d.renderer import WORLD_HELP, SceneBatch, SceneRenderer, open_world
from air3d.renderer.prior import sample_scenes

sys.path.insert(0, str(Path(__file__).parent))
from render import machine, synchronize  # noqa: E402  (benchmarks/render.py: the machine, in words)


def seconds(run: Callable[[], None], repeats: int, device: torch.device) -> float:
    """Median wall seconds of `repeats` runs after one warm-up run (on CUDA, each run's
    kernels finished: they run asynchronously)."""
    run()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        run()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(
    world_name: str | None, batch: int, where: str, repeats: int, device: torch.device
) -> dict[str, float]:
    """Images per second of each part (this module's docstring) at one batch size."""
    world, shapes = open_world(world_name)
    renderer = SceneRenderer(world, shapes, device)
    config = TrainConfig()
    torch.manual_seed(0)
    trainee = Trainee(ModelConfig(where=where), world, shapes, config.extra_steps).to(device)
    optimizer = torch.optim.Adam(trainee.parameters(), lr=config.elbo_lr)
    scenes = SceneBatch.from_scenes(sample_scenes(world, shapes, batch, 0), shapes).to(device)
    with torch.no_grad():
        images = renderer(scenes, "crisp")

    def render(mode: str) -> None:
        with torch.no_grad():
            renderer(scenes, mode)

    def forward() -> None:
        with torch.no_grad():
            trainee.q(images, "mean", trainee.sleep_steps)

    def step(stage: str) -> None:
        terms = trainee(stage, images, scenes, renderer, world)
        loss = stage_loss(stage, terms)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    timed = {
        "render crisp": seconds(lambda: render("crisp"), repeats, device),
        "render soft": seconds(lambda: render("soft"), repeats, device),
        "q forward": seconds(forward, repeats, device),
        "sleep step": seconds(lambda: step("sleep"), repeats, device),
        "ELBO step": seconds(lambda: step("elbo"), repeats, device),
    }
    timed["sleep, fresh scenes"] = timed["render crisp"] + timed["sleep step"]
    return {part: batch / spent for part, spent in timed.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--world", default=None, help=WORLD_HELP)
    parser.add_argument("--batches", default="16,64", help="batch sizes, comma-separated")
    parser.add_argument("--where", default="regress,spatial", help="ModelConfig.where values")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per cell (median)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    wheres = args.where.split(",")
    world = open_world(args.world)[0]
    load_before, started = os.getloadavg(), time.perf_counter()
    rows = []
    for where in wheres:
        for batch in batches:
            rates = measure(args.world, batch, where, args.repeats, device)
            rows.append((where, batch, rates))
    parts = list(rows[0][2])
    print(f"world {world.name}, {world.image_size}x{world.image_size}, up to "
          f"{world.max_objects} objects; {machine(device)}")  # fmt: skip
    print(
        f"load average (1 min) before/after: {load_before[0]:.1f}/{os.getloadavg()[0]:.1f}; "
        f"median of {args.repeats} runs; took {time.perf_counter() - started:.0f} s; images/s"
    )
    print()
    print("| where | batch | " + " | ".join(parts) + " |")
    print("|---|---|" + "---|" * len(parts))
    for where, batch, rates in rows:
        print(f"| {where} | {batch} | " + " | ".join(f"{rates[p]:.1f}" for p in parts) + " |")


if __name__ == "__main__":
    main()
