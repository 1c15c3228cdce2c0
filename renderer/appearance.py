"""The renderer's appearance θ as tensors: light, ambient, colours, background, tone curve.

The world config and the shape manifest fix θ for training from the prior; `air3d adapt`
learns it from unlabeled images (the AIR paper learns the generative model's θ together
with q's φ). The geometry (camera, meshes, heights, workspace) is never part of θ.

Each value is stored unconstrained, so that any gradient step keeps it valid:
- intensities (ambient, diffuse) and the tone's exposure and gamma: their logarithm;
- colours (objects', ground's, background's) and the shadow strength (the share of diffuse
  light an object's cast shadow takes from the table): their logit, so they stay in (0, 1);
- the light direction: a free 3-vector, normalised when read.
Parameters are frozen (requires_grad False) until `learn()` says which to train.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from air3d.renderer.shapes import ShapeLibrary
from air3d.renderer.world import LightConfig, ToneConfig, World

# What learn() accepts: each group names the parameters it trains.
GROUPS = {
    "light": ("light_direction", "log_ambient", "log_diffuse"),
    "colors": ("object_logits",),
    "ground": ("ground_logit",),
    "background": ("background_logit",),
    "tone": ("log_exposure", "log_gamma"),
    "shadows": ("shadow_logit",),
}
_EPS = 1e-4  # colours are kept in [_EPS, 1 - _EPS] before the logit: finite at 0 and 1
SHADOW_START = 0.5  # where learning the shadow strength starts, from a world without shadows


class Appearance(nn.Module):
    """θ of one world and shape library; read by SceneRenderer at every render."""

    def __init__(self, world: World, shapes: ShapeLibrary, device: torch.device | str = "cpu"):
        super().__init__()
        light, tone = world.light, world.tone

        def tensor(values) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.float32, device=device)

        self.light_direction = nn.Parameter(F.normalize(tensor(light.direction), dim=0))
        self.log_ambient = nn.Parameter(tensor(light.ambient).clamp(min=_EPS).log())
        self.log_diffuse = nn.Parameter(tensor(light.diffuse).clamp(min=_EPS).log())
        self.object_logits = nn.Parameter(_logit(tensor([spec.color for spec in shapes.specs])))
        self.ground_logit = nn.Parameter(_logit(tensor(world.ground.color)))
        self.background_logit = nn.Parameter(_logit(tensor(world.background)))
        self.log_exposure = nn.Parameter(tensor(tone.exposure).log())
        self.log_gamma = nn.Parameter(tensor(tone.gamma).log())
        self.shadow_logit = nn.Parameter(_logit(tensor(light.shadow)))
        self.requires_grad_(False)

    def learn(self, groups: tuple[str, ...] | list[str]) -> list[nn.Parameter]:
        """Unfreezes the named groups (GROUPS' keys) and returns their parameters."""
        unknown = sorted(set(groups) - set(GROUPS))
        if unknown:
            raise ValueError(f"unknown appearance groups {unknown}; known: {', '.join(GROUPS)}")
        if "shadows" in groups and float(self.shadow()) < SHADOW_START:
            # From a world without shadows (strength ~0, where the logit's gradient vanishes)
            # learning starts half way: the ELBO then takes it up or down.
            with torch.no_grad():
                self.shadow_logit.fill_(float(_logit(torch.tensor(SHADOW_START))))
        params = [getattr(self, name) for group in groups for name in GROUPS[group]]
        for param in params:
            param.requires_grad_(True)
        return params

    # ---- θ as the renderer reads it

    def direction(self) -> torch.Tensor:
        """(3,) unit vector towards the light."""
        return F.normalize(self.light_direction, dim=0)

    def ambient(self) -> torch.Tensor:
        return self.log_ambient.exp()

    def diffuse(self) -> torch.Tensor:
        return self.log_diffuse.exp()

    def object_colors(self) -> torch.Tensor:
        """(S, 3) linear RGB per shape, manifest order."""
        return torch.sigmoid(self.object_logits)

    def ground_color(self) -> torch.Tensor:
        return torch.sigmoid(self.ground_logit)

    def background(self) -> torch.Tensor:
        return torch.sigmoid(self.background_logit)

    def shadow(self) -> torch.Tensor:
        return torch.sigmoid(self.shadow_logit)

    def casts_shadows(self) -> bool:
        """Whether renders need the shadow pass: shadows are on, or being learned."""
        return self.shadow_logit.requires_grad or float(self.shadow()) > 2 * _EPS

    def tone(self, linear: torch.Tensor) -> torch.Tensor:
        """Linear images in [0, 1] to stored pixel values: min(1, exposure v) ** (1 / gamma).

        The clamp from below keeps the gradient of v ** (1 / gamma) finite at black."""
        exposed = (linear * self.log_exposure.exp()).clamp(min=1e-6, max=1.0)
        return exposed.pow(torch.exp(-self.log_gamma))

    # ---- θ back to plain config

    def to_config(self, world: World, shapes: ShapeLibrary) -> tuple[World, ShapeLibrary]:
        """The world and shape library with this θ: what an adapted checkpoint records."""

        def floats(values: torch.Tensor) -> tuple[float, ...]:
            return tuple(round(float(v), 6) for v in values.detach().cpu().reshape(-1))

        light = LightConfig(
            direction=floats(self.direction()),
            ambient=floats(self.ambient())[0],
            diffuse=floats(self.diffuse())[0],
            specular=world.light.specular,
            shadow=floats(self.shadow())[0] if self.casts_shadows() else 0.0,
        )
        tone = ToneConfig(
            exposure=floats(self.log_exposure.exp())[0], gamma=floats(self.log_gamma.exp())[0]
        )
        world = replace(
            world,
            light=light,
            ground=replace(world.ground, color=floats(self.ground_color())),
            background=floats(self.background()),
            tone=tone,
        )
        colors = self.object_colors()
        specs = tuple(replace(spec, color=floats(colors[s])) for s, spec in enumerate(shapes.specs))
        return world, replace(shapes, specs=specs)


def _logit(values: torch.Tensor) -> torch.Tensor:
    return torch.logit(values.clamp(_EPS, 1.0 - _EPS))
