"""prior.sample_scene: counts, workspace, separation, shapes, determinism."""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections import Counter

import numpy as np
import pytest

from air3d.renderer import Scene, ShapeLibrary, World
from air3d.renderer.prior import sample_scene


def _sample(world: World, shapes: ShapeLibrary, n: int, seed: int = 0, **kw) -> list[Scene]:
    rng = np.random.default_rng(seed)
    return [sample_scene(world, shapes, rng, **kw) for _ in range(n)]


def test_samples_respect_workspace_separation_and_resting_height(
    world: World, shapes: ShapeLibrary
) -> None:
    scenes = _sample(world, shapes, 300)
    for scene in scenes:
        assert len(scene.objects) <= world.max_objects
        for obj in scene.objects:
            x, y, z = obj.position
            assert world.workspace.contains(x, z)
            assert y == pytest.approx(shapes.spec(obj.shape).height / 2)
            assert 0.0 <= obj.yaw_deg < 360.0
        for a, b in itertools.combinations(scene.objects, 2):
            distance = math.dist((a.position[0], a.position[2]), (b.position[0], b.position[2]))
            assert distance >= world.prior.min_separation
    # Every sampled scene is a valid scene.
    for scene in scenes[:20]:
        assert Scene.from_json(scene.to_json(), world, shapes) == scene


def test_counts_and_shapes_follow_the_prior(world: World, shapes: ShapeLibrary) -> None:
    scenes = _sample(world, shapes, 400, seed=1)
    counts = Counter(len(s.objects) for s in scenes)
    for k, p in enumerate(world.prior.count_probs):  # uniform over 0..3: 100 each expected
        assert abs(counts[k] / 400 - p) < 0.07, counts
    names = Counter(o.shape for s in scenes for o in s.objects)
    assert set(names) == set(shapes.names)
    total = sum(names.values())
    assert all(abs(v / total - 1 / len(shapes)) < 0.07 for v in names.values()), names


def test_shape_probs_from_the_config(world: World, shapes: ShapeLibrary) -> None:
    only_cones = dataclasses.replace(
        world, prior=dataclasses.replace(world.prior, shape_probs=(0.0, 0.0, 0.0, 1.0))
    )
    scenes = _sample(only_cones, shapes, 30, count=2)
    assert {o.shape for s in scenes for o in s.objects} == {"cone"}


def test_count_override(world: World, shapes: ShapeLibrary) -> None:
    for count in (0, 2, world.max_objects + 1):  # beyond max_objects: generalisation sets
        scenes = _sample(world, shapes, 25, count=count)
        assert {len(s.objects) for s in scenes} == {count}


def test_same_seed_same_scenes(world: World, shapes: ShapeLibrary) -> None:
    assert _sample(world, shapes, 10, seed=7) == _sample(world, shapes, 10, seed=7)
    assert _sample(world, shapes, 10, seed=7) != _sample(world, shapes, 10, seed=8)


def test_impossible_count_is_refused(world: World, shapes: ShapeLibrary) -> None:
    with pytest.raises(ValueError, match=r"cannot place 40 objects min_separation=0\.75 apart"):
        sample_scene(world, shapes, np.random.default_rng(0), count=40)


def test_the_camera_is_drawn_per_scene_only_where_the_world_jitters_it(
    world: World, shapes: ShapeLibrary
) -> None:
    fixed = [sample_scene(world, shapes, np.random.default_rng(4)) for _ in range(5)]
    assert all(scene.camera is None for scene in fixed)
    jittery = dataclasses.replace(world, camera=dataclasses.replace(world.camera, jitter=0.5))
    rng = np.random.default_rng(4)
    moved = [sample_scene(jittery, shapes, rng) for _ in range(40)]
    offsets = np.array([scene.camera for scene in moved]) - np.array(world.camera.position)
    assert np.abs(offsets).max() <= 0.5 and np.abs(offsets).max() > 0.4
    assert len({scene.camera for scene in moved}) == 40  # one camera per scene
