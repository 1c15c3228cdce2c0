"""How much of each object the camera sees, and scenes redrawn until every object shows.

CLEVR keeps a scene only if every object covers at least 200 of its 320 x 240 pixels;
ground truth that lists an object hidden behind another asks for the impossible. The
world's `prior.min_visible` is that rule as a share of the frame's pixels.
"""

from __future__ import annotations

import numpy as np
import torch

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


def hidden_shares(renderer: SceneRenderer, batch: SceneBatch) -> torch.Tensor:
    """(B, N) float: the share of each object's pixels that the objects in front of it hide
    (0: in full view, 1: out of sight); 0 for empty slots. Each object is drawn alone once
    more, so this costs N + 1 renders of the batch."""
    shown = visible_pixels(renderer, batch).float()
    alone = torch.zeros_like(shown)
    present = batch.present.to(renderer.device)
    for slot in range(present.shape[1]):
        if not present[:, slot].any():
            continue
        only = torch.zeros_like(present)
        only[:, slot] = present[:, slot]
        alone[:, slot] = visible_pixels(renderer, batch.with_present(only))[:, slot].float()
    return torch.where(alone > 0, 1.0 - shown / alone.clamp(min=1.0), present.float())


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
