"""The evaluation report: run a predictor over a data set, measure it, write JSON and Markdown.

The goals (each world's own, from its world.yaml) live in targets.py, the Markdown in
markdown.py.

`evaluate` works with anything shaped like `air3d.model.Predictor` (see `PredictorLike`):
the AIR model, the supervised baseline, or the analysis-by-synthesis baseline.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from tqdm import tqdm

from air3d.data import Dataset
from air3d.evaluation.markdown import to_markdown
from air3d.evaluation.metrics import compute_metrics
from air3d.evaluation.set_prediction import (
    CLEVR_THRESHOLDS,
    PredictedObject,
    TrueObject,
    ap_table,
)
from air3d.evaluation.targets import Target, check_targets, world_targets
from air3d.images import Canvas, resize_canvas
from air3d.model.centre_refiner import fine_world
from air3d.renderer import Scene, SceneBatch, SceneObject, SceneRenderer, ShapeLibrary, World


class InferenceLike(Protocol):
    """An answer for one image. Where it also has `objects` with a `presence` each (the
    model's Inference), those rank its objects for average precision; otherwise every object
    has confidence 1."""

    def scene(self) -> Scene: ...


class PredictorLike(Protocol):
    """What `evaluate` needs of a predictor (docs/CONTRACTS.md, `air3d.model.Predictor`)."""

    world: World
    shapes: ShapeLibrary
    name: str
    checkpoint_hash: str | None

    def infer(self, images: torch.Tensor) -> Sequence[InferenceLike]: ...


def evaluate(
    predictor: PredictorLike,
    dataset: Dataset,
    batch_size: int = 64,
    timing_calls: int = 50,
    info: dict[str, Any] | None = None,
    progress: bool = False,
    ap_thresholds: Sequence[float] = CLEVR_THRESHOLDS,
    targets: Sequence[Target] | None = None,
) -> dict[str, Any]:
    """Runs `predictor` over `dataset` and returns the report as plain data.

    batch_size: images per `infer` call in the main pass; its time per image is the
      "batched" figure. With batch_size 1 the main pass also gives the batch-1 figure.
    timing_calls: single-image `infer` calls (after a warm-up) whose median is the
      batch-1 time per image; 0 skips them (then batch-1 time is only known when
      batch_size is 1). torch's thread count is left as it is, and recorded.
    info: extra entries for the report's header (data directory, command line, ...); its
      "renderer" (what drew the data: meta.json's) picks the targets that apply.
    ap_thresholds: 3D centre distances (world units) of the set-prediction AP table.
    targets: the goals to check (None: the predictor's world's, `world_targets`).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    canvas = getattr(predictor, "canvas", None)  # a finer canvas, where it has one
    _check_images(dataset.images, predictor.world.image_size if canvas is None else canvas.size)
    n = len(dataset.scenes)
    _warm_up(predictor, dataset.images)
    predicted, scores, seconds = _infer_all(predictor, dataset.images, batch_size, progress)
    world, shapes = predictor.world, predictor.shapes
    timing = _timing(predictor, dataset.images, batch_size, seconds, timing_calls)
    report = {
        "name": predictor.name,
        "checkpoint_hash": getattr(predictor, "checkpoint_hash", None),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "world": world.name,
        "images": n,
        "device": str(getattr(predictor, "device", "cpu")),
        "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        **(info or {}),
        "metrics": compute_metrics(dataset.scenes, predicted, shapes, world.workspace.width),
        "reconstruction_mse": reconstruction_mse(
            _on_world_canvas(dataset.images, world),
            predicted,
            world,
            shapes,
            batch_size=max(batch_size, 16),
        ),
        "ap": set_prediction_ap(dataset.scenes, predicted, scores, shapes, ap_thresholds),
        "timing": timing,
        "predicted_scenes": [scene.to_json() for scene in predicted],
    }
    if targets is None:
        targets = world_targets(world)
    report["targets"] = check_targets(report, targets)
    return report


def _on_world_canvas(images: torch.Tensor, world: World) -> torch.Tensor:
    """Images on a finer canvas of the world's frame resized to the world's canvas."""
    if images.shape[-1] == world.image_size:
        return images
    finer = Canvas.of(fine_world(world, images.shape[-1]))
    return resize_canvas(images, finer, Canvas.of(world))


def _check_images(images: torch.Tensor, image_size: int) -> None:
    expected = (3, image_size, image_size)
    if images.ndim != 4 or tuple(images.shape[1:]) != expected:
        raise ValueError(
            f"data set images are {tuple(images.shape[1:])}; the predictor takes {expected}"
        )


def _warm_up(predictor: PredictorLike, images: torch.Tensor) -> None:
    warmup = getattr(predictor, "warmup", None)
    if callable(warmup):
        warmup()
    elif len(images):
        predictor.infer(images[:1])


def _infer_all(
    predictor: PredictorLike, images: torch.Tensor, batch_size: int, progress: bool
) -> tuple[list[Scene], Scores, list[float]]:
    """Scenes for every image, their objects' ranking scores, and the seconds each `infer`
    call took (one per batch)."""
    scenes: list[Scene] = []
    scores = Scores([], [])
    seconds: list[float] = []
    with tqdm(total=len(images), desc="evaluate", unit="img", disable=not progress) as bar:
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            began = time.perf_counter()
            results = predictor.infer(chunk)
            seconds.append(time.perf_counter() - began)
            if len(results) != len(chunk):
                raise ValueError(f"predictor returned {len(results)} results for {len(chunk)}")
            for result in results:
                scenes.append(result.scene())
                scores.confidences.append(_object_scores(result, scenes[-1], _confidence))
                scores.presences.append(_object_scores(result, scenes[-1], _presence))
            bar.update(len(chunk))
    return scenes, scores, seconds


def _object_scores(
    result: InferenceLike, scene: Scene, score: Callable[[object], float]
) -> list[float]:
    """Each object's score(object) where the answer lists its objects, else 1 each."""
    objects = getattr(result, "objects", None)
    if objects is not None and len(objects) == len(scene.objects):
        return [score(obj) for obj in objects]
    return [1.0] * len(scene.objects)


def _presence(obj: object) -> float:
    """The object's presence (1 without one): what published models rank by."""
    return float(getattr(obj, "presence", 1.0))


def _confidence(obj: object) -> float:
    """The object's confidence where the answer gives one (the Predictor's: presence, kind
    and how sure its position is), else its presence."""
    given = getattr(obj, "confidence", None)
    return _presence(obj) if given is None else float(given)


@dataclass(frozen=True)
class Scores:
    """Per scene, its objects' ranking scores: the answer's confidences (what AP ranks by)
    and their presences alone (how published models rank, for a like comparison)."""

    confidences: list[list[float]]
    presences: list[list[float]]


def set_prediction_ap(
    true: Sequence[Scene],
    predicted: Sequence[Scene],
    scores: Scores,
    shapes: ShapeLibrary,
    thresholds: Sequence[float] = CLEVR_THRESHOLDS,
) -> dict[str, Any]:
    """The report's `ap` section: AP (fraction) at each 3D distance threshold, keyed "inf",
    "1", "0.5", ... (evaluation/set_prediction.py), predictions ranked by their confidences;
    where those are not the presences, also `values_by_presence`, ranked by presence alone.
    A match needs the shape and every attribute of the world (CLEVR: shape, color, size,
    material)."""
    attributes = [name for name, _ in shapes.factors]
    truths = [[TrueObject(_described(o), o.position) for o in scene.objects] for scene in true]

    def table(ranking: Sequence[Sequence[float]]) -> dict[str, float | None]:
        predictions = [
            [
                PredictedObject(_described(o), o.position, c)
                for o, c in zip(scene.objects, confidences, strict=True)
            ]
            for scene, confidences in zip(predicted, ranking, strict=True)
        ]
        return ap_table(truths, predictions, attributes, thresholds)

    section = {
        "attributes": attributes,
        "distance": "3D centre distance, world units; a match must be strictly nearer",
        "values": table(scores.confidences),
    }
    if scores.confidences != scores.presences:
        section["values_by_presence"] = table(scores.presences)
    return section


def _described(obj: SceneObject) -> dict[str, str]:
    """{"shape": ..., attribute: value, ...}: what set prediction compares."""
    return {"shape": obj.shape, **dict(obj.attributes)}


def _timing(
    predictor: PredictorLike,
    images: torch.Tensor,
    batch_size: int,
    seconds: list[float],
    timing_calls: int,
) -> dict[str, Any]:
    n = len(images)
    batched = 1000.0 * sum(seconds) / n if n else None
    if batch_size == 1:
        batch1, calls = (1000.0 * statistics.median(seconds) if seconds else None), len(seconds)
    else:
        batch1, calls = _time_batch1(predictor, images, timing_calls), timing_calls
    return {
        "batch1_ms_per_image": batch1,  # median over single-image calls
        "batch1_calls": calls if batch1 is not None else 0,
        "batched_ms_per_image": batched,  # main pass: total time / images
        "batch_size": min(batch_size, n) if n else batch_size,
    }


def _time_batch1(predictor: PredictorLike, images: torch.Tensor, calls: int) -> float | None:
    """Median milliseconds of `calls` single-image infer calls, cycling through the images."""
    if calls <= 0 or not len(images):
        return None
    times = []
    for i in range(calls):
        image = images[i % len(images)][None]
        began = time.perf_counter()
        predictor.infer(image)
        times.append(time.perf_counter() - began)
    return 1000.0 * statistics.median(times)


def reconstruction_mse(
    images: torch.Tensor,
    scenes: Sequence[Scene],
    world: World,
    shapes: ShapeLibrary,
    batch_size: int = 64,
    renderer: SceneRenderer | None = None,
) -> float | None:
    """Mean over images and pixels of the squared difference between each image and the
    crisp rendering of its scene (colours in [0, 1])."""
    if not len(scenes):
        return None
    renderer = renderer or SceneRenderer(world, shapes)
    total = 0.0
    for start in range(0, len(scenes), batch_size):
        chunk = list(scenes[start : start + batch_size])
        batch = SceneBatch.from_scenes(chunk, shapes)
        with torch.no_grad():
            rendered = renderer(batch, "crisp").cpu()
        target = images[start : start + len(chunk)].to(rendered)
        total += (rendered - target).pow(2).mean(dim=(1, 2, 3)).sum().item()
    return total / len(scenes)


def write_report(report: dict[str, Any], prefix: str | Path) -> tuple[Path, Path]:
    """Writes PREFIX.json and PREFIX.md (each atomically); returns their paths."""
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    json_path = prefix.with_name(prefix.name + ".json")
    md_path = prefix.with_name(prefix.name + ".md")
    _write_atomic(json_path, json.dumps(report, indent=2, allow_nan=False) + "\n")
    _write_atomic(md_path, to_markdown(report))
    return json_path, md_path


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def load_report(path: str | Path) -> dict[str, Any]:
    """Reads a report JSON written by `write_report`."""
    path = Path(path)
    try:
        report = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not a report JSON: {error}") from None
    if not isinstance(report, dict) or "metrics" not in report:
        raise ValueError(f"{path}: not an evaluation report (no 'metrics')")
    return report
