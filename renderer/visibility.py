"""How much of each object the camera sees, scenes redrawn until every object shows, and
the objects of an answer that its other objects hide.

CLEVR keeps a scene only if every object covers at least 200 of its 320 x 240 pixels;
ground truth that lists an object hidden behind another asks for the impossible. The
world's `prior.min_visible` is that rule as a share of the frame's pixels. An answer that
lists such an object claims what the image cannot show (`out_of_sight`).
"""

from __future__ import annotations

import numpy as np
import torch

from air3d.renderer.camera import ground_centres, project, projection_matrices, view_depths
from air3d.renderer.prior import sample_scene
from air3d.renderer.renderer import SceneRenderer
from air3d.renderer.scene import Scene, SceneBatch


def visible_pixels(renderer: SceneRenderer, batch: SceneBatch) -> torch.Tensor:
    """(B, N) long: the pixels where each slot's object is the nearest surface (crisp), 0
    for empty slots."""
    batch = batch.to(renderer.device)
    counts = torch.zeros(batch.present.shape, dtype=torch.long, device=renderer.device)
    if not batch.present.any():
        return counts
    meshes, objects = renderer.meshes(batch, ground=False), renderer.object_faces(batch)
    with torch.no_grad():
        face = renderer.rasterize(renderer.project(meshes, batch.eye), objects, "crisp")[..., 0]
    # Packed faces -> objects in packing order -> (scene, slot) (see packed_objects).
    object_of = torch.repeat_interleave(
        torch.arange(len(objects), device=renderer.device),
        torch.tensor(objects, device=renderer.device),
    )
    slots = renderer.packed_objects(batch)[0]  # (n, 2) scene and slot of each packed object
    first, last = renderer.world.frame_rows
    seen = face[:, first:last][face[:, first:last] >= 0]
    per_object = torch.bincount(object_of[seen], minlength=len(objects))
    counts[slots[:, 0], slots[:, 1]] = per_object
    return counts


def alone_pixels(renderer: SceneRenderer, batch: SceneBatch, chunk: int = 64) -> torch.Tensor:
    """(B, N) long: the pixels each slot's object covers when drawn alone (crisp), 0 for
    empty slots. Each object is drawn as a scene of its own, `chunk` such scenes a call:
    about the cost of one drawing of the batch (the rasteriser's work is pixels x faces)."""
    counts = torch.zeros(batch.present.shape, dtype=torch.long, device=renderer.device)
    scene, slot = batch.present.nonzero(as_tuple=True)
    for start in range(0, len(scene), chunk):
        rows, slots = scene[start : start + chunk], slot[start : start + chunk]
        eye = None if batch.eye is None else batch.eye[rows]
        single = SceneBatch(
            batch.shape[rows, slots, None],
            batch.present[rows, slots, None],
            batch.xz[rows, slots, None],
            batch.yaw[rows, slots, None],
            eye,
        )
        counts[rows, slots] = visible_pixels(renderer, single)[:, 0]
    return counts


def hidden_shares(renderer: SceneRenderer, batch: SceneBatch) -> torch.Tensor:
    """(B, N) float: the share of each object's pixels that the objects in front of it hide
    (0: in full view, 1: out of sight); 0 for empty slots."""
    present = batch.present.to(renderer.device)
    return _hidden(visible_pixels(renderer, batch), alone_pixels(renderer, batch), present)


def _hidden(shown: torch.Tensor, alone: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """The share of each object's own pixels (alone) not shown in the scene's drawing
    (shown); 1 for a present object that covers no pixel even alone, 0 for empty slots."""
    alone = alone.float()
    return torch.where(alone > 0, 1.0 - shown.float() / alone.clamp(min=1.0), present.float())


def out_of_sight(renderer: SceneRenderer, batch: SceneBatch, limit: float) -> torch.Tensor:
    """(B, N) bool: the objects whose hidden share (as hidden_shares) among the batch's
    other objects is `limit` or more. Only an object whose centre the camera sees inside the
    disc of another object's bounding sphere, where that sphere comes nearer to the camera
    than the centre, can be hidden so much: only scenes that hold one are drawn, with only
    the objects whose discs meet its disc. Most scenes cost no drawing at all."""
    batch = batch.to(renderer.device)
    points, disc, depth, radius = _image_discs(renderer, batch)
    apart = (points[:, :, None] - points[:, None]).norm(dim=-1)  # (B, i, j)
    others = ~torch.eye(points.shape[1], dtype=torch.bool, device=points.device)
    pairs = batch.present[:, :, None] & batch.present[:, None, :] & others
    # j's bounding sphere comes nearer than i's centre: j may cover the point where i's
    # centre is seen (objects that pass through each other included)
    nearer = depth[:, None, :] - radius[:, None, :] < depth[:, :, None]
    suspects = (pairs & nearer & (apart < disc[:, None, :])).any(-1)
    meeting = pairs & (apart < disc[:, :, None] + disc[:, None, :])
    drawn = suspects | (meeting & suspects[:, :, None]).any(1)  # and all that may hide them
    hidden = torch.zeros_like(suspects)
    rows = suspects.any(1).nonzero()[:, 0]
    if not len(rows):
        return hidden
    some = batch[rows]
    shown = visible_pixels(renderer, some.with_present(drawn[rows]))
    alone = alone_pixels(renderer, some.with_present(suspects[rows]))
    hidden[rows] = suspects[rows] & (_hidden(shown, alone, suspects[rows]) >= limit)
    return hidden


def _image_discs(renderer: SceneRenderer, batch: SceneBatch):
    """Where the camera sees each slot's object: its centre's image point (B, N, 2) in
    [-1, 1], the radius of its bounding sphere's disc there (B, N), its depth (B, N), and
    its bounding sphere's radius (B, N)."""
    world, shapes = renderer.world, renderer.shapes
    B = len(batch)
    eye = batch.eye if batch.eye is not None else torch.tensor([world.camera.position])
    eye = eye.to(batch.xz).expand(B, 3)
    radius = torch.as_tensor(shapes.bounding_radii).to(batch.xz)[batch.shape]
    height = torch.tensor([spec.height / 2 for spec in shapes.specs]).to(batch.xz)[batch.shape]
    centres = ground_centres(batch.xz, height)  # (B, N, 3)
    # a point on the sphere's rim across the line of sight: the disc's radius in the image
    forward = torch.tensor(world.camera.look_at).to(eye) - eye
    forward = forward / forward.norm(dim=-1, keepdim=True)
    up = torch.tensor(world.camera.up).to(eye).expand(B, 3)
    across = up - (up * forward).sum(-1, keepdim=True) * forward
    across = across / across.norm(dim=-1, keepdim=True)
    matrices = projection_matrices(world, eye.float()).to(eye)[:, None]  # (B, 1, 4, 4)
    points = project(centres, matrices)
    rim = project(centres + radius[..., None] * across[:, None], matrices)
    # The sphere's outline is an ellipse: across the ray to its centre, R / depth (the rim
    # point's offset) grown by distance / sqrt(distance^2 - R^2) for the tangent cone; along
    # that ray's direction in the image, once more by 1 / cos of the ray's angle off the
    # view axis (distance / depth). The disc holds the whole outline.
    depth = view_depths(world, centres, eye[:, None])
    distance = (centres - eye[:, None]).norm(dim=-1)
    cone = distance / (distance**2 - radius**2).clamp(min=1e-6).sqrt()
    disc = (rim - points).norm(dim=-1) * cone * distance / depth.clamp(min=1e-6)
    return points, disc, depth, radius


def sample_visible_scenes(
    renderer: SceneRenderer, n: int, seed: int, count: int | None = None, chunk: int = 64
) -> list[Scene]:
    """n prior scenes (as renderer/prior.py's sample_scenes, one seeded generator), each
    drawn again until every object covers at least the world's `prior.min_visible` share
    of the frame's pixels. With min_visible 0 the scenes are sample_scenes'."""
    world, shapes = renderer.world, renderer.shapes
    rng = np.random.default_rng(seed)
    scenes = [sample_scene(world, shapes, rng, count) for _ in range(n)]
    first, last = world.frame_rows
    needed = world.prior.min_visible * (last - first) * world.image_size
    if needed <= 0:
        return scenes
    todo = list(range(n))
    for _ in range(100):
        failing = []
        for start in range(0, len(todo), chunk):
            rows = todo[start : start + chunk]
            batch = SceneBatch.from_scenes(
                [scenes[i] for i in rows], shapes, eye=world.camera.position
            )
            shown = visible_pixels(renderer, batch)
            hidden = ((shown < needed) & batch.present.to(shown.device)).any(1).tolist()
            failing += [i for i, bad in zip(rows, hidden, strict=True) if bad]
        if not failing:
            return scenes
        for i in failing:
            scenes[i] = sample_scene(world, shapes, rng, count)
        todo = failing
    raise ValueError(f"{len(todo)} scenes kept hiding an object after 100 draws")
