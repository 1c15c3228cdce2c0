"""The Predictor: its answers are valid scenes with the probabilities behind them."""

from __future__ import annotations

import pytest
import torch

from air3d.model import Predictor
from air3d.renderer import Scene


def test_answers_are_renderable_scenes_with_probabilities(tiny_checkpoint, world, shapes):
    predictor = Predictor.from_checkpoint(tiny_checkpoint)
    results = predictor.infer(torch.rand(3, 3, 64, 64))
    assert len(results) == 3
    for result in results:
        data = result.to_json()
        assert data["count"] == len(data["objects"]) <= world.max_objects
        for obj in data["objects"]:
            assert obj["presence"] > 0.5
            assert sum(obj["shape_probs"].values()) == pytest.approx(1.0, abs=1e-5)
            assert set(obj["shape_probs"]) == set(shapes.names)
            assert 0.0 <= obj["yaw_deg"] < 360.0
        # The answer is valid input for the renderer as it is (extra keys ignored).
        assert Scene.from_json(data, world, shapes) == result.scene()


def test_more_steps_than_trained_for_generalisation(tiny_checkpoint):
    predictor = Predictor.from_checkpoint(tiny_checkpoint, max_objects=5)
    counts = [r.to_json()["count"] for r in predictor.infer(torch.rand(4, 3, 64, 64))]
    assert max(counts) <= 5
    out = predictor.model(torch.rand(1, 3, 64, 64), "mean", 5)
    assert len(out.steps) == 5


def test_wrong_image_shape_is_refused(tiny_checkpoint):
    predictor = Predictor.from_checkpoint(tiny_checkpoint)
    with pytest.raises(ValueError, match=r"images must be \(B, \(3, 64, 64\)\)"):
        predictor.infer(torch.rand(1, 3, 32, 32))


def test_identity_of_the_weights(tiny_checkpoint):
    predictor = Predictor.from_checkpoint(tiny_checkpoint)
    assert len(predictor.checkpoint_hash) == 12 and predictor.name.startswith("air3d-air")
