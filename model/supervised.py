"""The supervised baseline: AIR's image encoder, then one shot to N object slots.

It sees the same (z, x) pairs from the prior and the renderer as AIR's sleep phase, with
the same matched loss (slots matched to the true objects by the Hungarian algorithm), but
has no recurrence, no attention and no ELBO stage. Issue 3 asks whether AIR is as
accurate as this counterpart, as the paper claims for its own supervised comparison.
"""

from __future__ import annotations

import torch
from torch import nn

from air3d.model.air import AIROutput, StepOutput
from air3d.model.config import ModelConfig
from air3d.model.latents import LatentSpace
from air3d.model.networks import ImageEncoder, mlp
from air3d.renderer import ShapeLibrary, World


class SlotBaseline(nn.Module):
    """Takes images (B, 3, S, S) to N slots of latents, in AIR's output format."""

    def __init__(self, config: ModelConfig, world: World, shapes: ShapeLibrary):
        super().__init__()
        self.config, self.max_steps = config, world.max_objects
        self.num_shapes = len(shapes)
        self.latents = LatentSpace(world, shapes)
        self.encoder = ImageEncoder(world.image_size, config.encoder_channels, config.feature_dim)
        self.per_slot = 1 + 2 + self.num_shapes + 2  # presence, u, shape logits, yaw vector
        self.head = mlp(config.feature_dim, config.hidden_dim, self.max_steps * self.per_slot)
        # stds through a stop-gradient, as in AIR (see air.py)
        self.scale_head = nn.Linear(config.hidden_dim, self.max_steps * 3)

    def forward(
        self, images: torch.Tensor, mode: str = "mean", max_steps: int | None = None
    ) -> AIROutput:
        if mode != "mean":
            raise ValueError("the supervised baseline has no sampling mode; use mode='mean'")
        if max_steps not in (None, self.max_steps):
            raise ValueError(f"the supervised baseline has exactly {self.max_steps} slots")
        features = self.encoder(images)
        hidden = self.head[:-1](features)
        out = self.head[-1](hidden).view(images.shape[0], self.max_steps, self.per_slot)
        scales = self.scale_head(hidden.detach()).view(images.shape[0], self.max_steps, 3)
        S, floor = self.num_shapes, self.config.min_scale
        steps = []
        for n in range(self.max_steps):
            o = out[:, n]
            shape_logits = o[:, 3 : 3 + S]
            shape = shape_logits.argmax(-1)
            vector = o[:, 3 + S : 5 + S]
            direction = torch.atan2(vector[:, 1], vector[:, 0] + 1e-6)
            yaw = direction / self.latents.order(shape)
            yaw = torch.where(self.latents.has_yaw[shape], yaw, torch.zeros_like(yaw))
            pres_logit = o[:, 0]
            steps.append(
                StepOutput(
                    pres_logit=pres_logit,
                    coarse_u=o[:, 1:3],
                    xz_loc=o[:, 1:3],
                    xz_scale=nn.functional.softplus(scales[:, n, :2] - 2.0) + floor,
                    shape_logits=shape_logits,
                    yaw_vector=vector,
                    yaw_direction=direction,
                    yaw_scale=nn.functional.softplus(scales[:, n, 2] - 1.0) + floor,
                    hidden=features,
                    z_pres=(pres_logit > 0).float(),
                    xz_u=o[:, 1:3],
                    shape=shape,
                    yaw=yaw,
                    alive_before=torch.ones_like(pres_logit, dtype=torch.bool),
                )
            )
        return AIROutput(steps, features)
