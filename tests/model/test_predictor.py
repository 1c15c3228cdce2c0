"""The Predictor: its answers are valid scenes with the probabilities behind them."""

from __future__ import annotations

import math

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


def test_objects_say_how_sure_their_positions_are():
    """The shipped CLEVR model fits each image's camera: each object carries how far its
    centre may be off (position_sd), and its confidence (there, of its kind, within
    POSITION_TOLERANCE) is at most its presence and falls as the position_sd grows. On our
    own renders the misses are about as large as the position_sds say."""
    from air3d.model.centre_refiner import fine_world
    from air3d.model.shipped import shipped_checkpoint
    from air3d.renderer.prior import sample_scenes

    predictor = Predictor.from_checkpoint(shipped_checkpoint("clevr"), fit=False)
    world, shapes = predictor.world, predictor.shapes
    scenes = sample_scenes(world, shapes, 12, 11)
    images = SceneRenderer(fine_world(world, predictor.canvas.size), shapes).render_scenes(scenes)
    ratios = []
    for result, scene in zip(predictor.infer(images), scenes, strict=True):
        truth = torch.tensor([o.position for o in scene.objects])[:, [0, 2]]
        for obj in result.objects:
            data = obj.to_json()
            assert data["position_sd"] > 0
            assert 0 < data["confidence"] <= data["presence"]
            miss = (truth - torch.tensor(obj.position)[[0, 2]]).norm(dim=1).min()
            ratios.append(float(miss) / obj.position_sd)
    assert len(ratios) >= 40
    assert 0.3 < float(torch.tensor(ratios).square().mean().sqrt()) < 2.0


def test_without_a_fitted_camera_the_confidence_is_presence_and_kind(tiny_checkpoint):
    predictor = Predictor.from_checkpoint(tiny_checkpoint)
    for result in predictor.infer(torch.rand(3, 3, 64, 64)):
        for obj in result.objects:
            data = obj.to_json()
            assert "position_sd" not in data
            assert data["confidence"] == pytest.approx(obj.presence * obj.shape_probs[obj.shape])


def test_confidence_falls_with_the_position_sd():
    from air3d.model.predictor import POSITION_TOLERANCE, object_confidence

    assert object_confidence(0.9, 0.5, None) == pytest.approx(0.45)
    sure = object_confidence(0.9, 0.5, 0.1 * POSITION_TOLERANCE)
    unsure = object_confidence(0.9, 0.5, POSITION_TOLERANCE)
    assert sure == pytest.approx(0.45) and unsure == pytest.approx(0.45 * (1 - math.exp(-1)))
