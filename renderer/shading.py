"""Shading under several lamps: the renderer's shading room for worlds with `shading`.

CLEVR's images are lit by three small area lamps (key, fill, back) and a weak sun, over a
large grey floor, with rubber and mirror-like metal objects (shared/worlds/clevr.md). A
world that declares `shading` (ShadingConfig) is drawn here as:

- Lamps (LampLight): each a point at its position, aimed at the camera's look-at, whose
  light on a surface is intensity * colour * max(0, n . l) * max(0, -l . axis) / d^2 (the
  inverse square makes the floor's falloff; the cosine off the axis is an area lamp's
  Lambertian emission), plus the world's `light` as before: ambient + a directional sun.
- Diffuse: albedo * (ambient + sun + the lamps), once per face (flat shading, as
  renderer.py's `_shade`), or with `smooth_angle` per pixel with normals interpolated
  across the faces of round surfaces (shade_points), and per pixel on the floor.
- Highlights: each lamp's and the sun's Phong lobe, specular * (r . v) ** shininess *
  (n . l), scaled by what the light delivers there, in the hue of the mirror (metal's are
  coloured).
- Mirrors (ShapeSpec.mirror, a material's reflect and tint): the view ray reflected about
  the face's normal meets the floor, whose unshadowed light there the face mirrors, faded
  to `sky` above the horizon by a sigmoid of width `horizon` (a rough mirror's blur).
  Metal is thus dark where it mirrors the far floor and the sky, and bright where it
  mirrors the floor near it, as in Blender.
- Cast shadows: each lamp's shadow takes `shadow` of that lamp's light from the floor;
  the coverage (renderer.py `_lamp_shadows`, objects projected from the lamp onto the
  floor) is blurred by `shadow_blur` (soft edges; CLEVR's lamps have a size).

Every function takes the viewer's position as an argument ((3,) or one per face (F, 3)),
so that a camera per scene needs no change here. All of it is differentiable in the
geometry and in the appearance (appearance.py's lamps, shadows and gloss groups).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

_TINY = 1e-6


@dataclass(frozen=True)
class Lamps:
    """The lamps as tensors, as the appearance gives them at one render."""

    positions: torch.Tensor  # (L, 3) world coordinates
    radiance: torch.Tensor  # (L, 3) intensity times colour
    axes: torch.Tensor  # (L, 3) unit vectors from each lamp towards the look-at
    shadow: torch.Tensor  # (L,) share of each lamp's light its cast shadows take


@dataclass(frozen=True)
class Light:
    """Everything that lights a surface: the world's ambient and sun, and the lamps."""

    ambient: torch.Tensor  # () intensity
    sun: torch.Tensor  # (3,) unit vector towards the sun
    sun_intensity: torch.Tensor  # () the sun's diffuse intensity
    lamps: Lamps


def lamp_light(points: torch.Tensor, normals: torch.Tensor, lamps: Lamps):
    """What each lamp delivers at points (..., 3) with unit normals (..., 3): the
    irradiance factor (..., L, 3) (radiance * cosines / d^2) and the unit vectors towards
    the lamps (..., L, 3)."""
    towards = lamps.positions - points[..., None, :]  # (..., L, 3)
    d2 = (towards * towards).sum(-1, keepdim=True).clamp(min=_TINY)
    unit = towards / d2.sqrt()
    cos = (normals[..., None, :] * unit).sum(-1, keepdim=True).clamp(min=0.0)
    emit = -(unit * lamps.axes).sum(-1, keepdim=True).clamp(max=0.0)  # cosine off the axis
    return lamps.radiance * cos * emit / d2, unit


def floor_light(points: torch.Tensor, light: Light):
    """The light falling on floor points (..., 3) (normal +y): the ambient and sun part
    (...,) and each lamp's (..., L, 3). Times the floor's albedo: its colour."""
    up = torch.zeros_like(points)
    up[..., 1] = 1.0
    lamps, _ = lamp_light(points, up, light.lamps)
    base = light.ambient + light.sun_intensity * light.sun[1].clamp(min=0.0)
    return base.expand(points.shape[:-1]), lamps


def shade_faces(
    verts: torch.Tensor,
    albedo: torch.Tensor,
    eye: torch.Tensor,
    light: Light,
    floor_albedo: torch.Tensor,
    materials: torch.Tensor | None = None,
    horizon: float | torch.Tensor = 0.1,
    sky: float = 0.0,
) -> torch.Tensor:
    """Faces (F, 3, 3) of albedo (F, 3) to their lit colour (F, 3), seen from `eye` ((3,)
    or per face (F, 3)): shade_points at each face's centre with its flat normal."""
    # unit, outward for counter-clockwise faces (see renderer.py's _shade)
    normals = F.normalize(
        torch.cross(verts[:, 1] - verts[:, 0], verts[:, 2] - verts[:, 0], dim=-1), dim=-1
    )
    return shade_points(
        verts.mean(1), normals, albedo, eye, light, floor_albedo, materials, horizon, sky
    )


def shade_points(
    points: torch.Tensor,
    normals: torch.Tensor,
    albedo: torch.Tensor,
    eye: torch.Tensor,
    light: Light,
    floor_albedo: torch.Tensor,
    materials: torch.Tensor | None = None,
    horizon: float | torch.Tensor = 0.1,
    sky: float = 0.0,
) -> torch.Tensor:
    """Surface points (M, 3) with unit normals (M, 3) and albedo (M, 3) to their lit colour
    (M, 3), seen from `eye` ((3,) or per point (M, 3)). `materials` (M, 5): each point's
    specular, shininess and mirror colour (3); None: matte."""
    sun_cos = (normals * light.sun).sum(-1, keepdim=True)  # (M, 1)
    lamps, towards = lamp_light(points, normals, light.lamps)  # (M, L, 3) each
    irradiance = light.ambient + light.sun_intensity * sun_cos.clamp(min=0.0) + lamps.sum(1)
    colors = irradiance * albedo
    if materials is None:
        return colors
    specular, shininess, mirror = materials[:, :1], materials[:, 1:2], materials[:, 2:5]
    view = F.normalize(eye - points, dim=-1)  # (M, 3)
    # Phong: the sun's and each lamp's light reflected about the normal, against the view
    sun_reflect = 2.0 * sun_cos * normals - light.sun
    sun_facing = (view * sun_reflect).sum(-1, keepdim=True).clamp(min=1e-6)
    # times the cosine at the surface, so that a highlight fades out at each light's
    # terminator (a step there draws the terminator as a seam across smooth surfaces)
    shine = light.sun_intensity * sun_facing.pow(shininess) * sun_cos.clamp(min=0.0)
    lamp_cos = (normals[:, None] * towards).sum(-1, keepdim=True)  # (M, L, 1)
    reflect = 2.0 * lamp_cos * normals[:, None] - towards
    facing = (view[:, None] * reflect).sum(-1, keepdim=True).clamp(min=1e-6)
    # what the lamp delivers to a surface facing it: lamps / max(cos, eps) would be its
    # irradiance; the highlight uses the lamp's radiance at the point (no surface cosine)
    d2 = ((light.lamps.positions - points[:, None]) ** 2).sum(-1, keepdim=True)
    emit = -(towards * light.lamps.axes).sum(-1, keepdim=True).clamp(max=0.0)
    delivered = light.lamps.radiance * emit / d2.clamp(min=_TINY)  # (M, L, 3)
    shine = shine + (facing.pow(shininess[:, None]) * lamp_cos.clamp(min=0.0) * delivered).sum(1)
    # a highlight is the lamp's mirror image: it takes the mirror's hue (metal's colour)
    strongest = mirror.amax(-1, keepdim=True)
    hue = torch.where(strongest > 0, mirror / strongest.clamp(min=_TINY), torch.ones_like(mirror))
    colors = colors + specular * shine * hue
    if bool((mirror > 0).any()) or mirror.requires_grad:
        seen = mirrored(points, normals, view, light, floor_albedo, horizon, sky)
        colors = colors + mirror * seen
    return colors


def mirrored(
    centres: torch.Tensor,
    normals: torch.Tensor,
    view: torch.Tensor,
    light: Light,
    floor_albedo: torch.Tensor,
    horizon: float | torch.Tensor,
    sky: float,
) -> torch.Tensor:
    """What a mirror at each point (F, 3) shows (F, 3): the lit floor where the reflected
    view ray goes down, `sky` where it goes up, blended across a soft horizon."""
    ray = 2.0 * (normals * view).sum(-1, keepdim=True) * normals - view  # (F, 3) unit
    down = (-ray[:, 1:2]).clamp(min=0.05)  # a ray near the horizon meets the floor far away
    hit = centres + ray * (centres[:, 1:2].clamp(min=0.0) / down)
    hit = torch.stack([hit[:, 0], torch.zeros_like(hit[:, 1]), hit[:, 2]], -1)
    base, lamps = floor_light(hit, light)
    floor = floor_albedo * (base[:, None] + lamps.sum(1))  # (F, 3)
    below = torch.sigmoid(-ray[:, 1:2] / horizon)
    return below * floor + (1.0 - below) * sky


def floor_points(cameras, size: int, extent: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each pixel's ray meets the floor y = 0: points (N, H, W, 3) for N cameras
    (PyTorch3D cameras), and whether it does within `extent` of the origin (N, H, W)."""
    device = cameras.R.device
    # NDC of the pixel centres: +x left, +y up, u = 1 - (2p + 1) / size (renderer._windows)
    u = 1.0 - (2.0 * torch.arange(size, device=device) + 1.0) / size
    y, x = torch.meshgrid(u, u, indexing="ij")  # (H, W) each: rows, columns
    n = len(cameras)
    near = torch.stack([x, y, torch.ones_like(x)], -1).reshape(1, -1, 3).expand(n, -1, 3)
    far = torch.stack([x, y, 2.0 * torch.ones_like(x)], -1).reshape(1, -1, 3).expand(n, -1, 3)
    # depth in view units (scaled_depth_input=False): two points along each pixel's ray
    a = cameras.unproject_points(near, world_coordinates=True, scaled_depth_input=False)
    b = cameras.unproject_points(far, world_coordinates=True, scaled_depth_input=False)
    ray = b - a  # (N, P, 3)
    t = -a[..., 1] / torch.where(ray[..., 1] < 0, ray[..., 1], -_TINY)
    points = a + t[..., None] * ray
    hits = (ray[..., 1] < 0) & (t > 0) & (points[..., [0, 2]].abs().amax(-1) <= extent)
    points = torch.stack([points[..., 0], torch.zeros_like(t), points[..., 2]], -1)
    return points.reshape(n, size, size, 3), hits.reshape(n, size, size)


def on_floor(verts: torch.Tensor, lamp: torch.Tensor) -> torch.Tensor:
    """Vertices (V, 3) projected from a point lamp (3,) onto the floor y = 0 (V, 3):
    their cast shadow (Blinn 1988's planar projection, from a point instead of a direction).
    Vertices at or above the lamp's height are sent far away along their direction."""
    height = (lamp[1] - verts[:, 1:2]).clamp(min=0.05)
    flat = lamp + (verts - lamp) * (lamp[1] / height)
    return torch.stack([flat[:, 0], torch.zeros_like(flat[:, 1]), flat[:, 2]], -1)


def soften(cover: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
    """Shadow coverage (..., H, W, 1) blurred by a Gaussian of std sigma pixels (soft
    shadow edges); sigma may be a tensor (learned): the kernel is differentiable in it."""
    value = float(sigma.detach()) if isinstance(sigma, torch.Tensor) else float(sigma)
    if value < 0.05:
        return cover
    radius = max(1, math.ceil(2.5 * value))
    x = torch.arange(-radius, radius + 1, dtype=cover.dtype, device=cover.device)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = kernel / kernel.sum()
    shape = cover.shape
    image = cover.reshape(-1, 1, *shape[-3:-1])  # (N, 1, H, W)
    image = F.pad(image, (radius,) * 4, mode="replicate")
    image = F.conv2d(image, kernel.view(1, 1, 1, -1))
    image = F.conv2d(image, kernel.view(1, 1, -1, 1))
    return image.reshape(shape)
