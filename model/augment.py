"""Looks: what a camera or another renderer changes in an image of the same scene.

The sleep stage trains q on our renderer's crisp, linear images; a camera or another
renderer writes the same scene with a tone curve, another exposure and white balance,
noise, blur, JPEG artefacts, slightly other colours, anti-aliased edges, and under another
light. Varying these in training makes q read the scene, not the absolute pixel values.

- `augment(images, config, generator)`: the image-space looks, a random chain per image,
  applied to sleep batches (`TrainConfig.augment`).
- `random_light(light, generator, strength)`: a light (direction and intensities) for
  rendering; the light needs the renderer, so the scene pool renders chunks of scenes
  each under its own random light (model/scene_pool.py, `AugmentConfig.light_probability`).
- `random_look(world, shapes, generator, strength)`: a whole render look (lamps, shadows,
  highlights and mirrors, floor and background, tone): the scene pool draws small chunks
  of scenes each under its own (`AugmentConfig.scene_look_probability`).
- `LOOKS`: each look at a fixed setting at the edge of the training range, for measuring
  (scripts/measure_stop_look.py).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch
from PIL import Image

from air3d.model.config import check_keys
from air3d.renderer.shapes import ShapeLibrary
from air3d.renderer.world import LightConfig, World


@dataclass(frozen=True)
class AugmentConfig:
    probability: float = 0.0  # chance that a sleep image gets a random look (0: off)
    strength: float = 1.0  # scales every range below (1: the ranges the comments give)
    look_probability: float = 0.4  # each look's chance to join an augmented image's chain
    light_probability: float = 0.0  # chance that a pool chunk is rendered under a random light
    light_chunk: int = 32  # scenes per pool chunk sharing one random light
    # chance that a pool chunk is drawn under a random render look (random_look: lamps,
    # shadows, highlights and mirrors, floor, background, tone); 0: off. Takes precedence
    # over light_probability for the chunks it picks; when on, every pool chunk (random
    # lights' too) is scene_look_chunk scenes.
    scene_look_probability: float = 0.0
    scene_look_chunk: int = 4  # scenes per pool chunk sharing one random render look
    scene_look_strength: float = 1.0  # scales random_look's ranges (1: as its doc says)

    def __post_init__(self) -> None:
        for name in (
            "probability",
            "look_probability",
            "light_probability",
            "scene_look_probability",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"augment.{name} must be in [0, 1], got {value}")
        if self.strength < 0:
            raise ValueError(f"augment.strength must be >= 0, got {self.strength}")
        if self.light_chunk < 1:
            raise ValueError(f"augment.light_chunk must be >= 1, got {self.light_chunk}")
        if self.scene_look_chunk < 1:
            raise ValueError(f"augment.scene_look_chunk must be >= 1, got {self.scene_look_chunk}")
        if self.scene_look_strength < 0:
            raise ValueError(
                f"augment.scene_look_strength must be >= 0, got {self.scene_look_strength}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AugmentConfig:
        check_keys(cls, data, "augment config")
        return cls(**data)


# ------------------------------------------------------------------ the looks, one each
# Each takes images (B, 3, H, W) in [0, 1] and returns them changed, still in [0, 1].


def srgb(images: torch.Tensor) -> torch.Tensor:
    """The sRGB transfer curve (IEC 61966-2-1): what most renderers and cameras write."""
    x = images.clamp(0, 1)
    return torch.where(x <= 0.0031308, 12.92 * x, 1.055 * x.clamp(min=1e-8).pow(1 / 2.4) - 0.055)


def gamma(images: torch.Tensor, g: torch.Tensor | float) -> torch.Tensor:
    """A plain power-law tone curve x^(1/g); g (B,) or a number."""
    return images.clamp(min=0).pow(1.0 / _per_image(g, images)).clamp(0, 1)


def exposure(images: torch.Tensor, factor: torch.Tensor | float) -> torch.Tensor:
    """Brighter or darker by `factor` in linear light (B,) or a number."""
    return (images * _per_image(factor, images)).clamp(0, 1)


def white_balance(images: torch.Tensor, gains: torch.Tensor) -> torch.Tensor:
    """Per-channel gains (B, 3) or (3,)."""
    return (images * gains.to(images).view(-1, 3, 1, 1)).clamp(0, 1)


def colour_shift(images: torch.Tensor, offset: torch.Tensor, saturation: torch.Tensor | float):
    """Per-channel offsets (B, 3) or (3,) and a saturation scale about the grey level."""
    grey = images.mean(1, keepdim=True)
    mixed = grey + (images - grey) * _per_image(saturation, images)
    return (mixed + offset.to(images).view(-1, 3, 1, 1)).clamp(0, 1)


def noise(images: torch.Tensor, sigma: torch.Tensor | float, generator: torch.Generator):
    """Additive Gaussian sensor noise of std sigma (B,) or a number."""
    draw = torch.randn(images.shape, generator=generator).to(images)
    return (images + _per_image(sigma, images) * draw).clamp(0, 1)


def blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur (defocus, a soft lens) of std sigma pixels; one sigma per call."""
    radius = max(1, math.ceil(2.5 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (x / max(sigma, 1e-3)) ** 2)
    return _separable(images, kernel / kernel.sum())


def box_antialias(images: torch.Tensor) -> torch.Tensor:
    """What supersampled edges look like, in image space: a [1 2 1]/4 filter. (The measured
    anti-aliasing look renders at 4x the size and averages instead.)"""
    return _separable(images, torch.tensor([0.25, 0.5, 0.25], dtype=images.dtype))


def jpeg(images: torch.Tensor, quality: int) -> torch.Tensor:
    """Each image through JPEG at `quality` (1..95) and back."""
    out = []
    for image in images:
        array = (image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="JPEG", quality=int(quality))
        decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
        out.append(torch.from_numpy(decoded.copy()).permute(2, 0, 1))
    return torch.stack(out).to(images) / 255.0


def _per_image(value: torch.Tensor | float, images: torch.Tensor) -> torch.Tensor | float:
    if isinstance(value, torch.Tensor):
        return value.to(images).view(-1, 1, 1, 1)
    return value


def _separable(images: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Convolves each channel with kernel along x then y, edges replicated."""
    k = kernel.to(images)
    pad = len(k) // 2
    C = images.shape[1]
    x = torch.nn.functional.pad(images, (pad, pad, pad, pad), mode="replicate")
    x = torch.nn.functional.conv2d(x, k.view(1, 1, 1, -1).expand(C, 1, 1, -1), groups=C)
    return torch.nn.functional.conv2d(x, k.view(1, 1, -1, 1).expand(C, 1, -1, 1), groups=C)


# ------------------------------------------------------------------ training: random chains


def augment(images: torch.Tensor, config: AugmentConfig, generator: torch.Generator):
    """Images (B, 3, H, W) in [0, 1]; each with probability config.probability gets a chain
    of random looks, each look joining with probability config.look_probability, in the
    order a camera applies them: light-level changes in linear light, the tone curve, the
    optics (blur, anti-aliasing), sensor noise, then compression."""
    if config.probability == 0 or len(images) == 0:
        return images
    chosen = _uniform(len(images), generator) < config.probability
    if not chosen.any():
        return images
    out = images.clone()
    out[chosen] = _random_chain(images[chosen], config, generator)
    return out


def _random_chain(images: torch.Tensor, config: AugmentConfig, generator: torch.Generator):
    B, s = len(images), config.strength

    def joins() -> torch.Tensor:  # (B,) bool: which images this look applies to
        return _uniform(B, generator) < config.look_probability

    def where(mask: torch.Tensor, changed: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.where(mask.view(-1, 1, 1, 1), changed, x)

    x = images
    x = where(joins(), exposure(x, 1 + 0.3 * s * _symmetric(B, generator)), x)  # +-30%
    gains = 1 + 0.1 * s * _symmetric((B, 3), generator)  # +-10% per channel
    x = where(joins(), white_balance(x, gains / gains.mean(1, keepdim=True)), x)
    offset = 0.03 * s * _symmetric((B, 3), generator)
    saturation = 1 + 0.2 * s * _symmetric(B, generator)
    x = where(joins(), colour_shift(x, offset, saturation), x)
    # Tone curve: sRGB or a gamma in [1.8, 2.4] (strength widens the range about 2.1).
    tone = joins()
    g = 2.1 + 0.3 * s * _symmetric(B, generator)
    use_srgb = _uniform(B, generator) < 0.5
    x = where(tone, torch.where(use_srgb.view(-1, 1, 1, 1), srgb(x), gamma(x, g)), x)
    x = where(joins(), blur(x, float(0.3 + 0.5 * s * _uniform(1, generator))), x)
    x = where(joins(), box_antialias(x), x)
    x = where(joins(), noise(x, 0.03 * s * _uniform(B, generator), generator), x)
    compress = joins()
    if compress.any():
        quality = int(95 - 65 * min(s, 1.0) * float(_uniform(1, generator)))  # 30..95
        x = x.clone()
        x[compress] = jpeg(x[compress], quality)
    return x


def random_light(light: LightConfig, generator: torch.Generator, strength: float = 1.0):
    """A light near `light`: direction from anywhere in the upper hemisphere above 20 degrees
    of elevation (strength 1), ambient +-0.15 and diffuse +-0.25 around the world's."""
    azimuth = 2 * math.pi * float(_uniform(1, generator))
    lowest = math.radians(90 - 70 * min(strength, 1.0))  # strength 0: straight above
    elevation = lowest + (math.pi / 2 - lowest) * float(_uniform(1, generator))
    direction = (
        math.cos(elevation) * math.cos(azimuth),
        math.sin(elevation),
        math.cos(elevation) * math.sin(azimuth),
    )
    ambient = light.ambient + 0.15 * strength * float(_symmetric(1, generator))
    diffuse = light.diffuse + 0.25 * strength * float(_symmetric(1, generator))
    return replace(light, direction=direction, ambient=max(ambient, 0.05), diffuse=diffuse)


# random_look's ranges at strength 1, about the world's own values: the clevr world's look
# (fitted to Blender's renders) and Blender's own, whose lamps CLEVR moves by up to 1 on
# each axis, lie inside them. Factors are drawn log-uniformly in [1/f, f]. Noise, blur,
# JPEG and the sRGB curve are image-space looks: `augment`, per sleep image.
LOOK_RANGES = {
    "lamp_offset": 1.0,  # each lamp's position moves up to this on each axis (CLEVR: 1)
    "lamp_factor": 1.6,  # each lamp's intensity
    "ambient_factor": 1.6,  # the ambient and the sun's intensities
    "shadow": (0.3, 1.0),  # each lamp's shadow share (a world without lamps: the sun's)
    "shadow_blur": (0.0, 0.02),  # share of the canvas's side (2 pixels of 96)
    "specular_factor": 2.5,  # every kind's highlight strength
    "shininess_factor": 2.5,  # every kind's highlight exponent
    "mirror_factor": 1.5,  # every kind's mirror colour (kept in [0, 1])
    "horizon_factor": 2.0,  # the mirrors' horizon blur
    "floor_factor": 1.3,  # the floor's grey
    "background_factor": 2.0,  # the background's (and far floor's)
    "exposure_factor": 1.25,
    "gamma": 0.3,  # the tone's gamma moves up to this either way (worlds with gamma > 1)
}


def random_look(world: World, shapes: ShapeLibrary, generator: torch.Generator, strength=1.0):
    """A render look near the world's: (World, ShapeLibrary) with the ranges of LOOK_RANGES
    times `strength` (0: the world's own). Only the look changes: camera, geometry, prior.
    A world without `shading` gets random_light's light and the rest but the lamps'."""

    def factor(name: str) -> float:  # log-uniform in [1/f, f], f = range ** strength
        return math.exp(strength * math.log(LOOK_RANGES[name]) * float(_symmetric(1, generator)))

    def between(name: str, value: float) -> float:  # towards a random point of the range
        low, high = LOOK_RANGES[name]
        return value + min(strength, 1.0) * (
            low + (high - low) * float(_uniform(1, generator)) - value
        )

    light = replace(
        world.light,
        ambient=world.light.ambient * factor("ambient_factor"),
        diffuse=world.light.diffuse * factor("ambient_factor"),
    )
    shading = world.shading
    if shading is None:
        light = random_light(light, generator, strength)
        if light.shadow > 0:
            light = replace(light, shadow=between("shadow", light.shadow))
    else:
        offset = LOOK_RANGES["lamp_offset"] * strength
        lamps = tuple(
            replace(
                lamp,
                position=tuple(
                    float(p + offset * d)
                    for p, d in zip(lamp.position, _symmetric(3, generator).tolist(), strict=True)
                ),
                intensity=lamp.intensity * factor("lamp_factor"),
                shadow=between("shadow", lamp.shadow) if lamp.shadow > 0 else 0.0,
            )
            for lamp in shading.lamps
        )
        shading = replace(
            shading,
            lamps=lamps,
            shadow_blur=between("shadow_blur", shading.shadow_blur),
            horizon=shading.horizon * factor("horizon_factor"),
        )
    floor = factor("floor_factor")
    background = factor("background_factor")
    tone = world.tone
    if tone.gamma > 1:
        tone = replace(
            tone,
            gamma=tone.gamma + LOOK_RANGES["gamma"] * strength * float(_symmetric(1, generator)),
        )
    tone = replace(tone, exposure=tone.exposure * factor("exposure_factor"))
    looked = replace(
        world,
        light=light,
        shading=shading,
        ground=replace(world.ground, color=_scaled(world.ground.color, floor)),
        background=_scaled(world.background, background),
        tone=tone,
    )
    specular, shininess, mirror = (
        factor("specular_factor"), factor("shininess_factor"), factor("mirror_factor"),
    )  # fmt: skip
    specs = tuple(
        replace(
            spec,
            specular=spec.specular * specular,
            shininess=max(1.0, spec.shininess * shininess),
            mirror=_scaled(spec.mirror, mirror),
        )
        for spec in shapes.specs
    )
    return looked, replace(shapes, specs=specs)


def _scaled(color, factor: float) -> tuple[float, float, float]:
    return tuple(min(1.0, max(0.0, c * factor)) for c in color)


def _uniform(shape: int | tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    return torch.rand(shape, generator=generator)


def _symmetric(shape: int | tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    return 2 * torch.rand(shape, generator=generator) - 1


# ------------------------------------------------------------------ measuring: fixed looks

ImageLook = Callable[[torch.Tensor], torch.Tensor]


def _fixed_noise(sigma: float) -> ImageLook:
    return lambda images: noise(images, sigma, torch.Generator().manual_seed(0))


# Image-space looks at the edge of the training range. The looks that need the renderer
# (anti-aliasing, light) are in RENDERED_LOOKS: they redraw the test scenes.
LOOKS: dict[str, ImageLook] = {
    "srgb": srgb,
    "gamma-1.8": lambda x: gamma(x, 1.8),
    "gamma-2.4": lambda x: gamma(x, 2.4),
    "exposure-0.7": lambda x: exposure(x, 0.7),
    "exposure-1.3": lambda x: exposure(x, 1.3),
    "white-balance-warm": lambda x: white_balance(x, torch.tensor([1.1, 1.0, 0.9])),
    "white-balance-cool": lambda x: white_balance(x, torch.tensor([0.9, 1.0, 1.1])),
    "colour-shift": lambda x: colour_shift(x, torch.tensor([0.03, -0.03, 0.03]), 0.8),
    "noise-0.03": _fixed_noise(0.03),
    "blur-0.8": lambda x: blur(x, 0.8),
    "jpeg-30": lambda x: jpeg(x, 30),
    "srgb+jpeg-50+noise": lambda x: jpeg(_fixed_noise(0.02)(srgb(x)), 50),
}


def light_looks(light: LightConfig) -> dict[str, LightConfig]:
    """Lights for the measured light looks: from the side, from behind, dim, harsh."""
    return {
        "light-side": replace(light, direction=(1.0, 0.5, 0.0)),
        "light-back": replace(light, direction=(-0.3, 0.8, -1.0)),
        "light-dim": replace(light, ambient=light.ambient - 0.15, diffuse=light.diffuse - 0.2),
        "light-harsh": replace(light, ambient=light.ambient - 0.15, diffuse=light.diffuse + 0.25),
    }
