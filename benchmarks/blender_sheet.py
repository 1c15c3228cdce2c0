"""Our renderer against Blender's images of the same scenes: a data set that
`air3d make-data --renderer blender` wrote (each scene with its own camera where the world
jitters it), redrawn by our renderer from its scenes.jsonl.

    .venv/bin/python benchmarks/blender_sheet.py --data data/clevr-blender-test \
        [--world clevr] [--limit N] [--sheet sheet.png --rows 16]

Both are compared as the model sees them: Blender's image through `air3d.images` onto the
world's canvas, ours crisp on the canvas, over the frame's rows. Prints the mean absolute
sRGB difference over all images (and its median and 90th percentile per image); --sheet
writes `rows` scenes as Blender | ours | |difference| (x3 per pixel) for the REPORT.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from PIL import Image

from air3d.data import load_dataset
from air3d.images import to_pil
from air3d.renderer import WORLD_HELP, SceneRenderer, open_world

SCALE = 3  # sheet pixels per canvas pixel
GAP = 4


def differences(data: Path, world_name: str | None, limit: int | None):
    """(Blender frames, our frames, per-image mean absolute differences (n,))."""
    world, shapes = open_world(world_name)
    dataset = load_dataset(data, world, shapes, limit)
    renderer = SceneRenderer(world, shapes)
    first, last = world.frame_rows
    ours = []
    with torch.no_grad():
        for start in range(0, len(dataset.scenes), 64):
            ours.append(renderer.render_scenes(dataset.scenes[start : start + 64], "crisp"))
    theirs = dataset.images[:, :, first:last]
    drawn = torch.cat(ours)[:, :, first:last]
    return theirs, drawn, (theirs - drawn).abs().flatten(1).mean(1)


def sheet(theirs: torch.Tensor, ours: torch.Tensor, rows: int) -> Image.Image:
    """rows scenes, each Blender | ours | |difference|, upscaled SCALE times."""
    height, width = theirs.shape[-2] * SCALE, theirs.shape[-1] * SCALE
    out = Image.new("RGB", (GAP + 3 * (width + GAP), GAP + rows * (height + GAP)), "white")
    for r in range(rows):
        panels = (theirs[r], ours[r], (theirs[r] - ours[r]).abs())
        for c, panel in enumerate(panels):
            image = to_pil(panel).resize((width, height), Image.Resampling.NEAREST)
            out.paste(image, (GAP + c * (width + GAP), GAP + r * (height + GAP)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="make-data --renderer blender")
    parser.add_argument("--world", default="clevr", help=WORLD_HELP)
    parser.add_argument("--limit", type=int, default=None, help="only the first N images")
    parser.add_argument("--sheet", type=Path, default=None, help="write a comparison sheet")
    parser.add_argument("--rows", type=int, default=16, help="scenes on the sheet")
    args = parser.parse_args()
    theirs, ours, per_image = differences(args.data, args.world, args.limit)
    q = torch.quantile(per_image, torch.tensor([0.5, 0.9])).tolist()
    print(f"images: {len(per_image)}")
    mean = per_image.mean()
    print(f"mean absolute sRGB difference: {mean:.4f} (median {q[0]:.4f}, p90 {q[1]:.4f})")
    if args.sheet is not None:
        sheet(theirs, ours, min(args.rows, len(per_image))).save(args.sheet)
        print(f"wrote {args.sheet}")


if __name__ == "__main__":
    main()
