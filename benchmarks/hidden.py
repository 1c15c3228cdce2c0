"""How the answers fare on objects that others partly hide: CLEVR packs up to 10 objects
into the frame, and the centres that miss by far and the misread shapes gather behind
other objects.

    .venv/bin/python benchmarks/hidden.py --report reports/clevr/x-blender.json \\
        --data data/clevr-blender-test [--world clevr]

Each true object's hidden share is the share of its pixels that the objects in front of it
hide in our renderer's drawing of its scene, from its own camera, on a finer canvas
(renderer/visibility.py hidden_shares). The answers are paired with the truth as
`air3d evaluate` pairs them (Hungarian on the ground plane); by hidden share, the script
prints how many objects there are, the share of them whose centre misses by more than 0.25
(AP 0.25's threshold), the median miss, and the shape accuracy. The report must come from
`air3d evaluate` on `--data` (its predicted_scenes are in the data's order).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from air3d.evaluation.metrics import match_objects, xz_distance
from air3d.renderer import WORLD_HELP, Scene, SceneBatch, SceneRenderer, open_world
from air3d.renderer.visibility import hidden_shares
from air3d.renderer.world import with_max_objects

BINS = (0.0, 0.01, 0.2, 0.4, 0.6, 1.01)  # hidden share: in full view, a little, ..., most
FAR = 0.25  # world units: AP 0.25's threshold


def hidden_by_object(scenes: list[Scene], renderer: SceneRenderer, chunk: int = 50) -> list:
    """Each scene's objects' hidden shares (a list of lists of floats)."""
    shares = []
    for start in range(0, len(scenes), chunk):
        part = scenes[start : start + chunk]
        batch = SceneBatch.from_scenes(part, renderer.shapes, renderer.world.max_objects)
        rows = hidden_shares(renderer, batch).cpu()
        shares += [rows[i, : len(s.objects)].tolist() for i, s in enumerate(part)]
    return shares


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report", type=Path, required=True, help="air3d evaluate's JSON")
    parser.add_argument("--data", type=Path, required=True, help="its data set (scenes.jsonl)")
    parser.add_argument("--world", default="clevr", help=WORLD_HELP)
    parser.add_argument("--size", type=int, default=192, help="canvas side for the shares")
    args = parser.parse_args()
    world, shapes = open_world(args.world)
    renderer = SceneRenderer(replace(world, image_size=args.size), shapes)
    lines = (args.data / "scenes.jsonl").read_text().splitlines()
    truth = [Scene.from_json(json.loads(line), world, shapes) for line in lines]
    report = json.loads(args.report.read_text())
    # answers may hold more objects than the prior draws (the finder adds them)
    roomy = with_max_objects(world, max(len(s["objects"]) for s in report["predicted_scenes"]))
    answers = [Scene.from_json(s, roomy, shapes) for s in report["predicted_scenes"]]
    if len(answers) != len(truth):
        raise SystemExit(
            f"{args.report} answers {len(answers)} images, {args.data} has {len(truth)}"
        )
    shares = hidden_by_object(truth, renderer)
    rows = []  # (hidden share, miss, shape right) of each matched true object
    for true, answer, hidden in zip(truth, answers, shares, strict=True):
        for t, p in match_objects(true, answer):
            miss = xz_distance(true.objects[t], answer.objects[p])
            rows.append((hidden[t], miss, true.objects[t].shape == answer.objects[p].shape))
    table = np.array(rows, dtype=float)
    print(f"{args.report}: {len(table)} matched objects")
    print("| hidden share | objects | miss > 0.25 | median miss | shape right |")
    print("|---|---|---|---|---|")
    for low, high in zip(BINS[:-1], BINS[1:], strict=True):
        part = table[(table[:, 0] >= low) & (table[:, 0] < high)]
        if len(part) == 0:
            continue
        far = 100 * float((part[:, 1] > FAR).mean())
        print(
            f"| {low:.2f}-{min(high, 1.0):.2f} | {len(part)} | {far:.1f}% "
            f"| {float(np.median(part[:, 1])):.3f} | {100 * float(part[:, 2].mean()):.1f}% |"
        )


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
