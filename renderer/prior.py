"""Sampling scenes from the prior p(z) of the world config (make-data, sleep phase)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from air3d.renderer.scene import Scene, SceneObject
from air3d.renderer.shapes import ShapeLibrary, footprint_radius
from air3d.renderer.world import CameraConfig, World

_MAX_TRIES = 1000  # candidate positions per scene before it starts again
_MAX_RESTARTS = 20


def shape_probabilities(world: World, shapes: ShapeLibrary) -> list[float]:
    """The prior's P(kind) in library order: P(shape) (uniform where the config says null)
    times a uniform choice of each attribute's value."""
    names = shapes.names
    shape_p = world.prior.shape_probs or [1.0 / len(names)] * len(names)
    per_shape = len(shapes) // len(names)  # attribute combinations of each shape
    return [shape_p[names.index(spec.name)] / per_shape for spec in shapes.specs]


def min_centre_distance(world: World, shapes: ShapeLibrary) -> float:
    """The least distance the prior allows between two objects' centres: min_separation,
    or with min_gap the two smallest footprints plus the gap."""
    distance = world.prior.min_separation
    if world.prior.min_gap is not None:
        smallest = min(footprint_radius(mesh) for mesh in shapes.meshes)
        distance = max(distance, 2 * smallest + world.prior.min_gap)
    return distance


def sample_scenes(
    world: World, shapes: ShapeLibrary, n: int, seed: int, count: int | None = None
) -> list[Scene]:
    """n scenes drawn with one seeded generator: the same seed gives the same scenes."""
    rng = np.random.default_rng(seed)
    return [sample_scene(world, shapes, rng, count) for _ in range(n)]


def sample_scene(
    world: World, shapes: ShapeLibrary, rng: np.random.Generator, count: int | None = None
) -> Scene:
    """Draws one scene: the camera (in a world with camera jitter), a count, then kinds,
    positions (kept apart by the prior's rules) and yaws.

    `count` overrides the prior's count (e.g. max_objects + 1 for generalisation tests).
    """
    prior = world.prior
    camera = _camera(world, rng)
    if count is None:
        count = int(rng.choice(len(prior.count_probs), p=prior.count_probs))
    # Where spacing depends on the objects' sizes, the kinds are drawn first; otherwise
    # after the positions, in the order that earlier data sets of the same seed were drawn.
    sized = prior.min_gap is not None
    kinds = [_kind(world, shapes, rng) for _ in range(count)] if sized else []
    radii = [footprint_radius(shapes.meshes[k]) for k in kinds] if sized else [0.0] * count
    xz = _place(world, rng, radii, camera)
    objects = []
    for i, (x, z) in enumerate(xz):
        spec = shapes.specs[kinds[i] if sized else _kind(world, shapes, rng)]
        yaw = float(rng.uniform(0.0, 360.0))
        position = (float(x), spec.height / 2, float(z))
        objects.append(SceneObject(spec.name, position, yaw, spec.attributes))
    return Scene(tuple(objects), camera)


def _camera(world: World, rng: np.random.Generator) -> tuple[float, float, float] | None:
    """The scene's eye: the world camera's position moved by uniform[-jitter, jitter] on
    each axis (CLEVR's camera_jitter); None (the world's camera) in a world without jitter,
    which draws nothing, so its data sets stay as they were."""
    jitter = world.camera.jitter
    if jitter <= 0:
        return None
    eye = np.asarray(world.camera.position) + rng.uniform(-jitter, jitter, 3)
    return tuple(float(c) for c in eye)  # type: ignore[return-value]


def _kind(world: World, shapes: ShapeLibrary, rng: np.random.Generator) -> int:
    """A kind: a shape by the prior's P(shape), then each attribute's value uniformly."""
    names = shapes.names
    # None (not a uniform list) when the config says null: numpy draws differently for
    # the two, and the same seed must keep giving the same data sets.
    shape_p = None if world.prior.shape_probs is None else np.asarray(world.prior.shape_probs)
    name = names[int(rng.choice(len(names), p=shape_p))]
    values = {a.name: a.values[int(rng.integers(len(a.values)))] for a in world.attributes}
    return shapes.index(name, values)


def _place(
    world: World, rng: np.random.Generator, radii: list[float], eye: Sequence[float] | None
) -> list[np.ndarray]:
    """Ground positions for objects of these footprint radii, each drawn uniformly over
    the workspace until it keeps the prior's rules with the ones before (the directions
    are the scene's camera's, at `eye`, as CLEVR's); a scene that runs out of tries starts
    again."""
    ws, prior = world.workspace, world.prior
    axes = _camera_ground_axes(world.camera.moved_to(eye))
    for _ in range(_MAX_RESTARTS):
        xz: list[np.ndarray] = []
        for _ in range(_MAX_TRIES):
            if len(xz) == len(radii):
                return xz
            candidate = rng.uniform((ws.x[0], ws.z[0]), (ws.x[1], ws.z[1]))
            if all(_apart(candidate, other, radii[len(xz)], radii[j], world, axes)
                   for j, other in enumerate(xz)):  # fmt: skip
                xz.append(candidate)
        if len(xz) == len(radii):
            return xz
    gap = "" if prior.min_gap is None else f" (and radii + min_gap={prior.min_gap})"
    raise ValueError(
        f"cannot place {len(radii)} objects min_separation={prior.min_separation}{gap} "
        "apart in the workspace"
    )


def _apart(
    a: np.ndarray, b: np.ndarray, ra: float, rb: float, world: World, axes: np.ndarray
) -> bool:
    prior = world.prior
    distance = float(np.linalg.norm(a - b))
    if distance < prior.min_separation:
        return False
    if prior.min_gap is not None and distance < ra + rb + prior.min_gap:
        return False
    if prior.direction_margin > 0:
        along = np.abs(axes @ (a - b))  # (2,) left-right and front-behind offsets
        return bool(along.min() >= prior.direction_margin)
    return True


def _camera_ground_axes(cam: CameraConfig) -> np.ndarray:
    """(2, 2): the camera's right and forward directions on the ground plane (x, z), unit."""
    forward = np.asarray(cam.look_at) - np.asarray(cam.position)
    forward = np.array([forward[0], forward[2]])
    forward = forward / max(np.linalg.norm(forward), 1e-9)
    right = np.array([-forward[1], forward[0]])
    return np.stack([right, forward])
