"""Renderer throughput: scenes per second, batched against a loop of single-scene renders.

    .venv/bin/python benchmarks/render.py [--device cpu|cuda] [--repeats 3] [--threads 1]
        [--world tabletop|clevr|PATH] [--objects 1,3] [--batches 1,16,64]

For each mode (crisp, soft), pass (forward; forward + backward of the mean pixel into the
scene's xz and yaw), object count (1, 3) and batch size (1, 16, 64) it times the batched
call (median of --repeats, after one warm-up) and a loop that renders 8 of the scenes one
at a time, and prints a Markdown table: scenes per second both ways, their ratio (what
batching buys) and the peak memory of the batched call (CUDA: torch.cuda's peak
allocation; CPU: peak growth of the process's resident set, sampled every millisecond).
`--profile` adds where the time goes: mesh building and projection, PyTorch3D's rasteriser
choosing the faces, the fragments' geometry, shading and blending, and the backward pass.
`--training` adds one row per training stage: optimiser steps per second of a sleep step
and an ELBO step at the training config's batch sizes.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from pytorch3d.structures import Meshes

from air3d.model.config import ModelConfig
from air3d.model.objective import stage_loss
from air3d.model.training import TrainConfig, Trainee
from air3d.renderer import (
    WORLD_HELP,
    Scene,
    SceneBatch,
    SceneRenderer,
    ShapeLibrary,
    World,
    open_world,
)
from air3d.renderer.prior import sample_scene


@dataclass(frozen=True)
class Row:
    mode: str
    objects: int
    batch: int
    backward: bool
    batched: float  # scenes per second, one batched call
    loop: float  # scenes per second, one call per scene
    peak_mb: float


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _scenes(
    world: World, shapes: ShapeLibrary, objects: int | None, n: int, seed: int = 0
) -> list[Scene]:
    """n scenes from the prior with exactly `objects` objects (None: the prior's count)."""
    rng = np.random.default_rng(seed)
    return [sample_scene(world, shapes, rng, count=objects) for _ in range(n)]


def _step(renderer: SceneRenderer, batch: SceneBatch, mode: str, backward: bool) -> None:
    """One render (and backward of the mean pixel into xz and yaw)."""
    if not backward:
        with torch.no_grad():
            renderer(batch, mode)
        return
    xz = batch.xz.clone().requires_grad_(True)
    yaw = batch.yaw.clone().requires_grad_(True)
    renderer(SceneBatch(batch.shape, batch.present, xz, yaw), mode).mean().backward()


def _loop(renderer: SceneRenderer, singles: list[SceneBatch], mode: str, backward: bool) -> None:
    for single in singles:
        _step(renderer, single, mode, backward)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as file:
        return int(file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _release_freed_memory() -> None:
    """Hands memory that glibc keeps after free() back to the OS, so RSS growth is honest."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: RSS growth may undercount
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _timed(run: Callable[[], None], device: torch.device, repeats: int) -> tuple[float, float]:
    """(median seconds, peak memory in MB) of `repeats` runs after one warm-up run.

    Peak memory, over the warm-up and the timed runs: on CUDA the peak allocation above
    what was allocated before; on CPU the peak growth of the resident set, sampled every
    millisecond, after handing freed memory back to the OS.
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    else:
        _release_freed_memory()
        base = _rss_bytes()
    peak, done = [base], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    if device.type != "cuda":
        sampler.start()
    run()  # warm-up
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        synchronize(device)
        times.append(time.perf_counter() - start)
    done.set()
    if device.type == "cuda":
        peak[0] = torch.cuda.max_memory_allocated(device)
    else:
        sampler.join()
    return statistics.median(times), (peak[0] - base) / 2**20


def _median_seconds(run: Callable[[], None], device: torch.device, repeats: int) -> float:
    return _timed(run, device, repeats)[0]


def measure(
    renderer: SceneRenderer, shapes: ShapeLibrary, device: torch.device, repeats: int,
    batches: list[int], objects_list: list[int],
) -> list[Row]:  # fmt: skip
    rows = []
    for mode in ("crisp", "soft"):
        for backward in (False, True):
            for objects in objects_list:
                scenes = _scenes(renderer.world, shapes, objects, max(batches))
                singles = [SceneBatch.from_scenes([s], shapes).to(device) for s in scenes]
                loop_n = min(8, len(singles))  # a loop's rate does not depend on its length

                loop = partial(_loop, renderer, singles[:loop_n], mode, backward)
                loop_rate = loop_n / _median_seconds(loop, device, repeats)
                for size in batches:
                    batch = SceneBatch.from_scenes(scenes[:size], shapes).to(device)
                    run = partial(_step, renderer, batch, mode, backward)
                    seconds, peak = _timed(run, device, repeats)
                    rows.append(Row(mode, objects, size, backward, size / seconds, loop_rate, peak))
                    print(f"  {rows[-1]}", flush=True)
    return rows


def table(rows: list[Row], device: torch.device) -> str:
    memory = "peak MB (CUDA alloc)" if device.type == "cuda" else "peak MB (RSS growth)"
    lines = [
        f"| mode | pass | objects | batch | batched scenes/s | loop scenes/s | ratio | {memory} |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        what = "fwd+bwd" if r.backward else "fwd"
        lines.append(
            f"| {r.mode} | {what} | {r.objects} | {r.batch} | {r.batched:.1f} | {r.loop:.1f} "
            f"| {r.batched / r.loop:.2f} | {r.peak_mb:.1f} |"
        )
    return "\n".join(lines)


def profile(
    renderer: SceneRenderer, shapes: ShapeLibrary, device: torch.device, repeats: int,
    size: int = 64, objects: int = 3,
) -> str:  # fmt: skip
    """Median seconds of each stage of one batched render, per mode, as a Markdown table."""
    batch = SceneBatch.from_scenes(_scenes(renderer.world, shapes, objects, size), shapes).to(
        device
    )
    lines = [
        f"| mode (batch {size}, {objects} objects) | meshes + projection (Python) "
        "| PyTorch3D rasteriser (faces per pixel) | fragments + shade + blend + composite "
        "| backward | total fwd+bwd |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for mode in ("crisp", "soft"):

        def build() -> Meshes:
            return renderer.project(renderer.meshes(batch, ground=False))

        ndc = build()
        t_mesh = _median_seconds(build, device, repeats)
        raster = partial(renderer.rasterize, ndc, renderer.object_faces(batch), mode)
        t_raster = _median_seconds(raster, device, repeats)
        t_forward = _median_seconds(partial(_step, renderer, batch, mode, False), device, repeats)
        t_total = _median_seconds(partial(_step, renderer, batch, mode, True), device, repeats)
        t_shade = t_forward - t_mesh - t_raster
        lines.append(
            f"| {mode} | {t_mesh * 1e3:.1f} ms | {t_raster * 1e3:.1f} ms | {t_shade * 1e3:.1f} ms "
            f"| {(t_total - t_forward) * 1e3:.1f} ms | {t_total * 1e3:.1f} ms |"
        )
    return "\n".join(lines)


def training(
    world: World, shapes: ShapeLibrary, renderer: SceneRenderer, device: torch.device,
    repeats: int,
) -> list[str]:  # fmt: skip
    """Table rows: one optimiser step of each training stage (TrainConfig's batch sizes,
    the default ModelConfig, scenes from the prior) timed end to end: q, the objective
    (the ELBO's soft render), backward and Adam."""
    config = TrainConfig()
    torch.manual_seed(0)
    trainee = Trainee(ModelConfig(), world, shapes).to(device)
    optimizer = torch.optim.Adam(trainee.parameters(), lr=config.elbo_lr)
    rows = []
    possible = [n for n, p in enumerate(world.prior.count_probs) if p > 0]
    counts = f"{min(possible)}-{max(possible)}"
    for stage, size in (("sleep", config.batch_size), ("elbo", config.elbo_batch_size)):
        batch = SceneBatch.from_scenes(_scenes(world, shapes, None, size), shapes).to(device)
        with torch.no_grad():
            images = renderer(batch)

        def step(stage: str = stage, images: torch.Tensor = images, batch=batch) -> None:
            terms = trainee(stage, images, batch, renderer, world)
            loss = stage_loss(stage, terms)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        seconds = _median_seconds(step, device, repeats)
        rows.append(
            f"| train: {stage} step | q + objective + backward + Adam | prior ({counts}) | {size} "
            f"| {size / seconds:.1f} images/s = {1 / seconds:.2f} steps/s | — | — | — |"
        )
    return rows


def machine(device: torch.device) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as file:
            cpu = next(line.split(":", 1)[1].strip() for line in file if "model name" in line)
    except (OSError, StopIteration):
        pass
    text = f"{os.cpu_count()} cores ({cpu}), torch {torch.__version__}, "
    text += f"torch threads {torch.get_num_threads()}"
    if device.type == "cuda":
        text += f", GPU {torch.cuda.get_device_name(device)}"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per cell (median)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--batches", default="1,16,64")
    parser.add_argument("--objects", default="1,3")
    parser.add_argument("--profile", action="store_true", help="also time each render stage")
    parser.add_argument("--training", action="store_true", help="also time training steps")
    parser.add_argument("--world", default=None, help=WORLD_HELP)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    world, shapes = open_world(args.world)
    renderer = SceneRenderer(world, shapes, device)
    batches = [int(b) for b in args.batches.split(",")]
    objects_list = [int(k) for k in args.objects.split(",")]
    load_before = os.getloadavg()
    started = time.perf_counter()
    rows = measure(renderer, shapes, device, args.repeats, batches, objects_list)
    stages = profile(renderer, shapes, device, args.repeats) if args.profile else None
    train_rows = training(world, shapes, renderer, device, args.repeats) if args.training else []
    load_after = os.getloadavg()
    print()
    size = f"{world.name} world, {world.image_size}x{world.image_size}"
    print(f"device: {device}; {machine(device)}; {size}")
    print(
        f"load average (1 min) before/after: {load_before[0]:.1f}/{load_after[0]:.1f}; "
        f"median of {args.repeats} runs; took {time.perf_counter() - started:.0f} s"
    )
    print()
    print("\n".join([table(rows, device), *train_rows]))
    if stages:
        print()
        print(stages)


if __name__ == "__main__":
    main()
