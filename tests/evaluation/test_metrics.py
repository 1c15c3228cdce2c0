"""Evaluation metrics on hand-made scenes: matching, counting, shapes, positions, yaw."""

from __future__ import annotations

import json
import math

import pytest

from air3d.evaluation.metrics import (
    NONE_LABEL,
    compare_scene,
    compute_metrics,
    match_objects,
    yaw_error_deg,
)
from air3d.renderer import Scene, SceneObject, ShapeLibrary

WIDTH = 2.4  # the shipped workspace's width; the metrics only need a number


def obj(shape: str, x: float, z: float, yaw: float = 0.0) -> SceneObject:
    return SceneObject(shape, (x, 0.3, z), yaw)


def scene(*objects: SceneObject) -> Scene:
    return Scene(tuple(objects))


def test_matching_pairs_nearest_objects_whatever_their_order() -> None:
    a, b, c = obj("cube", -1.0, -1.0), obj("sphere", 0.0, 0.5), obj("cone", 1.0, -0.5)
    predicted = scene(obj("cone", 0.95, -0.5), obj("cube", -1.0, -0.9), obj("sphere", 0.1, 0.5))
    assert match_objects(scene(a, b, c), predicted) == [(0, 1), (1, 2), (2, 0)]
    assert match_objects(scene(c, a, b), predicted) == [(0, 0), (1, 1), (2, 2)]


def test_matching_minimises_the_total_not_each_greedily() -> None:
    # Greedy nearest-first would pair true 0 with pred 0 (0.1 apart) and leave true 1 with
    # pred 1 (2.0 apart, total 2.1); the optimum pays 0.3 + 0.5 = 0.8.
    true = scene(obj("cube", 0.0, 0.0), obj("cube", 0.6, 0.0))
    pred = scene(obj("cube", 0.1, 0.0), obj("cube", -0.3, 0.0))
    assert match_objects(true, pred) == [(0, 1), (1, 0)]


def test_matching_with_empty_scenes_pairs_nothing() -> None:
    assert match_objects(scene(), scene(obj("cube", 0, 0))) == []
    assert match_objects(scene(obj("cube", 0, 0)), scene()) == []
    assert match_objects(scene(), scene()) == []


@pytest.mark.parametrize(
    ("true", "pred", "symmetry", "error"),
    [
        (5.0, 95.0, 4, 0.0),  # a quarter turn of a cube looks the same
        (40.0, 50.0, 4, 10.0),
        (1.0, 359.0, 4, 2.0),  # across 0 / 360
        (1.0, 359.0, 1, 2.0),
        (10.0, 190.0, 1, 180.0),  # no symmetry: half a turn is the largest error
        (10.0, 190.0, 2, 0.0),
        (0.0, 44.0, 4, 44.0),
        (0.0, 46.0, 4, 44.0),  # 46 is 44 short of the next equivalent yaw, 90
        (-30.0, 420.0, 4, 0.0),  # angles outside [0, 360) are fine
    ],
)
def test_yaw_error_is_taken_modulo_the_symmetry(
    true: float, pred: float, symmetry: int, error: float
) -> None:
    assert yaw_error_deg(true, pred, symmetry) == pytest.approx(error, abs=1e-9)


def test_yaw_error_of_a_shape_without_visible_yaw_is_none() -> None:
    assert yaw_error_deg(0.0, 123.0, None) is None


def test_rotation_statistics_ignore_round_shapes_and_count_them(shapes: ShapeLibrary) -> None:
    assert shapes.spec("cylinder").symmetry is None and shapes.spec("cube").symmetry == 4
    true = [scene(obj("cube", 0, 0, 40.0), obj("cylinder", 1, 1, 0.0))]
    pred = [scene(obj("cube", 0, 0, 50.0), obj("cylinder", 1, 1, 170.0))]
    m = compute_metrics(true, pred, shapes, WIDTH)
    assert m["rotation_error_mean_deg"] == pytest.approx(10.0)
    assert m["rotation_error_median_deg"] == pytest.approx(10.0)
    assert m["rotation_objects"] == 1
    assert m["rotation_excluded_objects"] == 1


def test_rotation_uses_the_true_shapes_symmetry(shapes: ShapeLibrary) -> None:
    # A cylinder predicted as a cube: no yaw to compare. A cube predicted as a cylinder: the
    # cube's symmetry applies.
    true = [scene(obj("cylinder", 0, 0, 0.0), obj("cube", 1, 1, 0.0))]
    pred = [scene(obj("cube", 0, 0, 30.0), obj("cylinder", 1, 1, 100.0))]
    m = compute_metrics(true, pred, shapes, WIDTH)
    assert m["rotation_objects"] == 1
    assert m["rotation_error_mean_deg"] == pytest.approx(10.0)


def test_count_accuracy_and_over_and_under_counting(shapes: ShapeLibrary) -> None:
    one, two = obj("cube", 0, 0), obj("sphere", 1, 1)
    true = [scene(one), scene(one, two), scene(), scene(one), scene(one, two)]
    pred = [scene(one), scene(one), scene(two), scene(one, two), scene(two, one)]
    m = compute_metrics(true, pred, shapes, WIDTH)
    assert m["images"] == 5
    assert m["count_accuracy"] == pytest.approx(2 / 5)
    assert m["over_counted"] == 2  # images 2 and 3
    assert m["under_counted"] == 1  # image 1
    assert (m["true_objects"], m["predicted_objects"]) == (6, 7)
    assert (m["missed_objects"], m["spurious_objects"]) == (1, 2)
    assert m["matched_objects"] == 5


def test_shape_accuracy_and_confusion_matrix(shapes: ShapeLibrary) -> None:
    true = [
        scene(obj("cube", 0, 0), obj("cone", 1, 1)),
        scene(obj("cylinder", 0, 0), obj("sphere", -1, -1)),
    ]
    pred = [
        scene(obj("cylinder", 1, 1), obj("cube", 0, 0)),  # cone seen as cylinder
        scene(obj("cylinder", 0, 0), obj("cube", 1, -1)),  # sphere missed, cube spurious
    ]
    m = compute_metrics(true, pred, shapes, WIDTH)
    # Matching pairs the cube with the cube, the cone with the cylinder, the cylinder with
    # the cylinder, and the sphere (2 away) with the spurious cube (2 away): 2 of 4 right.
    assert m["shape_accuracy"] == pytest.approx(2 / 4)
    confusion = m["confusion"]
    assert list(confusion) == [*shapes.names, NONE_LABEL]
    assert confusion["cube"]["cube"] == 1
    assert confusion["cone"]["cylinder"] == 1
    assert confusion["cylinder"]["cylinder"] == 1
    assert confusion["sphere"]["cube"] == 1
    assert sum(sum(row.values()) for row in confusion.values()) == 4


def test_confusion_matrix_counts_missed_and_spurious_objects(shapes: ShapeLibrary) -> None:
    true = [scene(obj("cube", 0, 0), obj("cone", 1, 1)), scene()]
    pred = [scene(obj("cube", 0, 0)), scene(obj("sphere", 0, 0), obj("sphere", 1, 0))]
    confusion = compute_metrics(true, pred, shapes, WIDTH)["confusion"]
    assert confusion["cone"][NONE_LABEL] == 1
    assert confusion[NONE_LABEL]["sphere"] == 2
    assert confusion["cube"]["cube"] == 1


def test_position_error_in_world_units_and_percent_of_width(shapes: ShapeLibrary) -> None:
    true = [scene(obj("cube", 0.0, 0.0), obj("sphere", 1.0, 1.0)), scene(obj("cone", -1, 0))]
    pred = [
        scene(obj("sphere", 1.0, 1.12), obj("cube", 0.03, -0.04)),  # 0.12 and 0.05 off
        scene(obj("cone", -1.0, 0.24)),  # 0.24 off
    ]
    m = compute_metrics(true, pred, shapes, WIDTH)
    assert m["position_error_mean"] == pytest.approx((0.05 + 0.12 + 0.24) / 3)
    assert m["position_error_median"] == pytest.approx(0.12)
    assert m["position_error_mean_pct"] == pytest.approx(100 * (0.41 / 3) / WIDTH)
    assert m["position_error_median_pct"] == pytest.approx(5.0)


def test_position_error_ignores_height(shapes: ShapeLibrary) -> None:
    true = scene(SceneObject("cube", (0.0, 0.3, 0.0), 0.0))
    pred = scene(SceneObject("cube", (0.0, 5.0, 0.1), 0.0))
    assert compare_scene(true, pred, shapes).pairs[0].distance == pytest.approx(0.1)


def test_a_perfect_prediction_scores_perfectly(shapes: ShapeLibrary) -> None:
    true = [scene(obj("cube", 0, 0, 10), obj("sphere", 1, 1)), scene()]
    m = compute_metrics(true, true, shapes, WIDTH)
    assert m["count_accuracy"] == 1.0 and m["shape_accuracy"] == 1.0
    assert m["position_error_mean"] == 0.0 and m["rotation_error_median_deg"] == 0.0
    assert m["over_counted"] == m["under_counted"] == 0


def test_empty_scenes_give_none_not_nan_and_serialise(shapes: ShapeLibrary) -> None:
    m = compute_metrics([scene(), scene()], [scene(), scene()], shapes, WIDTH)
    assert m["count_accuracy"] == 1.0
    assert m["shape_accuracy"] is None
    assert m["position_error_mean"] is None and m["position_error_mean_pct"] is None
    assert m["rotation_error_median_deg"] is None and m["rotation_objects"] == 0
    json.dumps(m, allow_nan=False)  # strict JSON: no NaN anywhere
    assert compute_metrics([], [], shapes, WIDTH)["count_accuracy"] is None


def test_breakdown_by_true_count(shapes: ShapeLibrary) -> None:
    one, two = obj("cube", 0, 0), obj("sphere", 1, 1)
    true = [scene(), scene(one), scene(one), scene(one, two)]
    pred = [scene(), scene(one), scene(), scene(one, two, obj("cone", -1, -1))]
    by_count = compute_metrics(true, pred, shapes, WIDTH)["by_true_count"]
    assert list(by_count) == ["0", "1", "2"]
    assert by_count["1"]["images"] == 2 and by_count["1"]["count_accuracy"] == 0.5
    assert by_count["1"]["under_counted"] == 1
    assert by_count["2"]["over_counted"] == 1 and by_count["0"]["count_accuracy"] == 1.0


def test_mismatched_lengths_are_refused(shapes: ShapeLibrary) -> None:
    with pytest.raises(ValueError, match="2 true scenes but 1 predicted"):
        compute_metrics([scene(), scene()], [scene()], shapes, WIDTH)
    with pytest.raises(ValueError, match="workspace_width must be positive"):
        compute_metrics([], [], shapes, 0.0)


def test_unknown_shape_names_are_refused(shapes: ShapeLibrary) -> None:
    with pytest.raises(ValueError, match="unknown shape 'pyramid'"):
        compute_metrics([scene(obj("pyramid", 0, 0))], [scene(obj("cube", 0, 0))], shapes, 1.0)


def test_yaw_error_never_exceeds_half_the_period() -> None:
    for symmetry in (1, 2, 3, 4, 6):
        for pred in range(0, 720, 7):
            error = yaw_error_deg(13.0, float(pred), symmetry)
            assert error is not None and 0.0 <= error <= 180.0 / symmetry + 1e-9
            assert math.isfinite(error)
