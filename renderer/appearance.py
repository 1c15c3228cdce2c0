"""The renderer's appearance θ as tensors: light, ambient, colours, background, tone curve.

The world config and the shape manifest fix θ for training from the prior; `air3d adapt`
learns it from unlabeled images (the AIR paper learns the generative model's θ together
with q's φ). The geometry (camera, meshes, heights, workspace) is never part of θ.

Each value is stored unconstrained, so that any gradient step keeps it valid:
- intensities (ambient, diffuse) and the tone's exposure and gamma: their logarithm;
- colours (objects', ground's, background's) and the shadow strength (the share of diffuse
  light an object's cast shadow takes from the table): their logit, so they stay in (0, 1);
- the light direction: a free 3-vector, normalised when read.
A world with `shading` (renderer/shading.py) adds its lamps (positions, free; intensities,
log; each lamp's shadow share, logit), the shadows' blur (log pixels), each kind's mirror
colour (logit) and the mirrors' horizon (log); a world without it has none of them.
Parameters are frozen (requires_grad False) until `learn()` says which to train.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from air3d.renderer.shading import Lamps, Light
from air3d.renderer.shapes import ShapeLibrary
from air3d.renderer.world import LampLight, LightConfig, ShadingConfig, ToneConfig, World

# What learn() accepts: each group names the parameters it trains.
GROUPS = {
    "light": ("light_direction", "log_ambient", "log_diffuse"),
    "colors": ("object_logits",),
    "ground": ("ground_logit",),
    "background": ("background_logit",),
    "tone": ("log_exposure", "log_gamma"),
    "shadows": ("shadow_logit", "lamp_shadow_logits", "log_shadow_blur"),
    # worlds with `shading` only (elsewhere these groups have nothing to learn)
    "lamps": ("lamp_positions", "log_lamp_intensities"),
    "gloss": ("mirror_logits", "log_horizon"),
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
        self.shading = world.shading
        if world.shading is not None:
            lamps, look_at = world.shading.lamps, tensor(world.camera.look_at)
            self.register_buffer("look_at", look_at)
            self.register_buffer(
                "lamp_colors", tensor([lamp.color for lamp in lamps]).reshape(-1, 3)
            )
            self.lamp_positions = nn.Parameter(
                tensor([lamp.position for lamp in lamps]).reshape(-1, 3)
            )
            intensities = tensor([lamp.intensity for lamp in lamps]).clamp(min=_EPS)
            self.log_lamp_intensities = nn.Parameter(intensities.log())
            self.lamp_shadow_logits = nn.Parameter(_logit(tensor([lamp.shadow for lamp in lamps])))
            blur = max(world.shading.shadow_blur, 1e-5)  # a share of the canvas's side
            self.log_shadow_blur = nn.Parameter(tensor(blur).log())
            self.mirror_logits = nn.Parameter(
                _logit(tensor([spec.mirror for spec in shapes.specs]))
            )
            self.log_horizon = nn.Parameter(tensor(world.shading.horizon).log())
        self.requires_grad_(False)

    def learn(self, groups: tuple[str, ...] | list[str]) -> list[nn.Parameter]:
        """Unfreezes the named groups (GROUPS' keys) and returns their parameters."""
        unknown = sorted(set(groups) - set(GROUPS))
        if unknown:
            raise ValueError(f"unknown appearance groups {unknown}; known: {', '.join(GROUPS)}")
        if "shadows" in groups and self.shading is None and float(self.shadow()) < SHADOW_START:
            # From a world without shadows (strength ~0, where the logit's gradient vanishes)
            # learning starts half way: the ELBO then takes it up or down.
            with torch.no_grad():
                self.shadow_logit.fill_(float(_logit(torch.tensor(SHADOW_START))))
        names = [name for group in groups for name in GROUPS[group]]
        params = [getattr(self, name) for name in names if hasattr(self, name)]
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
        if self.shading is not None:
            shadows = self.lamp_shadow_logits
            return shadows.requires_grad or bool((torch.sigmoid(shadows) > 2 * _EPS).any())
        return self.shadow_logit.requires_grad or float(self.shadow()) > 2 * _EPS

    # ---- θ of a world with `shading` (renderer/shading.py)

    def light(self) -> Light:
        """The ambient, the sun and the lamps, as shading.py reads them."""
        positions = self.lamp_positions
        lamps = Lamps(
            positions=positions,
            radiance=self.log_lamp_intensities.exp()[:, None] * self.lamp_colors,
            axes=F.normalize(self.look_at - positions, dim=-1),
            shadow=torch.sigmoid(self.lamp_shadow_logits),
        )
        return Light(self.ambient(), self.direction(), self.diffuse(), lamps)

    def mirrors(self) -> torch.Tensor:
        """(K, 3) each kind's mirror colour, library order."""
        return torch.sigmoid(self.mirror_logits)

    def shadow_blur(self) -> torch.Tensor:
        """The shadows' soft edge: std as a share of the canvas's side."""
        return self.log_shadow_blur.exp()

    def horizon(self) -> torch.Tensor:
        return self.log_horizon.exp()

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

        if self.shading is not None:  # the lamps cast the shadows (shading); the sun's stays
            sun_shadow = world.light.shadow
        else:
            sun_shadow = floats(self.shadow())[0] if self.casts_shadows() else 0.0
        light = LightConfig(
            direction=floats(self.direction()),
            ambient=floats(self.ambient())[0],
            diffuse=floats(self.diffuse())[0],
            specular=world.light.specular,
            shadow=sun_shadow,
        )
        tone = ToneConfig(
            exposure=floats(self.log_exposure.exp())[0], gamma=floats(self.log_gamma.exp())[0]
        )
        shading, specs = world.shading, shapes.specs
        if shading is not None:
            lamps = tuple(
                LampLight(
                    position=floats(self.lamp_positions[i]),
                    intensity=floats(self.log_lamp_intensities[i].exp())[0],
                    color=lamp.color,
                    shadow=floats(torch.sigmoid(self.lamp_shadow_logits[i]))[0],
                )
                for i, lamp in enumerate(shading.lamps)
            )
            shading = ShadingConfig(
                lamps=lamps,
                shadow_blur=floats(self.shadow_blur())[0] if shading.shadow_blur else 0.0,
                horizon=floats(self.horizon())[0],
                sky=shading.sky,
                floor_extent=shading.floor_extent,
            )
            mirrors = self.mirrors()
            specs = tuple(
                replace(spec, mirror=floats(mirrors[k]) if any(spec.mirror) else spec.mirror)
                for k, spec in enumerate(specs)
            )
        world = replace(
            world,
            shading=shading,
            light=light,
            ground=replace(world.ground, color=floats(self.ground_color())),
            background=floats(self.background()),
            tone=tone,
        )
        colors = self.object_colors()
        specs = tuple(replace(spec, color=floats(colors[s])) for s, spec in enumerate(specs))
        return world, replace(shapes, specs=specs)


def _logit(values: torch.Tensor) -> torch.Tensor:
    return torch.logit(values.clamp(_EPS, 1.0 - _EPS))
