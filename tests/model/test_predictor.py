"""The Predictor: its answers are valid scenes with the probabilities behind them."""

from __future__ import annotations

import pytest
import torch

from air3d.model import Predictor
from air3d.model.shipped import DEFAULT_CHECKPOINT
from air3d.renderer import Scene, SceneBatch, SceneObject, SceneRenderer
from air3d.renderer.world import with_max_objects


def test_answers_are_renderable_scenes_with_probabilities(tiny_checkpoint, world, shapes):
    predictor = Predictor.from_checkpoint(tiny_checkpoint)
    results = predictor.infer(torch.rand(3, 3, 64, 64))
    assert len(results) == 3
    for result in results:
        data = result.to_json()
        assert data["count"] == len(data["objects"]) <= predictor.max_objects
        for obj in data["objects"]:
            assert obj["presence"] > 0.5
            assert sum(obj["shape_probs"].values()) == pytest.approx(1.0, abs=1e-5)
            assert set(obj["shape_probs"]) == set(shapes.names)
            assert 0.0 <= obj["yaw_deg"] < 360.0
        # The answer is valid input for the renderer as it is (extra keys ignored).
        assert Scene.from_json(data, predictor.answer_world, shapes) == result.scene()


def test_a_cap_above_training_stays_within_the_cap(tiny_checkpoint):
    predictor = Predictor.from_checkpoint(tiny_checkpoint, max_objects=5)
    counts = [r.to_json()["count"] for r in predictor.infer(torch.rand(4, 3, 64, 64))]
    assert max(counts) <= 5


def test_more_objects_than_trained_are_found_by_looking_again(world, shapes):
    """The shipped q was trained on at most 3 objects; by default it paints out what it
    found and reads the rest (model/erasure.py)."""
    objects = [("cube", -0.9, -0.7), ("sphere", 0.9, -0.7), ("cylinder", -0.9, 0.8)]
    objects += [("cone", 0.9, 0.8), ("sphere", 0.0, 0.05)]
    scene = Scene(tuple(SceneObject(s, (x, 0.0, z), 20.0) for s, x, z in objects))
    wide = with_max_objects(world, 5)
    image = SceneRenderer(wide, shapes).render_scenes([scene])
    capped = Predictor.from_checkpoint(DEFAULT_CHECKPOINT, max_objects=world.max_objects)
    assert len(capped.infer(image)[0].objects) == world.max_objects
    answer = Predictor.from_checkpoint(DEFAULT_CHECKPOINT, fit=False).infer(image)[0]
    assert sorted(o.shape for o in answer.objects) == sorted(s for s, _, _ in objects)
    for obj in answer.objects:  # each answer stands on a true object of its shape
        assert (
            min(
                abs(obj.position[0] - x) + abs(obj.position[2] - z)
                for s, x, z in objects
                if s == obj.shape
            )
            < 0.15
        )


def test_wrong_image_shape_is_refused(tiny_checkpoint):
    predictor = Predictor.from_checkpoint(tiny_checkpoint)
    with pytest.raises(ValueError, match=r"images must be \(B, \(3, 64, 64\)\)"):
        predictor.infer(torch.rand(1, 3, 32, 32))


def test_identity_of_the_weights(tiny_checkpoint):
    predictor = Predictor.from_checkpoint(tiny_checkpoint)
    assert len(predictor.checkpoint_hash) == 12 and predictor.name.startswith("air3d-air")


def test_fits_reuse_the_erasure_drawing_and_equal_fresh_ones(world, shapes):
    """Where an erasure pass found nothing new, its drawing of the answer is the fit's."""
    crowded = [("cube", -0.9, -0.7), ("sphere", 0.9, -0.7), ("cylinder", 0.0, 0.6)]
    scenes = [
        Scene(tuple(SceneObject(s, (x, 0.0, z), 20.0) for s, x, z in crowded)),  # looked again
        Scene((SceneObject("cone", (0.3, 0.0, 0.0), 0.0),)),  # q stops by itself
    ]
    images = SceneRenderer(world, shapes).render_scenes(scenes)
    predictor = Predictor.from_checkpoint(DEFAULT_CHECKPOINT)
    answers = predictor.infer(images)
    assert [len(a.objects) for a in answers] == [3, 1]
    batch = SceneBatch.from_scenes([a.scene() for a in answers], shapes)
    fresh = predictor.scorer().assess(images, batch)
    for answer, again in zip(answers, fresh, strict=True):
        assert answer.fit.log_likelihood_per_pixel == pytest.approx(
            again.log_likelihood_per_pixel, abs=0.01
        )


def test_objects_the_answer_itself_hides_are_dropped(tiny_checkpoint, shapes, monkeypatch):
    """An answer that holds a cone inside a cube claims what no image shows: the cone goes,
    the cube and an object in plain view stay."""
    predictor = Predictor.from_checkpoint(tiny_checkpoint, fit=False)
    kinds = torch.tensor([[shapes.index("cube"), shapes.index("cone"), shapes.index("sphere")]])
    answer = SceneBatch(
        kinds,
        torch.ones(1, 3, dtype=torch.bool),
        torch.tensor([[[0.0, 0.0], [0.0, 0.0], [0.8, -0.6]]]),
        torch.zeros(1, 3),
    )
    probs = torch.nn.functional.one_hot(kinds, len(shapes.specs)).float()
    asked = (answer, torch.ones(1, 3), probs, None)
    monkeypatch.setattr(predictor, "_ask_q", lambda images: asked)
    result = predictor.infer(torch.rand(1, 3, 64, 64))[0]
    assert sorted(o.shape for o in result.objects) == ["cube", "sphere"]
