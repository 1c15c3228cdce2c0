"""How q's raw outputs become latents: squashing into the workspace, angles, symmetry."""

from __future__ import annotations

import math

import torch

from air3d.renderer import ShapeLibrary, World


class LatentSpace(torch.nn.Module):
    """Maps unconstrained values to the world's latents and back.

    Positions: xz = centre + half_width * tanh(u), so q's Gaussian over u has the
    workspace as its support. Yaw: q predicts a direction in "symmetry space"; dividing
    its angle by the shape's symmetry order k gives the yaw (a cube's 4 equivalent yaws
    are one direction). Shapes that look the same at any yaw have no yaw latent (k = 1,
    `has_yaw` False).
    """

    def __init__(self, world: World, shapes: ShapeLibrary):
        super().__init__()
        ws = world.workspace
        self.register_buffer("centre", torch.tensor([sum(ws.x) / 2, sum(ws.z) / 2]))
        self.register_buffer(
            "half_width", torch.tensor([(ws.x[1] - ws.x[0]) / 2, (ws.z[1] - ws.z[0]) / 2])
        )
        orders = [spec.symmetry or 1 for spec in shapes.specs]
        self.register_buffer("symmetry", torch.tensor(orders, dtype=torch.float32))
        self.register_buffer(
            "has_yaw", torch.tensor([s.symmetry is not None for s in shapes.specs])
        )
        heights = [spec.height for spec in shapes.specs]
        self.register_buffer("heights", torch.tensor(heights))
        self.area = (ws.x[1] - ws.x[0]) * (ws.z[1] - ws.z[0])

    def squash(self, u: torch.Tensor) -> torch.Tensor:
        """(..., 2) unconstrained -> (..., 2) ground-plane xz inside the workspace."""
        return self.centre + self.half_width * torch.tanh(u)

    def unsquash(self, xz: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
        """Inverse of squash, clamped just inside the workspace edge."""
        return torch.atanh(((xz - self.centre) / self.half_width).clamp(-1 + eps, 1 - eps))

    def log_abs_det_jacobian(self, u: torch.Tensor) -> torch.Tensor:
        """log |d xz / d u| summed over x and z: (..., 2) -> (...)."""
        log_dtanh = 2.0 * (math.log(2.0) - u - torch.nn.functional.softplus(-2.0 * u))
        return (torch.log(self.half_width) + log_dtanh).sum(-1)

    def order(self, shape: torch.Tensor) -> torch.Tensor:
        """Symmetry order k of each shape index (1 for shapes without a yaw latent)."""
        return self.symmetry[shape]


def wrap_angle(angle: torch.Tensor) -> torch.Tensor:
    """Wraps radians to (-pi, pi]."""
    return torch.atan2(torch.sin(angle), torch.cos(angle))
