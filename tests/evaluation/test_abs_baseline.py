"""The analysis-by-synthesis baseline on tiny cases: it finds a single object, and its parts."""

from __future__ import annotations

import pytest
import torch

from air3d.evaluation import AbsConfig, AbsPredictor
from air3d.evaluation.metrics import xz_distance
from air3d.renderer import Scene, SceneObject, SceneRenderer, ShapeLibrary, World
from air3d.renderer.search import blur

TINY = AbsConfig(restarts=2, proposals=8, steps=12, refine_steps=2, max_count=1)


def render(world: World, shapes: ShapeLibrary, scene: Scene) -> torch.Tensor:
    with torch.no_grad():
        return SceneRenderer(world, shapes).render_scenes([scene])


def test_recovers_a_single_objects_position(world: World, shapes: ShapeLibrary) -> None:
    truth = SceneObject("cube", (0.3, 0.3, -0.2), 20.0)
    result = AbsPredictor(world, shapes, TINY).infer(render(world, shapes, Scene((truth,))))[0]
    found = result.scene().objects
    assert len(found) == 1
    assert xz_distance(found[0], truth) < 0.05 * world.workspace.width
    assert found[0].shape == "cube"
    assert result.log_joint == max(s for s in result.log_joint_by_count if s is not None)
    assert result.to_json()["count"] == 1


def test_an_empty_table_stays_empty(world: World, shapes: ShapeLibrary) -> None:
    config = AbsConfig(restarts=1, proposals=4, steps=2, refine_steps=1, max_count=2)
    result = AbsPredictor(world, shapes, config).infer(render(world, shapes, Scene()))[0]
    assert result.scene() == Scene()
    # Greedy stop: one object made it worse, so two were never tried.
    assert result.log_joint_by_count[0] > result.log_joint_by_count[1]
    assert result.log_joint_by_count[2] is None


def test_blur_keeps_flat_images_and_total_brightness() -> None:
    flat = torch.full((1, 3, 16, 16), 0.3)
    assert torch.allclose(blur(flat, 2.0), flat)
    dot = torch.zeros(1, 3, 16, 16)
    dot[..., 8, 8] = 1.0
    blurred = blur(dot, 1.0)
    assert blurred.sum().item() == pytest.approx(3.0, rel=1e-5)
    assert blurred[0, 0, 8, 8] < 0.5 and blurred[0, 0, 8, 9] > 0.0
    assert blur(dot, 0.0) is dot


def test_bad_configs_and_images_are_refused(world, shapes) -> None:
    with pytest.raises(ValueError, match="AbsConfig.restarts must be >= 1, got 0"):
        AbsConfig(restarts=0)
    with pytest.raises(ValueError, match="AbsConfig.steps must be >= 0"):
        AbsConfig(steps=-1)
    with pytest.raises(ValueError, match=r"images must be \(B, \(3, 64, 64\)\)"):
        AbsPredictor(world, shapes, TINY).infer(torch.zeros(1, 3, 32, 32))
