"""The analysis-by-synthesis baseline on tiny cases: it finds a single object, and its parts."""

from __future__ import annotations

import math

import pytest
import torch

from air3d.evaluation import AbsConfig, AbsPredictor
from air3d.evaluation.abs_baseline import _Prior, blur
from air3d.evaluation.metrics import xz_distance
from air3d.renderer import Scene, SceneBatch, SceneObject, SceneRenderer, ShapeLibrary, World

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


def test_prior_refuses_objects_closer_than_the_minimum_separation(world, shapes) -> None:
    prior = _Prior(world, shapes)
    gap = world.prior.min_separation
    xz = torch.tensor([[[0.0, 0.0], [gap * 0.9, 0.0]], [[0.0, 0.0], [gap * 1.1, 0.0]]])
    batch = SceneBatch(torch.zeros(2, 2, dtype=torch.long), torch.ones(2, 2, dtype=torch.bool),
                       xz, torch.zeros(2, 2))  # fmt: skip
    log_p = prior.log_prob(batch)
    assert log_p[0] == -math.inf
    ws = world.workspace
    area = (ws.x[1] - ws.x[0]) * (ws.z[1] - ws.z[0])
    expected = math.log(world.prior.count_probs[2]) + 2 * (
        math.log(1 / len(shapes)) - math.log(area) - math.log(2 * math.pi)
    )
    assert log_p[1].item() == pytest.approx(expected, rel=1e-5)


def test_counts_beyond_the_prior_get_a_uniform_count_prior(world, shapes) -> None:
    assert _Prior(world, shapes).log_count == [math.log(p) for p in world.prior.count_probs]
    beyond = _Prior(world, shapes, world.max_objects + 1).log_count
    assert beyond == pytest.approx([-math.log(world.max_objects + 2)] * (world.max_objects + 2))


def test_positions_are_clamped_into_the_workspace(world, shapes) -> None:
    xz = torch.tensor([[[5.0, -5.0], [0.1, 0.2]]])
    _Prior(world, shapes).clamp_to_workspace(xz)
    ws = world.workspace
    assert torch.allclose(xz, torch.tensor([[[ws.x[1], ws.z[0]], [0.1, 0.2]]]))


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
