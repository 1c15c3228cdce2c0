"""Test-time refinement: render-and-compare lowers -log p(x, z) and fixes discrete mistakes."""

from __future__ import annotations

import math

import pytest
import torch

from air3d.model import Predictor
from air3d.model.refine import MAX_REFINE_STEPS, RefineConfig, Refiner
from air3d.renderer import Scene, SceneBatch, SceneObject, SceneRenderer


@pytest.fixture(scope="module")
def refiner(world, shapes) -> Refiner:
    return Refiner(world, shapes, world.max_objects)


def _scene(
    shapes, *objects: tuple[str, float, float, float], slots: int = 0, camera=None
) -> SceneBatch:
    scene = Scene(tuple(SceneObject(s, (x, 0.0, z), yaw) for s, x, z, yaw in objects), camera)
    return SceneBatch.from_scenes([scene], shapes, slots)


def _render(world, shapes, batch: SceneBatch) -> torch.Tensor:
    with torch.no_grad():
        return SceneRenderer(world, shapes)(batch, "crisp")


def test_refinement_lowers_the_loss_from_a_perturbed_start(world, shapes, refiner):
    truth = _scene(shapes, ("cube", 0.2, 0.1, 20.0))
    image = _render(world, shapes, truth)
    start = _scene(shapes, ("cube", 0.28, 0.04, 32.0))
    refined = refiner.refine(image, start, steps=15)
    loss = lambda batch: -refiner.search.score(batch, image).item()  # noqa: E731
    assert loss(refined) < loss(start) - 100  # nats; the start is ~1.5 px off
    assert (refined.xz - truth.xz).norm() < 0.5 * (start.xz - truth.xz).norm()
    # The continuous ascent alone (no sweep) already does it.
    ascended = refiner.search.ascend(start, image, 15, refiner.config.lr)
    assert loss(ascended) < loss(start) - 100


def test_sweep_drops_a_spurious_object_and_fixes_a_wrong_shape(world, shapes, refiner):
    image = _render(world, shapes, _scene(shapes, ("cylinder", 0.3, 0.3, 0.0)))
    start = _scene(shapes, ("sphere", 0.3, 0.3, 0.0), ("cube", -0.8, -0.6, 10.0))
    swept = refiner.sweep(start, image)
    assert swept.present[0].tolist() == [True, False]
    assert shapes.names[int(swept.shape[0, 0])] == "cylinder"


def test_sweep_adds_a_missing_object_where_the_image_is_unexplained(world, shapes, refiner):
    truth = _scene(shapes, ("cone", -0.5, 0.2, 0.0), ("cube", 0.6, -0.4, 30.0))
    image = _render(world, shapes, truth)
    start = _scene(shapes, ("cone", -0.5, 0.2, 0.0), slots=2)
    swept = refiner.sweep(start, image)
    assert swept.present[0].tolist() == [True, True]
    assert shapes.names[int(swept.shape[0, 1])] == "cube"
    assert (swept.xz[0, 1] - truth.xz[0, 1]).norm() < 0.15


def test_an_object_is_added_where_the_scenes_own_camera_sees_it(world, shapes, refiner):
    """A scene seen from a moved camera (q's estimate of it): the missing object is placed
    by back-projecting through that camera, not the world's."""
    eye = tuple(p + d for p, d in zip(world.camera.position, (1.0, -0.5, -0.8), strict=True))
    truth = _scene(shapes, ("cone", -0.5, 0.2, 0.0), ("cube", 0.6, -0.4, 30.0), camera=eye)
    image = _render(world, shapes, truth)
    start = _scene(shapes, ("cone", -0.5, 0.2, 0.0), slots=2, camera=eye)
    added = refiner._add(start, image)
    assert added.present[0].tolist() == [True, True]
    assert (added.xz[0, 1] - truth.xz[0, 1]).norm() < 0.08  # the world's camera: 0.22


def test_refinement_never_scores_below_q(tiny_checkpoint):
    predictor = Predictor.from_checkpoint(tiny_checkpoint)
    images = torch.rand(2, 3, 64, 64)
    refiner = predictor.refiner()
    as_batch = lambda results: SceneBatch.from_scenes(  # noqa: E731
        [r.scene() for r in results], predictor.shapes, slots=predictor.world.max_objects
    )
    plain, refined = predictor.infer(images), predictor.infer(images, refine=2)
    target = refiner.linearise(images, as_batch(plain))  # what refinement compares against
    assert (refiner.search.score(as_batch(refined), target) >= refiner.search.score(
        as_batch(plain), target)).all()  # fmt: skip


def test_the_tone_curve_is_undone_and_a_linear_image_left_alone(world, shapes, refiner):
    scene = _scene(shapes, ("cube", 0.2, 0.1, 20.0), ("cone", -0.6, -0.3, 0.0))
    linear = _render(world, shapes, scene)
    assert torch.equal(refiner.linearise(linear, scene), linear)
    toned = linear ** (1 / 2.2)
    assert torch.allclose(refiner.linearise(toned, scene), linear, atol=1e-5)


def test_refine_zero_is_exactly_plain_air(tiny_checkpoint, monkeypatch):
    images = torch.rand(3, 3, 64, 64)
    plain = Predictor.from_checkpoint(tiny_checkpoint).infer(images)
    monkeypatch.setattr(Refiner, "refine", lambda *args: pytest.fail("refinement ran"))
    zero = Predictor.from_checkpoint(tiny_checkpoint, refine=0).infer(images)
    assert [r.to_json() for r in zero] == [r.to_json() for r in plain]


def test_refine_steps_out_of_range_are_refused(tiny_checkpoint):
    with pytest.raises(
        ValueError, match=rf"refine: 51 steps; must be an integer in 0..{MAX_REFINE_STEPS}"
    ):
        Predictor.from_checkpoint(tiny_checkpoint, refine=MAX_REFINE_STEPS + 1)
    predictor = Predictor.from_checkpoint(tiny_checkpoint)
    with pytest.raises(ValueError, match="refine: -1 steps"):
        predictor.infer(torch.rand(1, 3, 64, 64), refine=-1)
    with pytest.raises(ValueError, match="RefineConfig.lr must be > 0"):
        RefineConfig(lr=0.0)
    assert math.isfinite(RefineConfig().lr)
