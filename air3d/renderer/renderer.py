"""Batched differentiable rendering of SceneBatches with PyTorch3D.

Two modes share one camera, light and set of meshes:
- "crisp": one face per pixel, no blur. For display and for data; no useful gradient at
  silhouettes.
- "soft": SoftRas-style blending of several faces per pixel (Liu et al. 2019), so that
  gradients of the image reach object positions and yaws. Several times slower on CPU.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pytorch3d.renderer import (
    BlendParams,
    DirectionalLights,
    FoVPerspectiveCameras,
    HardPhongShader,
    Materials,
    MeshRasterizer,
    MeshRenderer,
    RasterizationSettings,
    SoftPhongShader,
    TexturesVertex,
    look_at_view_transform,
)
from pytorch3d.structures import Meshes

from air3d.renderer.scene import Scene, SceneBatch
from air3d.renderer.shapes import ShapeLibrary
from air3d.renderer.world import World

RenderMode = Literal["crisp", "soft"]


class SceneRenderer(torch.nn.Module):
    """Takes a SceneBatch to RGB images (B, 3, H, W) in [0, 1]."""

    def __init__(self, world: World, shapes: ShapeLibrary, device: torch.device | str = "cpu"):
        super().__init__()
        self.world, self.shapes = world, shapes
        self.device = torch.device(device)
        self._templates = [_unshared(mesh.verts, mesh.faces, self.device) for mesh in shapes.meshes]
        self._colors = torch.tensor([spec.color for spec in shapes.specs], device=self.device)
        self._heights = torch.tensor([spec.height for spec in shapes.specs], device=self.device)
        self._ground = _ground_quad(world, self.device)
        self._renderers = {mode: self._make_renderer(mode) for mode in ("crisp", "soft")}

    def _make_renderer(self, mode: RenderMode) -> MeshRenderer:
        world, cam = self.world, self.world.camera
        R, T = look_at_view_transform(
            eye=(cam.position,), at=(cam.look_at,), up=(cam.up,), device=self.device
        )
        cameras = FoVPerspectiveCameras(
            R=R, T=T, fov=cam.fov_deg, znear=cam.znear, zfar=cam.zfar, device=self.device
        )
        light = world.light
        lights = DirectionalLights(
            direction=(light.direction,),
            ambient_color=((light.ambient,) * 3,),
            diffuse_color=((light.diffuse,) * 3,),
            specular_color=((light.specular,) * 3,),
            device=self.device,
        )
        materials = Materials(shininess=1.0, device=self.device)
        soft = world.rendering
        if mode == "soft":
            blend = BlendParams(soft.soft_sigma, soft.soft_gamma, world.background)
            # Pixels farther than this from a face get (almost) no weight from it.
            blur = math.log(1.0 / 1e-4 - 1.0) * soft.soft_sigma
            settings = RasterizationSettings(
                image_size=world.image_size,
                blur_radius=blur,
                faces_per_pixel=soft.soft_faces_per_pixel,
                bin_size=0,  # naive rasterisation: faster than binning for small images
                perspective_correct=False,
            )
            shader = SoftPhongShader(self.device, cameras, lights, materials, blend)
        else:
            blend = BlendParams(background_color=world.background)
            settings = RasterizationSettings(
                image_size=world.image_size, blur_radius=0.0, faces_per_pixel=1, bin_size=0
            )
            shader = HardPhongShader(self.device, cameras, lights, materials, blend)
        return MeshRenderer(MeshRasterizer(cameras=cameras, raster_settings=settings), shader)

    def meshes(self, batch: SceneBatch) -> Meshes:
        """One mesh per scene: the ground plus every present object, posed."""
        batch = batch.to(self.device)
        verts: list[list[torch.Tensor]] = [[self._ground[0]] for _ in range(len(batch))]
        faces: list[list[torch.Tensor]] = [[self._ground[1]] for _ in range(len(batch))]
        colors: list[list[torch.Tensor]] = [[self._ground[2]] for _ in range(len(batch))]
        for s, (template, template_faces) in enumerate(self._templates):
            selected = batch.present & (batch.shape == s)  # (B, N)
            if not selected.any():
                continue
            scene_of = selected.nonzero()[:, 0].tolist()
            posed = _pose(template, batch.xz[selected], batch.yaw[selected], self._heights[s])
            color = self._colors[s].expand(template.shape[0], 3)
            for b, obj_verts in zip(scene_of, posed, strict=True):
                verts[b].append(obj_verts)
                faces[b].append(template_faces)
                colors[b].append(color)
        return _join(verts, faces, colors)

    def forward(self, batch: SceneBatch, mode: RenderMode = "crisp") -> torch.Tensor:
        if mode not in self._renderers:
            raise ValueError(f"unknown render mode {mode!r}; known: crisp, soft")
        images = self._renderers[mode](self.meshes(batch))  # (B, H, W, 4)
        return images[..., :3].permute(0, 3, 1, 2).clamp(0.0, 1.0)

    def render_scenes(self, scenes: list[Scene], mode: RenderMode = "crisp") -> torch.Tensor:
        return self(SceneBatch.from_scenes(scenes, self.shapes), mode)


def _unshared(verts, faces, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Gives every face its own three vertices, so that shading is flat per face."""
    v = torch.as_tensor(verts, device=device)[torch.as_tensor(faces, device=device)]  # (F, 3, 3)
    f = torch.arange(v.shape[0] * 3, device=device).reshape(-1, 3)
    return v.reshape(-1, 3), f


def _ground_quad(world: World, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    h = world.ground.half_extent
    verts = torch.tensor([[-h, 0, -h], [h, 0, -h], [h, 0, h], [-h, 0, h]], device=device)
    faces = torch.tensor([[0, 2, 1], [0, 3, 2]], device=device)  # counter-clockwise from above
    colors = torch.tensor(world.ground.color, device=device).expand(4, 3)
    return verts, faces, colors


def _pose(template: torch.Tensor, xz: torch.Tensor, yaw: torch.Tensor, height: torch.Tensor):
    """Rotates (V, 3) template vertices by yaw (K,) about y and moves them to xz (K, 2).

    Returns (K, V, 3). Differentiable in xz and yaw.
    """
    cos, sin = torch.cos(yaw)[:, None], torch.sin(yaw)[:, None]  # (K, 1)
    x, y, z = template[:, 0], template[:, 1], template[:, 2]  # (V,)
    rx = cos * x + sin * z  # (K, V): right-handed rotation about +y
    rz = -sin * x + cos * z
    ry = (y + height / 2).expand_as(rx)
    return torch.stack([rx + xz[:, 0:1], ry, rz + xz[:, 1:2]], dim=-1)


def _join(verts, faces, colors) -> Meshes:
    """Concatenates each scene's parts into one mesh, offsetting face indices."""
    scene_verts, scene_faces, scene_colors = [], [], []
    for parts_v, parts_f, parts_c in zip(verts, faces, colors, strict=True):
        offsets = torch.tensor([0] + [v.shape[0] for v in parts_v[:-1]]).cumsum(0).tolist()
        scene_verts.append(torch.cat(parts_v))
        scene_faces.append(torch.cat([f + o for f, o in zip(parts_f, offsets, strict=True)]))
        scene_colors.append(torch.cat(parts_c))
    return Meshes(scene_verts, scene_faces, textures=TexturesVertex(scene_colors))
