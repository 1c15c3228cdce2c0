"""Scene-level accuracy metrics: predicted scenes against the truth, objects matched by the
Hungarian algorithm on ground-plane distance (DESIGN.md, Evaluation).

Everything here is a pure function of lists of `Scene`s, the `ShapeLibrary` (for each
shape's rotational symmetry) and the workspace width (the scale of position errors).
Statistics that have no data (e.g. shape accuracy when nothing was matched) are None, so
that the result serialises to strict JSON.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from air3d.renderer import Scene, SceneObject, ShapeLibrary

NONE_LABEL = "(none)"  # confusion-matrix row/column of unmatched objects


@dataclass(frozen=True)
class MatchedPair:
    """One true object and the predicted object the Hungarian matching paired it with."""

    true: SceneObject
    pred: SceneObject
    distance: float  # ground-plane (x, z) distance between the centres, world units
    center_distance: float  # 3D distance between the centres (height follows the size)
    yaw_error_deg: float | None  # modulo the true shape's symmetry; None: yaw meaningless


@dataclass(frozen=True)
class ImageResult:
    """The comparison of one predicted scene with its true scene."""

    true_count: int
    pred_count: int
    pairs: tuple[MatchedPair, ...]
    missed: tuple[SceneObject, ...]  # true objects left unmatched (under-counting)
    spurious: tuple[SceneObject, ...]  # predicted objects left unmatched (over-counting)


def xz_distance(a: SceneObject, b: SceneObject) -> float:
    """Distance between two object centres on the ground plane (y is ignored)."""
    return math.hypot(a.position[0] - b.position[0], a.position[2] - b.position[2])


def match_objects(true: Scene, pred: Scene) -> list[tuple[int, int]]:
    """Pairs true and predicted objects, minimising the total ground-plane distance.

    Returns min(len(true), len(pred)) pairs (true index, predicted index), sorted by
    true index. Every object that can be paired is paired, however far apart.
    """
    if not true.objects or not pred.objects:
        return []
    cost = np.array([[xz_distance(t, p) for p in pred.objects] for t in true.objects])
    rows, cols = linear_sum_assignment(cost)
    return sorted(zip(rows.tolist(), cols.tolist(), strict=True))


def yaw_error_deg(true_deg: float, pred_deg: float, symmetry: int | None) -> float | None:
    """Smallest rotation (degrees, in [0, 180 / symmetry]) that takes the predicted yaw to
    one that looks the same as the true yaw, for a shape of the given symmetry order.

    symmetry k: yaws 360/k apart look the same (cube: 4). None: every yaw looks the same,
    so there is no error to report.
    """
    if symmetry is None:
        return None
    period = 360.0 / symmetry
    difference = (pred_deg - true_deg) % period
    return min(difference, period - difference)


def compare_scene(true: Scene, pred: Scene, shapes: ShapeLibrary) -> ImageResult:
    """Matches one predicted scene to its true scene and measures each matched pair."""
    matches = match_objects(true, pred)
    pairs = tuple(_pair(true.objects[i], pred.objects[j], shapes) for i, j in matches)
    matched_true = {i for i, _ in matches}
    matched_pred = {j for _, j in matches}
    return ImageResult(
        true_count=len(true.objects),
        pred_count=len(pred.objects),
        pairs=pairs,
        missed=tuple(o for i, o in enumerate(true.objects) if i not in matched_true),
        spurious=tuple(o for j, o in enumerate(pred.objects) if j not in matched_pred),
    )


def _pair(true: SceneObject, pred: SceneObject, shapes: ShapeLibrary) -> MatchedPair:
    symmetry = shapes.spec(true.shape, dict(true.attributes)).symmetry
    return MatchedPair(
        true,
        pred,
        xz_distance(true, pred),
        math.dist(true.position, pred.position),
        yaw_error_deg(true.yaw_deg, pred.yaw_deg, symmetry),
    )


def compute_metrics(
    true: Sequence[Scene], pred: Sequence[Scene], shapes: ShapeLibrary, workspace_width: float
) -> dict[str, Any]:
    """All accuracy metrics of predicted scenes against true scenes (same order), as plain
    data: counts, shapes (with confusion matrix), positions, rotations, and the same by
    true object count."""
    if len(true) != len(pred):
        raise ValueError(f"{len(true)} true scenes but {len(pred)} predicted scenes")
    if workspace_width <= 0:
        raise ValueError(f"workspace_width must be positive, got {workspace_width}")
    results = [compare_scene(t, p, shapes) for t, p in zip(true, pred, strict=True)]
    metrics = summarise(results, workspace_width)
    metrics["confusion"] = confusion_matrix(results, shapes)
    metrics["by_true_count"] = {
        str(count): summarise([r for r in results if r.true_count == count], workspace_width)
        for count in sorted({r.true_count for r in results})
    }
    return metrics


def summarise(results: Sequence[ImageResult], workspace_width: float) -> dict[str, Any]:
    """Count, shape, position and rotation statistics over a set of compared images."""
    return {
        "images": len(results),
        **count_metrics(results),
        **shape_metrics(results),
        **attribute_metrics(results),
        **position_metrics(results, workspace_width),
        **rotation_metrics(results),
    }


def count_metrics(results: Sequence[ImageResult]) -> dict[str, Any]:
    """How often the number of objects is right, too high, or too low."""
    n = len(results)
    over = sum(r.pred_count > r.true_count for r in results)
    under = sum(r.pred_count < r.true_count for r in results)
    return {
        "count_accuracy": _ratio(n - over - under, n),
        "over_counted": over,  # images with more predicted than true objects
        "under_counted": under,  # images with fewer predicted than true objects
        "true_objects": sum(r.true_count for r in results),
        "predicted_objects": sum(r.pred_count for r in results),
        "missed_objects": sum(len(r.missed) for r in results),
        "spurious_objects": sum(len(r.spurious) for r in results),
    }


def shape_metrics(results: Sequence[ImageResult]) -> dict[str, Any]:
    """Fraction of matched pairs whose predicted shape is the true shape."""
    pairs = [p for r in results for p in r.pairs]
    correct = sum(p.true.shape == p.pred.shape for p in pairs)
    return {"matched_objects": len(pairs), "shape_accuracy": _ratio(correct, len(pairs))}


def attribute_metrics(results: Sequence[ImageResult]) -> dict[str, Any]:
    """Fraction of matched pairs with the true value of each of the world's attributes
    (colour, size, material: none in a world without attributes), and of pairs right in
    every one, the shape included (what set-prediction AP asks of a match)."""
    pairs = [p for r in results for p in r.pairs]
    names = [name for name, _ in pairs[0].true.attributes] if pairs else []
    accuracy = {
        name: _ratio(
            sum(dict(p.true.attributes)[name] == dict(p.pred.attributes).get(name) for p in pairs),
            len(pairs),
        )
        for name in names
    }
    exact = sum(
        p.true.shape == p.pred.shape and p.true.attributes == p.pred.attributes for p in pairs
    )
    return {"attribute_accuracy": accuracy, "all_attributes_accuracy": _ratio(exact, len(pairs))}


def position_metrics(results: Sequence[ImageResult], workspace_width: float) -> dict[str, Any]:
    """3D distance of matched pairs' centres (world units), and their ground-plane distance
    in world units and in % of the workspace."""
    distances = [p.distance for r in results for p in r.pairs]
    mean, median = _mean(distances), _median(distances)
    centers = [p.center_distance for r in results for p in r.pairs]
    return {
        "center_error_mean": _mean(centers),  # 3D, world units (CLEVR's, in the clevr world)
        "center_error_median": _median(centers),
        "position_error_mean": mean,
        "position_error_median": median,
        "position_error_mean_pct": _percent(mean, workspace_width),
        "position_error_median_pct": _percent(median, workspace_width),
    }


def rotation_metrics(results: Sequence[ImageResult]) -> dict[str, Any]:
    """Yaw error of matched pairs whose true shape has a finite symmetry; the others (e.g.
    spheres and cylinders, whose yaw cannot be seen) are only counted."""
    errors = [p.yaw_error_deg for r in results for p in r.pairs]
    finite = [e for e in errors if e is not None]
    return {
        "rotation_error_mean_deg": _mean(finite),
        "rotation_error_median_deg": _median(finite),
        "rotation_objects": len(finite),
        "rotation_excluded_objects": len(errors) - len(finite),
    }


def confusion_matrix(
    results: Sequence[ImageResult], shapes: ShapeLibrary
) -> dict[str, dict[str, int]]:
    """counts[true shape][predicted shape] over matched pairs, every library shape listed.

    Unmatched objects are counted too, under NONE_LABEL: a true object that was missed
    in column NONE_LABEL, a spurious predicted object in row NONE_LABEL.
    """
    labels = [*shapes.names, NONE_LABEL]
    counts = {t: dict.fromkeys(labels, 0) for t in labels}
    for r in results:
        for pair in r.pairs:
            counts[pair.true.shape][pair.pred.shape] += 1
        for obj in r.missed:
            counts[obj.shape][NONE_LABEL] += 1
        for obj in r.spurious:
            counts[NONE_LABEL][obj.shape] += 1
    return counts


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _percent(value: float | None, scale: float) -> float | None:
    return None if value is None else 100.0 * value / scale
