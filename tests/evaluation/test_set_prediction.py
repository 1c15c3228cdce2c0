"""Set-prediction AP against hand-made cases whose AP is worked out in each test's comment."""

import math

import pytest

from air3d.evaluation.set_prediction import (
    CLEVR_THRESHOLDS,
    PredictedObject,
    TrueObject,
    ap_table,
    average_precision,
    interpolated_ap,
    threshold_key,
)

SHAPE = ("shape",)
CLEVR = ("shape", "color", "size", "material")


def true(shape, x=0.0, y=0.0, z=0.0, **more):
    return TrueObject({"shape": shape, **more}, (x, y, z))


def pred(shape, confidence, x=0.0, y=0.0, z=0.0, **more):
    return PredictedObject({"shape": shape, **more}, (x, y, z), confidence)


def test_perfect_predictions_score_one_at_every_threshold():
    truths = [[true("cube", 1), true("sphere", -1)], [true("cone", 0, 0, 1)]]
    preds = [[pred("cube", 0.9, 1), pred("sphere", 0.8, -1)], [pred("cone", 0.7, 0, 0, 1)]]
    table = ap_table(truths, preds, SHAPE)
    assert list(table) == ["inf", "1", "0.5", "0.25", "0.125", "0.0625"]
    assert all(value == pytest.approx(1.0) for value in table.values())


def test_one_wrong_attribute_is_a_false_positive():
    # ranked hits [T, F] of 2 true objects: precision 1 up to recall 0.5, then nothing: 0.5
    truths = [[true("cube", 1), true("sphere", -1)]]
    preds = [[pred("cube", 0.9, 1), pred("cone", 0.8, -1)]]
    assert average_precision(truths, preds, math.inf, SHAPE) == pytest.approx(0.5)


def test_every_declared_attribute_must_match():
    # right shape and place, wrong colour: a miss under CLEVR's attributes, a hit on shape only
    truths = [[true("cube", color="red", size="large", material="metal")]]
    preds = [[pred("cube", 0.9, color="blue", size="large", material="metal")]]
    assert average_precision(truths, preds, math.inf, CLEVR) == 0.0
    assert average_precision(truths, preds, math.inf, SHAPE) == 1.0


def test_false_positive_ranked_before_the_true_positive_halves_ap():
    # hits [F, T], 1 true object: precision at recall 1 is 1/2, interpolated back to 0: AP 0.5
    truths = [[true("cube")]]
    wrong_first = [[pred("sphere", 0.9), pred("cube", 0.8)]]
    right_first = [[pred("sphere", 0.8), pred("cube", 0.9)]]
    assert average_precision(truths, wrong_first, math.inf, SHAPE) == pytest.approx(0.5)
    assert average_precision(truths, right_first, math.inf, SHAPE) == pytest.approx(1.0)


def test_ranking_is_over_the_whole_data_set():
    # image 0's false positive (0.95) outranks image 1's hit (0.9): hits [F, T, T] of 2 true
    # objects; precision 1/2 at recall 1/2 and 2/3 at recall 1, interpolated to 2/3: AP 2/3
    truths = [[true("cube")], [true("sphere")]]
    preds = [[pred("cone", 0.95, 2), pred("cube", 0.5)], [pred("sphere", 0.9)]]
    assert average_precision(truths, preds, math.inf, SHAPE) == pytest.approx(2 / 3)


def test_predictions_only_match_objects_of_their_own_image():
    truths = [[true("cube")], []]
    preds = [[], [pred("cube", 0.9)]]
    assert average_precision(truths, preds, math.inf, SHAPE) == 0.0


def test_duplicates_are_false_positives():
    # hits [T, F, T] of 2 objects: precision 1 at recall 1/2, 2/3 at recall 1: AP 1/2 + 1/3
    truths = [[true("cube", 0), true("cube", 2)]]
    preds = [[pred("cube", 0.9, 0), pred("cube", 0.8, 0.1), pred("cube", 0.7, 2)]]
    assert average_precision(truths, preds, 0.5, SHAPE) == pytest.approx(0.5 + 1 / 3)
    # a duplicate after full recall costs nothing
    once = [[pred("cube", 0.9, 0), pred("cube", 0.8, 2), pred("cube", 0.1, 0)]]
    assert average_precision(truths, once, 0.5, SHAPE) == pytest.approx(1.0)


def test_nearest_match_is_chosen_before_asking_whether_it_is_taken():
    # as in Locatello et al.'s code: the second prediction's nearest cube (0.1 away) is
    # taken, so it is a false positive although the other cube (0.2 away) is free: AP 0.5
    truths = [[true("cube", 0), true("cube", 0.3)]]
    preds = [[pred("cube", 0.9, 0), pred("cube", 0.8, 0.1)]]
    assert average_precision(truths, preds, 0.5, SHAPE) == pytest.approx(0.5)


def test_empty_predictions_score_zero_and_no_truth_is_undefined():
    assert average_precision([[true("cube")]], [[]], math.inf, SHAPE) == 0.0
    assert average_precision([[]], [[pred("cube", 0.9)]], math.inf, SHAPE) is None
    assert average_precision([], [], math.inf, SHAPE) is None


def test_thresholds_use_the_3d_distance_strictly():
    # a cube predicted 0.3 away (in 3D: 0.1 along x, 0.2 along y, 0.2 along z)
    truths = [[true("cube")]]
    preds = [[pred("cube", 0.9, 0.1, 0.2, 0.2)]]
    table = ap_table(truths, preds, SHAPE)
    assert table == {"inf": 1.0, "1": 1.0, "0.5": 1.0, "0.25": 0.0, "0.125": 0.0, "0.0625": 0.0}
    exactly = [[pred("cube", 0.9, 0.5)]]
    assert average_precision(truths, exactly, 0.5, SHAPE) == 0.0  # strictly nearer
    assert ap_table(truths, preds, SHAPE, thresholds=(0.31, 0.29)) == {"0.31": 1.0, "0.29": 0.0}


def test_interpolation_takes_the_best_precision_at_higher_recall():
    # hits [T, F, F, T, T] of 4 true objects: raw precisions 1, 1/2, 1/3, 1/2, 3/5;
    # interpolated: 1 on recall (0, 1/4], 3/5 on (1/4, 3/4]; recall never reaches 1:
    # AP = 1/4 + 3/5 * 1/2 = 0.55
    assert interpolated_ap([True, False, False, True, True], 4) == pytest.approx(0.55)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="1 true scenes but 2 predicted"):
        average_precision([[]], [[], []], 1.0, SHAPE)
    with pytest.raises(ValueError, match="threshold must be > 0"):
        average_precision([[]], [[]], 0.0, SHAPE)


def test_clevr_thresholds_and_keys():
    assert [threshold_key(t) for t in CLEVR_THRESHOLDS] == [
        "inf",
        "1",
        "0.5",
        "0.25",
        "0.125",
        "0.0625",
    ]


def test_clevr_attributes_and_thresholds_worked_out_by_hand():
    # 3 true objects. Ranked: a cube right in every attribute 0.2 away (conf 0.9); a sphere
    # in the right place but large, not small (0.8: a miss at every threshold); a cylinder
    # right in every attribute 0.6 away (0.7).
    # inf and 1: hits [T, F, T]: precision 1 to recall 1/3, 2/3 to recall 2/3: AP 5/9.
    # 0.5 and 0.25: [T, F, F]: AP 1/3.  0.125 and 0.0625: nothing: AP 0.
    red = dict(color="red", size="large", material="metal")
    blue = dict(color="blue", size="small", material="rubber")
    green = dict(color="green", size="large", material="rubber")
    truths = [
        [true("cube", **red), true("sphere", 2, **blue)],
        [true("cylinder", 0, 0, 1, **green)],
    ]
    preds = [
        [pred("cube", 0.9, 0.2, **red), pred("sphere", 0.8, 2, **{**blue, "size": "large"})],
        [pred("cylinder", 0.7, 0, 0, 1.6, **green)],
    ]
    table = ap_table(truths, preds, CLEVR)
    expected = [5 / 9, 5 / 9, 1 / 3, 1 / 3, 0.0, 0.0]
    assert list(table.values()) == pytest.approx(expected)
    # on shape alone the sphere is a hit: [T, T, T] at inf, [T, T, F] at 0.5
    assert ap_table(truths, preds, SHAPE)["inf"] == pytest.approx(1.0)
    assert ap_table(truths, preds, SHAPE)["0.5"] == pytest.approx(2 / 3)
