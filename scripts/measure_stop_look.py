"""Does a model stop by itself, and does it read scenes under other looks? Two tables.

    .venv/bin/python scripts/measure_stop_look.py --checkpoint A.pt B.pt --labels before after \
        --data data/test --data4 data/test4 --out reports/stop-look

Stop table: count, shape and position on the 0..max set and on the one-more-object set, in
two ways. "q alone, N steps": one forward pass of q run for N steps (max_objects: capped;
max_objects + 3: do the extra steps stay off?). "Predictor, cap N": what `air3d evaluate
--max-objects N` does, q's passes with the objects found so far painted out (erasure).
Look table: count and shape on the 0..max set under each look of air3d.evaluation.looks
(the Predictor as shipped). Writes OUT.md (both tables) and OUT.json (every figure); prints
the tables.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

from air3d.data import Dataset, load_dataset
from air3d.evaluation import compute_metrics
from air3d.evaluation.looks import images_under_look, look_names
from air3d.model import Predictor
from air3d.renderer import Scene, SceneObject


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    labels = args.labels or [path.stem for path in args.checkpoint]
    if len(labels) != len(args.checkpoint):
        raise SystemExit(f"{len(args.checkpoint)} checkpoints but {len(labels)} labels")
    torch.set_num_threads(args.threads)
    predictors = [Predictor.from_checkpoint(path, fit=False) for path in args.checkpoint]
    world, shapes = predictors[0].world, predictors[0].shapes
    data = load_dataset(args.data, world, shapes, args.limit)
    data4 = load_dataset(args.data4, world, shapes, args.limit) if args.data4 else None
    results: dict[str, Any] = {"labels": labels, "stop": {}, "looks": {}}
    K = world.max_objects
    sets = [(f"0..{K} objects", data)] + ([(f"{K + 1} objects", data4)] if data4 else [])
    stop_rows = []
    for name, dataset in sets:
        stop_rows += [(f"{name}, q alone, {K} steps", dataset, K, "q")]
        stop_rows += [(f"{name}, q alone, {K + 3} steps", dataset, K + 3, "q")]
        for cap in (K + 1, K + 3):
            stop_rows += [(f"{name}, Predictor, cap {cap}", dataset, cap, "p")]
    for row, dataset, steps, how in stop_rows:
        measure = _measure_q if how == "q" else _measure
        results["stop"][row] = [measure(p, dataset, dataset.images, steps) for p in predictors]
        print(f"stop: {row}: {_brief(results['stop'][row])}", file=sys.stderr)
    for name in args.looks or look_names(world):
        images = images_under_look(name, data.images, data.scenes, world, shapes)
        results["looks"][name] = [_measure(p, data, images, None) for p in predictors]
        print(f"look: {name}: {_brief(results['looks'][name])}", file=sys.stderr)
    markdown = _tables(results, len(data.images), len(data4.images) if data4 else 0)
    print(markdown)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(results, indent=1))
        args.out.with_suffix(".md").write_text(markdown)
        print(f"wrote {args.out.with_suffix('.md')} and .json", file=sys.stderr)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, nargs="+", required=True)
    parser.add_argument("--labels", nargs="+", help="a column name per checkpoint")
    parser.add_argument("--data", type=Path, required=True, help="0..max_objects test set")
    parser.add_argument("--data4", type=Path, help="test set with one object more than trained")
    parser.add_argument("--looks", nargs="+", help="only these looks (default: all)")
    parser.add_argument("--limit", type=int, help="only the first N images of each set")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", type=Path, help="writes OUT.md and OUT.json")
    return parser


def _measure(
    predictor: Predictor, dataset: Dataset, images: torch.Tensor, steps: int | None
) -> dict[str, Any]:
    """The Predictor's answers with max_objects = steps (None: as trained)."""
    predictor.max_objects = steps
    predicted = []
    for start in range(0, len(images), 200):
        predicted += [answer.scene() for answer in predictor.infer(images[start : start + 200])]
    predictor.max_objects = None
    return _metrics(predictor, dataset, predicted)


@torch.inference_mode()
def _measure_q(
    predictor: Predictor, dataset: Dataset, images: torch.Tensor, steps: int
) -> dict[str, Any]:
    """q's own answer in one forward pass of `steps` steps: presence > 0.5 up to the first
    absent step, q's means (no erasure, no refinement)."""
    q, shapes = predictor.model, predictor.shapes
    predicted = []
    for start in range(0, len(images), 200):
        out = q(images[start : start + 200], "mean", steps)
        present = (out.stack("pres_logit") > 0).cumprod(1).bool()
        xz, yaw = q.latents.squash(out.stack("xz_loc")), out.stack("yaw")
        shape = out.stack("shape")
        for b in range(len(present)):
            objects = []
            for n in present[b].nonzero()[:, 0].tolist():
                spec = shapes.specs[int(shape[b, n])]
                x, z = xz[b, n].tolist()
                yaw_deg = float(torch.rad2deg(yaw[b, n])) % 360.0
                objects.append(SceneObject(spec.name, (x, spec.height / 2, z), yaw_deg))
            predicted.append(Scene(tuple(objects)))
    return _metrics(predictor, dataset, predicted)


def _metrics(predictor: Predictor, dataset: Dataset, predicted: list[Scene]) -> dict[str, Any]:
    metrics = compute_metrics(
        dataset.scenes, predicted, predictor.shapes, predictor.world.workspace.width
    )
    keys = ("count_accuracy", "over_counted", "under_counted", "shape_accuracy")
    return {key: metrics[key] for key in (*keys, "position_error_mean_pct")}


def _brief(row: list[dict[str, Any]]) -> str:
    return " | ".join(f"count {m['count_accuracy']:.4f} shape {m['shape_accuracy']}" for m in row)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _tables(results: dict[str, Any], n: int, n4: int) -> str:
    labels = results["labels"]
    head = ["", *[f"{label}: {m}" for label in labels for m in ("count", "shape", "position")]]
    lines = [f"Stop ({n} scenes of 0..max objects; {n4} with one more):", ""]
    lines += _table(head)
    for row, measured in results["stop"].items():
        cells = [
            f"{_pct(m['count_accuracy'])} ({m['over_counted']} over, {m['under_counted']} under)"
            f" | {_pct(m['shape_accuracy'])} | {m['position_error_mean_pct']:.2f}%"
            for m in measured
        ]
        lines.append(f"| {row} | {' | '.join(cells)} |")
    lines += ["", f"Looks ({n} scenes of 0..max objects, the model's own step count):", ""]
    lines += _table(["look", *[f"{label}: {m}" for label in labels for m in ("count", "shape")]])
    for name, measured in results["looks"].items():
        cells = [f"{_pct(m['count_accuracy'])} | {_pct(m['shape_accuracy'])}" for m in measured]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def _table(head: list[str]) -> list[str]:
    return [f"| {' | '.join(head)} |", "|" + "---|" * len(head)]


if __name__ == "__main__":
    sys.exit(main())
