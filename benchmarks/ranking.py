"""How the answers' confidences rank them for set prediction, and whether their position_sds
say how far the centres miss: the figures behind the CLEVR REPORT's ranking table.

    .venv/bin/python benchmarks/ranking.py --data data/clevr-blender-val2 \\
        [--checkpoint assets/model/clevr.pt] [--limit N] [--tolerances 0.0625 0.125 0.25]

Runs the model over a labelled data set once (its scales calibrated to the set, as `air3d
evaluate` does), then prints AP at CLEVR's thresholds with the same answers ranked several
ways: by presence alone (as published models rank), by presence times the kind's
probability, by that times P(within T) of each object's position_sd for each tolerance T
(the shipped confidence is T = POSITION_TOLERANCE), and by each object's true miss (an
oracle: what no ranking can beat). Then the position_sds' calibration: the misses of the
objects matched to a true one (Hungarian, on the ground) divided by their position_sd: where
the spreads are right (a 2D Gaussian's), their median is 0.83, and 63% lie within 1 and 98%
within 2.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from air3d.data import load_clevr_dataset
from air3d.evaluation.report import _described
from air3d.evaluation.set_prediction import PredictedObject, TrueObject, ap_table
from air3d.model.predictor import (
    POSITION_TOLERANCE,
    Inference,
    InferredObject,
    Predictor,
    share_within,
)
from air3d.model.scale_calibration import calibrate_to, calibration_sample
from air3d.model.shipped import choose_checkpoint
from air3d.renderer import Scene

BATCH = 64


def ground_misses(result: Inference, truth: Scene) -> dict[int, float]:
    """Object index -> its distance on the ground from the true object matched to it."""
    if not result.objects or not truth.objects:
        return {}
    answered = np.array([o.position for o in result.objects])[:, [0, 2]]
    true = np.array([o.position for o in truth.objects])[:, [0, 2]]
    distance = np.linalg.norm(answered[:, None] - true[None], axis=-1)
    rows, cols = linear_sum_assignment(distance)
    return {int(r): float(distance[r, c]) for r, c in zip(rows, cols, strict=True)}


def ranked_ap(
    results: list[Inference],
    truths: list[Scene],
    attributes: list[str],
    score: Callable[[InferredObject], float],
) -> dict[str, float | None]:
    """AP at CLEVR's thresholds with each object scored by score(object)."""
    true = [[TrueObject(_described(o), o.position) for o in s.objects] for s in truths]
    predicted = [
        [
            PredictedObject(_described(scene_object), scene_object.position, score(obj))
            for scene_object, obj in zip(result.scene().objects, result.objects, strict=True)
        ]
        for result in results
    ]
    return ap_table(true, predicted, attributes)


def kind_share(obj: InferredObject) -> float:
    """presence × the kind's probability: the confidence without its position factor."""
    return (obj.confidence or obj.presence) / share_within(POSITION_TOLERANCE, obj.position_sd)


def print_row(name: str, values: dict[str, float | None]) -> None:
    cells = " ".join(f"{k}: {'-' if v is None else f'{100 * v:.1f}'}" for k, v in values.items())
    print(f"{name:34s} {cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a make-data folder")
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--tolerances", type=float, nargs="+", default=[0.0625, 0.125, 0.25])
    args = parser.parse_args()
    predictor = Predictor.from_checkpoint(
        choose_checkpoint(args.checkpoint, "clevr"), "cpu", refine=0, fit=False
    )
    world, shapes = predictor.world, predictor.shapes
    data = load_clevr_dataset(
        args.data / "clevr_scenes.json", args.data, world, shapes, args.limit, predictor.canvas
    )
    picked = calibration_sample(predictor, len(data.images))
    if picked:
        print(calibrate_to(predictor, data.images[picked].split(BATCH)))
    with torch.inference_mode():
        results = [r for batch in data.images.split(BATCH) for r in predictor.infer(batch)]
    misses = [ground_misses(r, s) for r, s in zip(results, data.scenes, strict=True)]
    miss_of = {
        id(obj): miss.get(i, math.inf)
        for result, miss in zip(results, misses, strict=True)
        for i, obj in enumerate(result.objects)
    }
    factors = [name for name, _ in shapes.factors]

    def ap(score: Callable[[InferredObject], float]) -> dict[str, float | None]:
        return ranked_ap(results, data.scenes, factors, score)

    print_row("presence", ap(lambda o: o.presence))
    print_row("presence x kind", ap(kind_share))
    for t in args.tolerances:
        shipped = " (shipped)" if t == POSITION_TOLERANCE else ""
        print_row(
            f"x P(within {t}){shipped}",
            ap(lambda o, t=t: kind_share(o) * share_within(t, o.position_sd)),
        )

    # The true miss in place of the position_sd: P(within) of a Gaussian of that RMS.
    def oracle_score(obj: InferredObject) -> float:
        return kind_share(obj) * share_within(POSITION_TOLERANCE, max(miss_of[id(obj)], 1e-9))

    oracle = ap(oracle_score)
    print_row("oracle: the true miss for the sd", oracle)
    ratios = np.array(
        [
            miss_of[id(o)] / o.position_sd
            for r in results
            for o in r.objects
            if o.position_sd and math.isfinite(miss_of[id(o)])
        ]
    )
    if len(ratios):
        print(
            f"miss / position_sd over {len(ratios)} matched objects: median "
            f"{np.median(ratios):.3f}, within 1x {np.mean(ratios < 1):.3f}, within 2x "
            f"{np.mean(ratios < 2):.3f} (right spreads: {math.sqrt(math.log(2)):.3f}, "
            f"{-math.expm1(-1):.3f}, {-math.expm1(-4):.3f})"
        )


if __name__ == "__main__":
    main()
