"""Set-prediction average precision: the CLEVR protocol of Locatello et al. 2020 ("Object-
Centric Learning with Slot Attention", NeurIPS 2020, their CLEVR property prediction; the
function `average_precision_clevr` of their released code), written anew.

Every predicted object carries a confidence (AIR's presence probability). All predictions of
the whole data set are ranked by confidence, highest first; walking down the ranking, each
prediction is a true positive when
- some true object of its own image has all of the world's attributes equal to the
  prediction's (tabletop: shape; CLEVR: shape, colour, size, material), and
- the nearest such object (3D centre distance) is nearer than the threshold, and
- that nearest object was not already claimed by a higher-ranked prediction;
otherwise it is a false positive. Recall is over all true objects of the data set. AP is the
area under the interpolated precision-recall curve (precision made monotone from the right,
summed over the steps of recall), as in their `compute_average_precision`.

Two details follow their code, not a looser reading of the paper: the nearest matching true
object is chosen before asking whether it is taken (a duplicate of a claimed object is a
false positive even if another matching object lies within the threshold), and the distance
must be strictly below the threshold. Ties in confidence keep data-set order (their
`np.argsort` leaves ties unspecified).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

Vec3 = tuple[float, float, float]

# Distance thresholds of the published CLEVR table, in CLEVR's units (inf: attributes only).
CLEVR_THRESHOLDS: tuple[float, ...] = (math.inf, 1.0, 0.5, 0.25, 0.125, 0.0625)


@dataclass(frozen=True)
class TrueObject:
    attributes: Mapping[str, str]  # e.g. {"shape": "cube", "color": "red"}
    center: Vec3  # 3D centre, world units


@dataclass(frozen=True)
class PredictedObject:
    attributes: Mapping[str, str]
    center: Vec3
    confidence: float  # ranking score, e.g. the presence probability


def average_precision(
    truths: Sequence[Sequence[TrueObject]],
    predictions: Sequence[Sequence[PredictedObject]],
    threshold: float,
    attributes: Sequence[str],
) -> float | None:
    """AP in [0, 1] of per-image predictions against per-image truths (same order) at one
    distance threshold, comparing the named `attributes`. None when there are no true
    objects (recall is undefined)."""
    if len(truths) != len(predictions):
        raise ValueError(f"{len(truths)} true scenes but {len(predictions)} predicted scenes")
    if not threshold > 0:
        raise ValueError(f"distance threshold must be > 0 (or inf), got {threshold}")
    total = sum(len(objects) for objects in truths)
    if total == 0:
        return None
    ranked = sorted(
        ((image, pred) for image, preds in enumerate(predictions) for pred in preds),
        key=lambda item: -item[1].confidence,
    )
    claimed: set[tuple[int, int]] = set()
    hits = []
    for image, pred in ranked:
        nearest = _nearest_match(pred, truths[image], attributes)
        hit = nearest is not None and nearest[1] < threshold and (image, nearest[0]) not in claimed
        if hit:
            claimed.add((image, nearest[0]))
        hits.append(hit)
    return interpolated_ap(hits, total)


def _nearest_match(
    pred: PredictedObject, truth: Sequence[TrueObject], attributes: Sequence[str]
) -> tuple[int, float] | None:
    """(index, distance) of the nearest true object whose attributes all equal pred's."""
    best: tuple[int, float] | None = None
    for index, obj in enumerate(truth):
        if any(obj.attributes.get(a) != pred.attributes.get(a) for a in attributes):
            continue
        distance = math.dist(obj.center, pred.center)
        if best is None or distance < best[1]:
            best = (index, distance)
    return best


def interpolated_ap(hits: Sequence[bool], total_true: int) -> float:
    """Area under the interpolated precision-recall curve of a ranked list of hits (True:
    true positive) against `total_true` true objects."""
    precision, recall, tp = [0.0], [0.0], 0
    for rank, hit in enumerate(hits, start=1):
        tp += hit
        precision.append(tp / rank)
        recall.append(tp / total_true)
    precision.append(0.0)
    recall.append(1.0)
    for i in range(len(precision) - 2, -1, -1):  # best precision at this recall or beyond
        precision[i] = max(precision[i], precision[i + 1])
    return sum(
        precision[i + 1] * (recall[i + 1] - recall[i])
        for i in range(len(recall) - 1)
        if recall[i + 1] != recall[i]
    )


def threshold_key(threshold: float) -> str:
    """The JSON key of a threshold: "inf", "1", "0.5", ... (JSON has no infinity)."""
    return "inf" if math.isinf(threshold) else f"{threshold:g}"


def ap_table(
    truths: Sequence[Sequence[TrueObject]],
    predictions: Sequence[Sequence[PredictedObject]],
    attributes: Sequence[str],
    thresholds: Sequence[float] = CLEVR_THRESHOLDS,
) -> dict[str, float | None]:
    """AP at each threshold, keyed by `threshold_key`."""
    return {
        threshold_key(t): average_precision(truths, predictions, t, attributes) for t in thresholds
    }
