"""q's camera latent: each image's eye, estimated once per image from its code.

In a world whose camera has jitter (CameraConfig.jitter > 0; CLEVR: 0.5) the prior moves
each scene's eye by uniform[-jitter, jitter] per axis (renderer/prior.py). q then reads it
from the image code (AIR's, or the spatial where's pooled code) as
  eye = world camera position + jitter * tanh(u),  u ~ Normal(loc, scale)
(mean mode: u = loc), bounded to the prior's box like the positions to the workspace. The
glimpses and the spatial where read positions through the camera at q's eye
(renderer/camera.py's projection_matrices). A world without jitter has no head: its
models have no new parameters and see through the world's fixed camera.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.distributions import Normal

from air3d.model.networks import mlp
from air3d.renderer import World


@dataclass
class CameraEstimate:
    """q's camera latent for B images."""

    loc: torch.Tensor  # (B, 3) q's mean of u (unconstrained)
    scale: torch.Tensor  # (B, 3) its std
    u: torch.Tensor  # (B, 3) the u taken (sampled, or the mean)
    eye: torch.Tensor  # (B, 3) the eye it gives, in world coordinates
    mean_eye: torch.Tensor  # (B, 3) the eye at the mean
    centre: torch.Tensor  # (3,) the world camera's position
    jitter: float  # the box's half-width: eye = centre + jitter * tanh(u)

    def unsquash(self, eye: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
        """The u of eyes (B, 3), clamped just inside the jitter box."""
        return torch.atanh(((eye - self.centre) / self.jitter).clamp(-1 + eps, 1 - eps))

    def log_q(self) -> torch.Tensor:
        """(B,) log density of the eye taken, in world coordinates (change of variables)."""
        u = self.u
        log_dtanh = 2.0 * (math.log(2.0) - u - nn.functional.softplus(-2.0 * u))
        log_det = (math.log(self.jitter) + log_dtanh).sum(-1)
        return Normal(self.loc, self.scale).log_prob(u).sum(-1) - log_det

    def log_prior(self) -> float:
        """The prior's log density of any eye in the box: uniform[-jitter, jitter]^3."""
        return -3.0 * math.log(2.0 * self.jitter)


class CameraHead(nn.Module):
    """Takes the image code (B, F) to a CameraEstimate; built only where jitter > 0."""

    def __init__(self, feature_dim: int, hidden: int, world: World, min_scale: float):
        super().__init__()
        if world.camera.jitter <= 0:
            raise ValueError("a camera head needs a world with camera jitter > 0")
        self.jitter, self.min_scale = float(world.camera.jitter), min_scale
        self.register_buffer("centre", torch.tensor(world.camera.position, dtype=torch.float32))
        self.net = mlp(feature_dim, hidden, 3)
        self.scale_head = nn.Linear(hidden, 3)  # through a stop-gradient, as AIR's stds
        nn.init.zeros_(self.net[-1].bias)  # start at the world's camera
        self.net[-1].weight.data.mul_(0.1)

    @staticmethod
    def applies(world: World) -> bool:
        return world.camera.jitter > 0

    def forward(self, features: torch.Tensor, sample: bool) -> CameraEstimate:
        hidden = self.net[:-1](features)
        loc = self.net[-1](hidden)
        scale = nn.functional.softplus(self.scale_head(hidden.detach()) - 2.0) + self.min_scale
        u = Normal(loc, scale).rsample() if sample else loc
        mean_eye = self.squash(loc)
        eye = self.squash(u) if sample else mean_eye
        return CameraEstimate(loc, scale, u, eye, mean_eye, self.centre, self.jitter)

    def squash(self, u: torch.Tensor) -> torch.Tensor:
        return self.centre + self.jitter * torch.tanh(u)
