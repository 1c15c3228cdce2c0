"""The best, the median and the worst answers of an evaluation, as a sheet: each row the
input image | our renderer's drawing of q's answer (from q's camera where it has one) |
|difference|, with the image's score.

    .venv/bin/python benchmarks/reconstruction_sheet.py --report reports/clevr/x-blender.json \
        --data data/clevr-blender-test --out reports/clevr/x-blender-sheet.png [--per-group 3]

An image's score is the share of its objects found: true objects matched (Hungarian, on the
ground plane) by an answer with every attribute right and its 3D centre within 0.25, out of
max(true count, answered count), so that missed and spurious objects both cost. Ties are
broken by the mean centre error. The report must come from `air3d evaluate` on `--data`
(its predicted_scenes are in the data set's order).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from air3d.data import load_dataset
from air3d.evaluation.metrics import compare_scene
from air3d.images import to_pil
from air3d.renderer import WORLD_HELP, Scene, SceneRenderer, ShapeLibrary, open_world
from air3d.renderer.world import with_max_objects

SCALE = 3  # sheet pixels per canvas pixel
GAP, LABEL = 4, 14  # pixels between panels; height of a row's caption
WITHIN = 0.25  # world units: a found object's 3D centre error at most this


def image_score(true: Scene, pred: Scene, shapes: ShapeLibrary) -> tuple[float, float]:
    """(share of objects found, mean 3D centre error of the matched pairs)."""
    result = compare_scene(true, pred, shapes)
    found = sum(
        pair.true.shape == pair.pred.shape
        and dict(pair.true.attributes) == dict(pair.pred.attributes)
        and pair.center_distance <= WITHIN
        for pair in result.pairs
    )
    errors = [pair.center_distance for pair in result.pairs]
    share = found / max(result.true_count, result.pred_count, 1)
    return share, sum(errors) / len(errors) if errors else float("inf")


def pick(scores: list[tuple[float, float]], per_group: int) -> dict[str, list[int]]:
    """Image indices of the best, the median and the worst `per_group` images."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i][0], scores[i][1]))
    middle = max(0, len(order) // 2 - per_group // 2)
    return {
        "best": order[:per_group],
        "median": order[middle : middle + per_group],
        "worst": order[-per_group:][::-1],
    }


def sheet(
    inputs: torch.Tensor, drawn: torch.Tensor, captions: list[str], rows: list[int]
) -> Image.Image:
    height, width = inputs.shape[-2] * SCALE, inputs.shape[-1] * SCALE
    row_height = LABEL + height + GAP
    out = Image.new("RGB", (GAP + 3 * (width + GAP), GAP + len(rows) * row_height), "white")
    pen = ImageDraw.Draw(out)
    for r, index in enumerate(rows):
        top = GAP + r * row_height
        pen.text((GAP, top), captions[r], fill="black")
        panels = (inputs[index], drawn[index], (inputs[index] - drawn[index]).abs())
        for c, panel in enumerate(panels):
            image = to_pil(panel).resize((width, height), Image.Resampling.NEAREST)
            out.paste(image, (GAP + c * (width + GAP), top + LABEL))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", type=Path, required=True, help="air3d evaluate's OUT.json")
    parser.add_argument("--data", type=Path, required=True, help="the data set it evaluated")
    parser.add_argument("--world", default="clevr", help=WORLD_HELP)
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--per-group", type=int, default=3, help="images per group")
    args = parser.parse_args()
    world, shapes = open_world(args.world)
    report = json.loads(args.report.read_text())
    answers = report["predicted_scenes"]
    dataset = load_dataset(args.data, world, shapes, len(answers))
    # an answer may hold more objects than the prior draws (the Predictor's cap is twice it)
    answer_world = with_max_objects(world, 2 * world.max_objects)
    predicted = [Scene.from_json(answer, answer_world, shapes) for answer in answers]
    scores = [image_score(t, p, shapes) for t, p in zip(dataset.scenes, predicted, strict=True)]
    groups = pick(scores, args.per_group)
    rows = [i for group in groups.values() for i in group]
    with torch.no_grad():
        drawn = SceneRenderer(answer_world, shapes).render_scenes(
            [predicted[i] for i in rows], "crisp"
        )
    first, last = world.frame_rows
    inputs = dataset.images[rows][:, :, first:last]
    captions = [
        f"{name} #{i}: {scores[i][0]:.0%} found, true {len(dataset.scenes[i].objects)}, "
        f"answered {len(predicted[i].objects)}"
        for name, group in groups.items()
        for i in group
    ]
    image = sheet(inputs, drawn[:, :, first:last], captions, list(range(len(rows))))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    image.save(args.out)
    print(f"wrote {args.out}")
    for name, group in groups.items():
        print(name, ", ".join(f"#{i} {scores[i][0]:.0%}" for i in group))


if __name__ == "__main__":
    main()
