"""Prior scenes as the camera fit sees them, exactly (shared by the camera-fit tests)."""

from __future__ import annotations

import torch

from air3d.renderer import SceneBatch
from air3d.renderer.camera import ground_centres, project, projection_matrices, view_depths
from air3d.renderer.prior import sample_scenes


def prior_views(world, shapes, n: int, seed: int):
    """n prior scenes from their jittered eyes: image points, heights, exact log scales,
    image index, true ground positions and true eyes."""
    scenes = sample_scenes(world, shapes, n, seed)
    latents = SceneBatch.from_scenes(scenes, shapes, world.max_objects)
    scene, slot = latents.present.nonzero(as_tuple=True)
    heights = torch.tensor([spec.height / 2 for spec in shapes.specs])[latents.shape[scene, slot]]
    xz = latents.xz[scene, slot]
    centres = ground_centres(xz, heights)
    eyes = latents.eye.float()
    uv = project(centres, projection_matrices(world, eyes)[scene])
    log_scales = torch.log(heights / view_depths(world, centres, eyes[scene]))
    return uv, heights, log_scales, scene, xz, eyes
