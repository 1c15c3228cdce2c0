"""Sampling scenes from the prior p(z) of the scene config (make-data, sleep phase)."""

from __future__ import annotations

import numpy as np

from air3d.renderer.scene import Scene, SceneObject
from air3d.renderer.shapes import ShapeLibrary
from air3d.renderer.world import World

_MAX_TRIES = 1000


def shape_probabilities(world: World, shapes: ShapeLibrary) -> list[float]:
    """The prior's P(shape) in manifest order (uniform where the config says null)."""
    if world.prior.shape_probs is None:
        return [1.0 / len(shapes)] * len(shapes)
    return list(world.prior.shape_probs)


def sample_scenes(
    world: World, shapes: ShapeLibrary, n: int, seed: int, count: int | None = None
) -> list[Scene]:
    """n scenes drawn with one seeded generator: the same seed gives the same scenes."""
    rng = np.random.default_rng(seed)
    return [sample_scene(world, shapes, rng, count) for _ in range(n)]


def sample_scene(
    world: World, shapes: ShapeLibrary, rng: np.random.Generator, count: int | None = None
) -> Scene:
    """Draws one scene: a count, then shapes, positions (kept min_separation apart) and yaws.

    `count` overrides the prior's count (e.g. max_objects + 1 for generalisation tests).
    """
    prior, ws = world.prior, world.workspace
    if count is None:
        count = int(rng.choice(len(prior.count_probs), p=prior.count_probs))
    # None (not a uniform list) when the config says null: numpy draws differently for
    # the two, and the same seed must keep giving the same data sets.
    shape_p = None if prior.shape_probs is None else np.asarray(prior.shape_probs)
    xz: list[np.ndarray] = []
    for _ in range(_MAX_TRIES):
        if len(xz) == count:
            break
        candidate = rng.uniform((ws.x[0], ws.z[0]), (ws.x[1], ws.z[1]))
        if all(np.linalg.norm(candidate - other) >= prior.min_separation for other in xz):
            xz.append(candidate)
    else:
        raise ValueError(
            f"cannot place {count} objects min_separation={prior.min_separation} apart "
            "in the workspace"
        )
    objects = []
    for x, z in xz:
        spec = shapes.specs[int(rng.choice(len(shapes), p=shape_p))]
        yaw = float(rng.uniform(0.0, 360.0))
        objects.append(SceneObject(spec.name, (float(x), spec.height / 2, float(z)), yaw))
    return Scene(tuple(objects))
