"""The world's camera as a plain projection: world points to image coordinates.

For code that must know where things appear in the image (the model's attention, the
service's markers) without touching PyTorch3D types.
"""

from __future__ import annotations

import torch
from pytorch3d.renderer import FoVPerspectiveCameras, look_at_view_transform

from air3d.renderer.world import World


def projection_matrix(world: World) -> torch.Tensor:
    """The (4, 4) world -> clip matrix, row-vector convention: clip = [x, y, z, 1] @ M."""
    cam = world.camera
    R, T = look_at_view_transform(eye=(cam.position,), at=(cam.look_at,), up=(cam.up,))
    cameras = FoVPerspectiveCameras(R=R, T=T, fov=cam.fov_deg, znear=cam.znear, zfar=cam.zfar)
    return cameras.get_full_projection_transform().get_matrix()[0].detach()


def project(points: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Takes world points (..., 3) to image coordinates (..., 2) in [-1, 1].

    Convention of torch's grid_sample: (-1, -1) is the top-left corner, x to the right,
    y down. (PyTorch3D's NDC has +x left and +y up, hence the sign flips.)
    """
    ones = torch.ones_like(points[..., :1])
    clip = torch.cat([points, ones], dim=-1) @ matrix.to(points)
    ndc = clip[..., :2] / clip[..., 3:4]
    return -ndc


def to_pixels(uv: torch.Tensor, image_size: int) -> torch.Tensor:
    """Takes image coordinates in [-1, 1] to pixel coordinates (column, row)."""
    return (uv + 1.0) * image_size / 2.0
