"""A data set of our renderer's images redrawn at the frame's own resolution.

`air3d make-data` writes our renders on the world's canvas (CLEVR: 96 x 72 files), where a
model with a centre refiner or an object finder cannot use its finer canvas. This draws the
same scenes (each from its own camera) at `--size` pixels wide (CLEVR: 320 x 240, Blender's
size), beside copies of the set's scenes.jsonl, clevr_scenes.json and meta.json, so that
`air3d evaluate` scores the model's full path on our own images:

    .venv/bin/python benchmarks/full_frame.py --data data/clevr-ours-test \
        --out data/clevr-ours320-test [--size 320]
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from air3d.images import to_pil
from air3d.model.centre_refiner import fine_world
from air3d.renderer import Scene, SceneRenderer, open_world

CHUNK = 20  # scenes rendered at once


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a make-data folder")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--world", default="clevr")
    parser.add_argument("--size", type=int, default=320, help="the frame's width in pixels")
    args = parser.parse_args()
    world, shapes = open_world(args.world)
    fine = fine_world(world, args.size)
    renderer = SceneRenderer(fine, shapes)
    first, last = fine.frame_rows
    (args.out / "images").mkdir(parents=True, exist_ok=True)
    for name in ("meta.json", "scenes.jsonl", "clevr_scenes.json"):
        if (args.data / name).exists():
            shutil.copy(args.data / name, args.out / name)
    rows = [json.loads(line) for line in (args.data / "scenes.jsonl").open()]
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        images = renderer.render_scenes([Scene.from_json(row, world, shapes) for row in chunk])
        for row, image in zip(chunk, images, strict=True):
            to_pil(image[:, first:last]).save(args.out / row["image"])
    print(f"wrote {len(rows)} images of {args.size} px to {args.out}")


if __name__ == "__main__":
    main()
