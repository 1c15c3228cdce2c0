"""Does a model stop by itself, and does it read scenes under other looks? Two tables.

    .venv/bin/python scripts/measure_stop_look.py --checkpoint A.pt B.pt --labels before after \
        --data data/test --data4 data/test4 --out reports/stop-look

Stop table: count, shape and position on the 0..max set with max_objects steps (capped), one
step more and max_objects + 3 steps, and on the one-more-object set. Look table: count and
shape on the 0..max set under each look of air3d.evaluation.looks (at the model's own step
count). Writes OUT.md (both tables) and OUT.json (every figure); prints the tables.
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


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    labels = args.labels or [path.stem for path in args.checkpoint]
    if len(labels) != len(args.checkpoint):
        raise SystemExit(f"{len(args.checkpoint)} checkpoints but {len(labels)} labels")
    torch.set_num_threads(args.threads)
    predictors = [Predictor.from_checkpoint(path) for path in args.checkpoint]
    world, shapes = predictors[0].world, predictors[0].shapes
    data = load_dataset(args.data, world, shapes, args.limit)
    data4 = load_dataset(args.data4, world, shapes, args.limit) if args.data4 else None
    results: dict[str, Any] = {"labels": labels, "stop": {}, "looks": {}}
    K = world.max_objects
    stop_rows = [(f"0..{K} objects, {K} steps (capped)", data, None)]
    stop_rows += [(f"0..{K} objects, {K + k} steps", data, K + k) for k in (1, 3)]
    if data4 is not None:
        stop_rows += [(f"{K + 1} objects, {K + 1} steps", data4, K + 1)]
        stop_rows += [(f"{K + 1} objects, {K + 3} steps", data4, K + 3)]
    for row, dataset, steps in stop_rows:
        results["stop"][row] = [_measure(p, dataset, dataset.images, steps) for p in predictors]
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
    predictor.max_objects = steps
    predicted = []
    for start in range(0, len(images), 200):
        predicted += [answer.scene() for answer in predictor.infer(images[start : start + 200])]
    predictor.max_objects = None
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
