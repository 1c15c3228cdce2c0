"""The world's camera as a plain projection: world points to image coordinates.

For code that must know where things appear in the image (the model's attention, the
service's markers) without touching PyTorch3D types.
"""

from __future__ import annotations

import torch
from pytorch3d.renderer import FoVPerspectiveCameras, look_at_view_transform

from air3d.renderer.world import World


def cameras_at(world: World, eye: torch.Tensor) -> FoVPerspectiveCameras:
    """PyTorch3D cameras of the world's camera moved to each eye (B, 3): still aimed at its
    look-at, with its up and field of view. Differentiable in eye."""
    cam = world.camera
    B = eye.shape[0]
    at = eye.new_tensor(cam.look_at).expand(B, 3)
    up = eye.new_tensor(cam.up).expand(B, 3)
    R, T = look_at_view_transform(eye=eye, at=at, up=up, device=eye.device)
    return FoVPerspectiveCameras(
        R=R, T=T, fov=cam.fov_deg, znear=cam.znear, zfar=cam.zfar, device=eye.device
    )


def projection_matrix(world: World) -> torch.Tensor:
    """The (4, 4) world -> clip matrix, row-vector convention: clip = [x, y, z, 1] @ M."""
    return projection_matrices(world, torch.tensor([world.camera.position]))[0].detach()


def projection_matrices(world: World, eye: torch.Tensor) -> torch.Tensor:
    """(B, 4, 4): `projection_matrix` of the world's camera moved to each eye (B, 3).
    Differentiable in eye."""
    return cameras_at(world, eye).get_full_projection_transform().get_matrix()


def ground_centres(xz: torch.Tensor, heights: torch.Tensor) -> torch.Tensor:
    """Objects' 3D centres (..., 3): ground positions (..., 2) at their centre heights
    (...), y up."""
    return torch.stack([xz[..., 0], heights, xz[..., 1]], dim=-1)


def project(points: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Takes world points (..., 3) to image coordinates (..., 2) in [-1, 1]. `matrix` is
    (4, 4), or (..., 4, 4) broadcasting with points' leading dimensions (one per image).

    Convention of torch's grid_sample: (-1, -1) is the top-left corner, x to the right,
    y down. (PyTorch3D's NDC has +x left and +y up, hence the sign flips.)
    """
    ones = torch.ones_like(points[..., :1])
    rows = torch.cat([points, ones], dim=-1)
    if matrix.dim() == 2:
        clip = rows @ matrix.to(points)
    else:
        clip = (rows[..., None, :] @ matrix.to(points))[..., 0, :]
    ndc = clip[..., :2] / clip[..., 3:4]
    return -ndc


def view_depths(world: World, points: torch.Tensor, eye: torch.Tensor) -> torch.Tensor:
    """Depths (...,) of world points (..., 3) along the view axis of the world's camera
    moved to `eye` (..., 3), still aimed at its look-at: how far in front of the camera."""
    forward = eye.new_tensor(world.camera.look_at) - eye
    forward = forward / forward.norm(dim=-1, keepdim=True)
    return ((points - eye) * forward).sum(-1)


def to_pixels(uv: torch.Tensor, image_size: int) -> torch.Tensor:
    """Takes image coordinates in [-1, 1] to pixel coordinates (column, row)."""
    return (uv + 1.0) * image_size / 2.0


def unproject_to_plane(uv: torch.Tensor, matrix: torch.Tensor, height: float) -> torch.Tensor:
    """Takes image coordinates (..., 2) in [-1, 1] to the (x, z) (..., 2) of the point on the
    horizontal plane y = height that appears there: the inverse of `project` on that plane.
    `matrix` is (4, 4), or (..., 4, 4) broadcasting with uv's leading dimensions.

    With ndc = -uv and clip = [x, height, z, 1] @ M, each of ndc_i * clip_3 = clip_i is
    linear in (x, z): a 2 x 2 system per point.
    """
    M = matrix.to(uv)
    ndc = -uv
    rows = []
    for i in range(2):  # equation for ndc_i: a x + b z = c
        a = M[..., 0, i] - ndc[..., i] * M[..., 0, 3]
        b = M[..., 2, i] - ndc[..., i] * M[..., 2, 3]
        c = ndc[..., i] * (height * M[..., 1, 3] + M[..., 3, 3]) - (
            height * M[..., 1, i] + M[..., 3, i]
        )
        rows.append((a, b, c))
    (a0, b0, c0), (a1, b1, c1) = rows
    det = a0 * b1 - a1 * b0
    return torch.stack([(c0 * b1 - c1 * b0) / det, (a0 * c1 - a1 * c0) / det], dim=-1)
