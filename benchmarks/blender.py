"""Blender (Cycles, CPU) seconds per image, the second renderer of make-data --renderer blender.

    .venv/bin/python benchmarks/blender.py [--world NAME] [--sizes 64 128] [--samples 64]
        [--images 8]

Renders --images prior scenes of the world (seed 0) at each size after one warm-up render
and prints a Markdown table of the median seconds per image, with the CPU and Cycles'
thread count (all cores unless --threads). A world with a frame (clevr: 320 x 240) is
rendered at its frame's size only.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from dataclasses import replace

from air3d.renderer import WORLD_HELP, open_world
from air3d.renderer.blender import BlenderConfig, BlenderRenderer
from air3d.renderer.prior import sample_scenes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--threads", type=int, default=0, help="0: all cores")
    parser.add_argument("--world", default=None, help=WORLD_HELP)
    args = parser.parse_args()
    world, shapes = open_world(args.world)
    scenes = sample_scenes(world, shapes, args.images, 0)
    objects = sum(len(s.objects) for s in scenes) / len(scenes)
    print(
        f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"{args.images} scenes, {objects:.1f} objects on average; Cycles threads: "
        f"{args.threads or 'all'}\n"
    )
    print("| image | samples | seconds per image (median) |\n|---|---|---|")
    for size in [world.image_size] if world.frame else args.sizes:
        config = BlenderConfig(samples=args.samples, threads=args.threads)
        renderer = BlenderRenderer(replace(world, image_size=size), shapes, config)
        width, height = world.frame or (size, size)
        renderer.render_one(scenes[0])  # warm-up: Cycles compiles its kernels once
        seconds = []
        for scene in scenes:
            began = time.perf_counter()
            renderer.render_one(scene)
            seconds.append(time.perf_counter() - began)
        print(f"| {width}x{height} | {args.samples} | {statistics.median(seconds):.3f} |")


if __name__ == "__main__":
    main()
