"""Batched differentiable rendering of SceneBatches with PyTorch3D.

Two modes share one light and set of meshes, and each scene its camera (the world's, or the
one the scene carries: SceneBatch.eye):
- "crisp": one face per pixel, no blur. For display and for data; no useful gradient at
  silhouettes.
- "soft": SoftRas-style blending of several faces per pixel (Liu et al. 2019), so that
  gradients of the image reach object positions and yaws. About half as fast forward on CPU.

Soft mode departs from SoftRas in two places, both so that its gradients match finite
differences and its images match crisp ones away from edges:
- The ground is not blended as geometry. The objects alone are rasterised (back faces
  culled) and a soft silhouette alpha composites them over a fixed image of the empty
  ground. With the ground as a face, the depth softmax, not the silhouette, decides each
  edge pixel: edges switch colour abruptly and the gradient is mostly noise. Objects
  never pass behind the ground, so this loses nothing.
- The silhouette is one-sided: a pixel inside any face has coverage 1 and one outside
  fades with 2 * sigmoid(-d / sigma) (d the squared distance to the face, as in SoftRas).
  SoftRas' two-sided sigmoid gives coverage 1/2 on every edge between two faces of the
  same object, which draws the mesh's triangles as faint lines that move with yaw. The
  cost: silhouettes grow by about half a pixel.

Where the time goes on CPU, and what this module does about it:
- PyTorch3D's rasteriser picks the faces (pix_to_face) without autograd; the fragments'
  geometry (depth, barycentrics, distances) is recomputed for the covered fragments in
  batched torch ops (fragments.py), whose backward is vectorised. PyTorch3D's own CPU
  backward works pixel by pixel and was ~77% of a soft step.
- Shading is flat: the meshes have one normal per face (unshared vertices), so Phong
  shading at every fragment (what SoftPhongShader and HardPhongShader do) gives each face
  one colour. It is computed once per face and gathered through pix_to_face. Exact while
  the world's light has no specular term; with one, the highlight is evaluated at the
  face centre. Worlds with `shading.smooth_angle` (CLEVR: round shapes, as Blender draws
  them) are shaded per covered fragment instead, with normals interpolated between the
  faces' corner normals (`corner_normals`, `fragment_colors`).
- Crisp mode, like soft mode, rasterises the objects only and paints them over the
  image of the empty ground: the ground quad covered every pixel. The ground's pixels are
  found by casting each pixel's ray onto the plane (`_floor_of`), per camera: no
  rasterising.
- PyTorch3D's naive CPU rasteriser costs about a microsecond per pixel and mesh whatever
  the faces (it has no CPU binning), so each object is rasterised alone in a small
  window around its screen box, and the windows' fragments are merged (`rasterize`).
- Soft mode computes fragments, colours, blend and silhouette for the covered pixels
  alone (those with a fragment): the rest of the image is the ground, untouched.
Timings and what remains: benchmarks/RESULTS.md (Renderer).
"""

from __future__ import annotations

import functools
import math
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pytorch3d.renderer import (
    BlendParams,
    FoVPerspectiveCameras,
    MeshRasterizer,
    TexturesVertex,
)
from pytorch3d.renderer.blending import softmax_rgb_blend
from pytorch3d.renderer.mesh.rasterize_meshes import rasterize_meshes
from pytorch3d.renderer.mesh.rasterizer import Fragments
from pytorch3d.structures import Meshes

from air3d.renderer import shading
from air3d.renderer.appearance import Appearance
from air3d.renderer.camera import cameras_at
from air3d.renderer.fragments import fragments, pixel_fragments
from air3d.renderer.scene import Scene, SceneBatch
from air3d.renderer.shapes import ShapeLibrary
from air3d.renderer.world import World

RenderMode = Literal["crisp", "soft"]
MODES = ("crisp", "soft")
SHADOW_SHRINK = 2  # the lamps' shadows are rasterised at 1 / this of the image's side


class SceneRenderer(torch.nn.Module):
    """Takes a SceneBatch to RGB images (B, 3, H, W) in [0, 1].

    The look (light, colours, background, tone curve) is read from `self.appearance` at
    every render: frozen by default, learnable by `air3d adapt` (appearance.py).
    """

    def __init__(self, world: World, shapes: ShapeLibrary, device: torch.device | str = "cpu"):
        super().__init__()
        self.world, self.shapes = world, shapes
        self.device = torch.device(device)
        self._templates = [_unshared(mesh.verts, mesh.faces, self.device) for mesh in shapes.meshes]
        smooth = 0.0 if world.shading is None else world.shading.smooth_angle
        # each kind's faces' corner normals (F, 3, 3): shaded per pixel between them
        self._corner_normals = [
            corner_normals(mesh.verts, mesh.faces, smooth).to(self.device)
            for mesh in shapes.meshes
        ] if smooth > 0 else None  # fmt: skip
        self.appearance = Appearance(world, shapes, self.device)
        self._heights = torch.tensor([spec.height for spec in shapes.specs], device=self.device)
        self._materials = torch.tensor(  # (K, 2) each kind's highlight
            [[spec.specular, spec.shininess] for spec in shapes.specs], device=self.device
        )
        self._shiny = any(spec.specular > 0 or any(spec.mirror) for spec in shapes.specs)
        self._face_counts = torch.tensor([f.shape[0] for _, f in self._templates], device=device)
        self._ground = _ground_quad(world, self.device)
        self._nothing = (  # an empty part: verts (0, 3), faces (0, 3), colours (0, 3)
            torch.zeros(0, 3, device=self.device),
            torch.zeros(0, 3, dtype=torch.long, device=self.device),
            torch.zeros(0, 3, device=self.device),
        )
        self._eye = torch.tensor(world.camera.position, device=self.device)
        self.cameras = self.cameras_at(self._eye[None])  # the world's
        self._projector = MeshRasterizer(cameras=self.cameras)  # world -> NDC (its transform)
        soft = world.rendering
        # Pixels farther than this from a face get (almost) no weight from it. The cut is at
        # 1e-6, not SoftRas' 1e-4: a face nearer the camera can outweigh the faces behind
        # it even at that weight, and dropping it would jump the colour.
        self._blur = math.log(1.0 / 1e-6 - 1.0) * soft.soft_sigma
        # the floor's points and pixels seen from the world's camera: (1, H, W, 3), (1, H, W)
        self._floor = self._floor_seen_by(self.cameras)

    def cameras_at(self, eye: torch.Tensor) -> FoVPerspectiveCameras:
        """PyTorch3D cameras at eye positions (B, 3), aimed as the world's camera (look-at,
        up, field of view). Differentiable in eye."""
        return cameras_at(self.world, eye)

    def _floor_seen_by(self, cameras: FoVPerspectiveCameras) -> tuple[torch.Tensor, torch.Tensor]:
        """Where each pixel's ray meets the floor y = 0 (B, H, W, 3), and whether it does in
        front of each camera within the floor's extent (B, H, W): the ground quad's half
        extent, or in a world with `shading` its lit floor's."""
        world = self.world
        extent = world.ground.half_extent if world.shading is None else world.shading.floor_extent
        return shading.floor_points(cameras, world.image_size, extent)

    def _floor_of(self, eye: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The floor points and hits seen from eye (B, 3): (B, H, W, 3), (B, H, W); B = 1
        for the world's camera (eye None)."""
        return self._floor if eye is None else self._floor_seen_by(self.cameras_at(eye))

    def ground_image(self, eye: torch.Tensor | None = None) -> torch.Tensor:
        """What both modes paint their objects over: the lit empty ground (B, H, W, 3),
        linear, seen from eye (B, 3) (None: the world's camera, B = 1). Recomputed from the
        appearance at each render (cheap), so that it follows a learned ground colour,
        light and background."""
        if self.world.shading is not None:
            return self._lit_floor(eye)
        faces = self._ground[0][self._ground[1]]  # (2, 3, 3), both facing up: one colour
        albedo = self.appearance.ground_color().expand(faces.shape[0], 3)
        color = self._shade(faces, albedo)[0]  # (3,)
        on_ground = self._floor_of(eye)[1][..., None]  # (B, H, W, 1)
        return torch.where(on_ground, color, self.appearance.background())

    def meshes(self, batch: SceneBatch, ground: bool = True) -> Meshes:
        """One mesh per scene: the ground (unless ground=False) plus every present object, posed.

        A scene without objects and without ground is an empty mesh (PyTorch3D allows it,
        as long as one scene of the batch has a face).
        """
        batch = batch.to(self.device)
        if ground:
            first = (*self._ground[:2], self.appearance.ground_color().expand(4, 3))
        else:
            first = self._nothing
        verts: list[list[torch.Tensor]] = [[first[0]] for _ in range(len(batch))]
        faces: list[list[torch.Tensor]] = [[first[1]] for _ in range(len(batch))]
        colors: list[list[torch.Tensor]] = [[first[2]] for _ in range(len(batch))]
        albedo = self.appearance.object_colors()  # (S, 3)
        for s, (template, template_faces) in enumerate(self._templates):
            selected = batch.present & (batch.shape == s)  # (B, N)
            if not selected.any():
                continue
            scene_of = selected.nonzero()[:, 0].tolist()
            posed = _pose(template, batch.xz[selected], batch.yaw[selected], self._heights[s])
            color = albedo[s].expand(template.shape[0], 3)
            for b, obj_verts in zip(scene_of, posed, strict=True):
                verts[b].append(obj_verts)
                faces[b].append(template_faces)
                colors[b].append(color)
        return _join(verts, faces, colors)

    def forward(self, batch: SceneBatch, mode: RenderMode = "crisp") -> torch.Tensor:
        if mode not in MODES:
            raise ValueError(f"unknown render mode {mode!r}; known: crisp, soft")
        batch = batch.to(self.device)
        eye = batch.eye
        ground = self.ground_image(eye)
        if len(batch) == 0:
            return ground.new_zeros(0, *ground.shape[1:]).permute(0, 3, 1, 2)
        if not batch.present.any():  # nothing to rasterise (PyTorch3D needs one face)
            images = ground.expand(len(batch), -1, -1, -1)
        else:
            meshes, objects = self.meshes(batch, ground=False), self.object_faces(batch)
            materials = self.face_materials(batch)
            normals = self.face_corner_normals(batch)
            if self.appearance.casts_shadows() and self.world.shading is not None:
                ground = self._lamp_shadowed(ground, meshes, objects, mode, eye)
            elif self.appearance.casts_shadows():
                ground = self._shadowed(ground, meshes, objects, mode, eye)
            if mode == "crisp":
                images = self._paint(meshes, objects, ground, materials, eye, normals)
            else:
                images = self._soft(meshes, objects, ground, materials, eye, normals)
        images = self._letterbox(images)
        return self.appearance.tone(images.permute(0, 3, 1, 2).clamp(0.0, 1.0))

    def _letterbox(self, images: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) with the rows outside the world's frame painted the background:
        what a loaded image of that frame shows there (air3d.images.to_canvas)."""
        first, last = self.world.frame_rows
        if (first, last) == (0, images.shape[1]):
            return images
        rows = torch.arange(images.shape[1], device=images.device)
        outside = ((rows < first) | (rows >= last))[None, :, None, None]
        return torch.where(outside, self.appearance.background(), images)

    def render_scenes(self, scenes: list[Scene], mode: RenderMode = "crisp") -> torch.Tensor:
        """Scenes, each from its own camera where it carries one, else the world's."""
        batch = SceneBatch.from_scenes(scenes, self.shapes, eye=self.world.camera.position)
        return self(batch, mode)

    def project(self, meshes: Meshes, eye: torch.Tensor | None = None) -> Meshes:
        """World to NDC (x left, y up, z the view depth), as PyTorch3D's rasteriser wants it,
        each scene seen from its eye (B, 3) (None: all from the world's camera)."""
        if eye is None:
            return self._projector.transform(meshes)
        return self._projector.transform(meshes, cameras=self.cameras_at(eye))

    def rasterize(
        self, ndc: Meshes, objects: list[int], mode: RenderMode, size: int | None = None
    ) -> torch.Tensor:
        """PyTorch3D's choice of faces for scenes in NDC: pix_to_face (B, H, W, K), -1 empty.

        `objects` splits each scene's packed faces into objects: its face counts in packing
        order, all scenes in turn. Crisp: the nearest face, back faces included (as
        PyTorch3D's default). Soft: the `soft_faces_per_pixel` nearest faces within the
        blur radius, back faces culled (they would only take slots).

        PyTorch3D has no CPU binning, and its naive rasteriser tests every face of a mesh
        at every pixel. So each object is rasterised alone, in a square window of the image
        that holds its screen box grown by the blur radius (`_windows`): the window is an
        affine map of NDC x and y, which leaves depth and the order of faces unchanged and
        scales squared distances by the map's scale squared. Objects with equal window
        sides share one rasteriser call. Each pixel then keeps the K nearest of its
        objects' fragments (`_merge`): the K nearest of the scene. `size`: the image's side
        (None: the world's image_size).
        """
        soft = mode == "soft"
        size = size or self.world.image_size
        blur = self._blur if soft else 0.0
        with torch.no_grad():
            face_verts = ndc.verts_packed()[ndc.faces_packed()]  # (F, 3, 3)
            counts = torch.tensor(objects, device=self.device)
            object_of = torch.repeat_interleave(
                torch.arange(len(objects), device=self.device), counts
            )
            scene_of = ndc.faces_packed_to_mesh_idx()[counts.cumsum(0) - counts]  # (n,)
            windows, origins = _windows(face_verts, object_of, len(objects), size, blur)
            first_face = (counts.cumsum(0) - counts).tolist()
            found = []  # per window size: (pix_to_face in scene faces, zbuf, origin, scene)
            for window in sorted(set(windows.tolist())):
                group = (windows == window).nonzero()[:, 0].tolist()
                scale = size / window
                crops = []
                for i in group:  # the object's faces moved into its window
                    v = face_verts[first_face[i] : first_face[i] + objects[i]]
                    shift = 1.0 - scale + 2.0 * origins[i] / window  # NDC x, y offsets
                    xy = v[..., :2] * scale + shift
                    crops.append(torch.cat([xy, v[..., 2:]], -1).reshape(-1, 3))
                faces = [torch.arange(len(v), device=self.device).reshape(-1, 3) for v in crops]
                pix_to_face, zbuf, _, _ = rasterize_meshes(
                    Meshes(crops, faces),
                    image_size=window,
                    blur_radius=blur * scale**2,
                    faces_per_pixel=self.world.rendering.soft_faces_per_pixel if soft else 1,
                    bin_size=0,
                    perspective_correct=False,
                    clip_barycentric_coords=soft,  # clamped barycentrics' depth orders the K
                    cull_backfaces=soft,
                )
                # the group's packed face index -> the scenes' packed face index
                index = torch.tensor(group, device=self.device)
                local_first = torch.tensor(
                    [0] + [objects[i] for i in group[:-1]], device=self.device
                ).cumsum(0)
                offset = torch.tensor(first_face, device=self.device)[index] - local_first
                member = torch.arange(len(group), device=self.device)[:, None, None, None]
                pix_to_face = torch.where(pix_to_face >= 0, pix_to_face + offset[member], -1)
                found.append((pix_to_face, zbuf, origins[index].long(), scene_of[index]))
            return _merge(found, len(ndc), size)

    def packed_objects(self, batch: SceneBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's present objects in the order meshes() packs them (scene by scene,
        kinds in library order, then slots): their (scene, slot) (n, 2) and kinds (n,)."""
        present = batch.present.nonzero()  # (n, 2): scene, slot; row-major
        shape = batch.shape[present[:, 0], present[:, 1]]
        key = present[:, 0] * len(self._templates) + shape
        order = torch.sort(key, stable=True).indices
        return present[order], shape[order]

    def object_faces(self, batch: SceneBatch) -> list[int]:
        """Face counts of the batch's objects in packing order: the `objects` of rasterize."""
        kinds = self.packed_objects(batch)[1].to(self.device)
        return self._face_counts[kinds].tolist()

    def face_materials(self, batch: SceneBatch) -> torch.Tensor | None:
        """Each object face's (specular, shininess) (F, 2) in the order meshes() packs them,
        and in a world with `shading` its mirror colour (F, 5); None when no kind of the
        library has a highlight (the matte worlds: no cost)."""
        if not self._shiny:
            return None
        kinds = self.packed_objects(batch)[1].to(self.device)
        materials = self._materials
        if self.world.shading is not None:
            materials = torch.cat([materials, self.appearance.mirrors()], -1)
        return materials[kinds].repeat_interleave(self._face_counts[kinds], dim=0)

    def face_corner_normals(self, batch: SceneBatch) -> torch.Tensor | None:
        """Each object face's corner normals (F, 3, 3) in the order meshes() packs them,
        turned by the objects' yaws; None in a world shaded flat (no `smooth_angle`)."""
        if self._corner_normals is None:
            return None
        places, kinds = self.packed_objects(batch)
        normals = torch.cat([self._corner_normals[k] for k in kinds.tolist()])  # (F, 3, 3)
        yaw = batch.yaw[places[:, 0], places[:, 1]].to(self.device)
        yaw = yaw.repeat_interleave(self._face_counts[kinds.to(self.device)])[:, None]  # (F, 1)
        cos, sin = torch.cos(yaw), torch.sin(yaw)
        x, y, z = normals.unbind(-1)  # (F, 3) each; as _pose turns the vertices
        return torch.stack([cos * x + sin * z, y, -sin * x + cos * z], -1)

    def fragment_colors(
        self,
        meshes: Meshes,
        face_verts: torch.Tensor,
        faces: torch.Tensor,
        pixel: torch.Tensor,
        size: int,
        normals: torch.Tensor,
        materials: torch.Tensor | None = None,
        eye: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Smooth shading: the lit colour (P, K, 3) of each fragment, faces (P, K) (-1 empty)
        at pixels (P,) of a size x size image, its normal interpolated from the faces'
        corner normals (F, 3, 3) and its point from their vertices (screen-space
        barycentrics of the NDC faces (F, 3, 3)). Empty slots are black."""
        _, bary, _ = pixel_fragments(face_verts, faces, pixel, size, clip_bary=True)
        slot = (faces >= 0).nonzero(as_tuple=True)
        face, weights = faces[slot], bary[slot][..., None]  # (M,), (M, 3, 1)
        world = meshes.verts_packed()[meshes.faces_packed()]  # (F, 3, 3)
        points = (weights * world[face]).sum(1)
        normal = F.normalize((weights * normals[face]).sum(1), dim=-1)
        albedo = meshes.textures.verts_features_packed()[meshes.faces_packed()[face, 0]]
        viewer = self._eye if eye is None else eye[meshes.faces_packed_to_mesh_idx()[face]]
        look = self.appearance
        colors = shading.shade_points(
            points, normal, albedo, viewer, look.light(), look.ground_color(),
            None if materials is None else materials[face], look.horizon(),
            self.world.shading.sky,
        )  # fmt: skip
        return colors.new_zeros(*faces.shape, 3).index_put(slot, colors)

    def face_colors(
        self,
        meshes: Meshes,
        materials: torch.Tensor | None = None,
        eye: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Each face's lit colour (F, 3): Phong shading with the appearance's light, once per
        face; `materials` (F, 2) gives each face's highlight (None: matte), seen from each
        scene's eye (B, 3) (None: the world's camera). Differentiable in the vertices and
        in the appearance."""
        faces = meshes.faces_packed()
        albedo = meshes.textures.verts_features_packed()[faces[:, 0]]  # (F, 3)
        viewer = self._eye if eye is None else eye[meshes.faces_packed_to_mesh_idx()]
        return self._shade(meshes.verts_packed()[faces], albedo, materials, viewer)

    def _shade(
        self,
        verts: torch.Tensor,
        albedo: torch.Tensor,
        materials: torch.Tensor | None = None,
        viewer: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Faces (F, 3, 3) of colour albedo (F, 3) to their lit colour (F, 3):
        ambient + diffuse * max(0, n . l), times the albedo, plus each face's Phong
        highlight specular * (r . v) ** shininess seen from `viewer` ((F, 3) or (3,): the
        camera's position; None: the world camera's) at the face centre.
        In a world with `shading`: shading.shade_faces (lamps, highlights, mirrors)."""
        viewer = self._eye if viewer is None else viewer
        if self.world.shading is not None:
            look = self.appearance
            return shading.shade_faces(
                verts, albedo, viewer, look.light(), look.ground_color(), materials,
                look.horizon(), self.world.shading.sky,
            )  # fmt: skip
        direction = self.appearance.direction()
        # (F, 3), unit, outward for counter-clockwise faces. Not Meshes.faces_normals_packed:
        # its CPU backward gives a gradient for a pure translation along z.
        normals = F.normalize(
            torch.cross(verts[:, 1] - verts[:, 0], verts[:, 2] - verts[:, 0], dim=-1), dim=-1
        )
        cos = (normals * direction).sum(-1, keepdim=True)  # (F, 1)
        look = self.appearance
        colors = (look.ambient() + look.diffuse() * cos.clamp(min=0.0)) * albedo
        if materials is not None:
            view = F.normalize(viewer - verts.mean(1), dim=-1)
            reflect = 2.0 * cos * normals - direction
            facing = (view * reflect).sum(-1, keepdim=True).clamp(min=1e-6)
            shine = facing.pow(materials[:, 1:]) * (cos > 0)
            colors = colors + materials[:, :1] * shine
        return colors

    def _shadowed(
        self,
        ground: torch.Tensor,
        meshes: Meshes,
        objects: list[int],
        mode: RenderMode,
        eye: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The ground image (1 or B, H, W, 3) darkened by the objects' cast shadows seen
        from each scene's eye, (B, H, W, 3).

        Planar projected shadows (Blinn 1988, "Me and my (fake) shadow"): every vertex is
        moved along the light direction onto the table (y = 0), and the flattened objects
        are rasterised as the objects are (crisp coverage, or the soft silhouette, so that
        shadows pass gradients to positions and to the light). Where covered, the table
        loses `shadow` times its diffuse term. Exact for a directional light on a flat
        table; shadows fall on the table only, not on other objects.
        """
        direction = self.appearance.direction()
        verts = meshes.verts_packed()  # (V, 3)
        along = verts[:, 1:2] / direction[1].clamp(min=0.05)  # light from below: none
        flat = verts - along * direction
        flat = torch.stack([flat[:, 0], torch.zeros_like(flat[:, 1]), flat[:, 2]], -1)
        ndc = self.project(meshes.offset_verts(flat - verts), eye)
        face_verts = ndc.verts_packed()[ndc.faces_packed()]  # before rasterising: see _soft
        pix_to_face = self.rasterize(ndc, objects, mode)
        if mode == "crisp":
            cover = (pix_to_face[..., :1] >= 0).to(ground.dtype)  # (B, H, W, 1)
        else:
            frags = fragments(face_verts, pix_to_face, clip_bary=True)
            cover = _silhouette(pix_to_face, frags.dists, self.world)
        look = self.appearance
        lit = look.diffuse() * direction[1].clamp(min=0.0) * look.ground_color()  # (3,)
        on_table = self._floor_of(eye)[1][..., None]  # (1 or B, H, W, 1)
        return ground - look.shadow() * cover * on_table * lit

    def _lit_floor(self, eye: torch.Tensor | None = None) -> torch.Tensor:
        """A world with `shading`: the empty floor lit pixel by pixel (falloff of the lamps'
        light), the background where no floor is seen; (B, H, W, 3), linear, from eye."""
        look = self.appearance
        points, hits = self._floor_of(eye)
        base, lamps = shading.floor_light(points, look.light())
        floor = look.ground_color() * (base[..., None] + lamps.sum(-2))
        return torch.where(hits[..., None], floor, look.background())

    def _lamp_shadowed(
        self,
        ground: torch.Tensor,
        meshes: Meshes,
        objects: list[int],
        mode: RenderMode,
        eye: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The floor image (1 or B, H, W, 3) darkened by each lamp's cast shadows seen from
        each scene's eye, (B, H, W, 3).

        As `_shadowed`, from each lamp's position: the objects are projected from the lamp
        onto the floor (shading.on_floor) and rasterised, all lamps in one call (a batch of
        lamps x scenes); where covered, the floor loses `shadow` of that lamp's light there.
        Cheaper than three object passes: only the faces that face the lamp are projected
        (of a closed mesh they cast the whole shadow), at half the image's side
        (SHADOW_SHRINK), scaled up bilinearly and blurred by the world's shadow_blur (soft
        edges). At 6 objects and batch 64 this took crisp renders from 25 to 35 scenes/s."""
        look = self.appearance
        light = look.light()
        verts = meshes.verts_packed()  # (V, 3)
        counts = meshes.num_verts_per_mesh().tolist()
        per_scene = meshes.num_faces_per_mesh().tolist()
        object_of = torch.repeat_interleave(
            torch.arange(len(objects), device=self.device),
            torch.tensor(objects, device=self.device),
        )  # (F,) each face's object
        with torch.no_grad():  # the faces that face each lamp cast the object's shadow
            corners = verts[meshes.faces_packed()]  # (F, 3, 3)
            edges = corners[:, 1:] - corners[:, :1]
            normals = torch.cross(edges[:, 0], edges[:, 1], dim=-1)
            towards = light.lamps.positions[:, None] - corners.mean(1)  # (L, F, 3)
            lit = (normals * towards).sum(-1) > 0  # (L, F)
            kept = lit.new_zeros(len(lit), len(objects), dtype=torch.long)
            kept.index_add_(1, object_of, lit.long())  # (L, objects)
            lit |= (kept == 0)[:, object_of]  # (a lamp inside an object: all its faces)
            kept = torch.zeros_like(kept).index_add_(1, object_of, lit.long())
        flat_verts, flat_faces = [], []
        for lamp, keep in zip(light.lamps.positions, lit, strict=True):  # (3,), (F,)
            flat_verts += list(shading.on_floor(verts, lamp).split(counts))
            scenes = zip(meshes.faces_list(), keep.split(per_scene), strict=True)
            flat_faces += [faces[chosen] for faces, chosen in scenes]
        flat_objects = kept.reshape(-1).tolist()  # lamp by lamp, as the meshes
        n = len(light.lamps.positions)
        eyes = None if eye is None else eye.repeat(n, 1)  # lamp by lamp, as the meshes
        ndc = self.project(Meshes(flat_verts, flat_faces), eyes)
        face_verts = ndc.verts_packed()[ndc.faces_packed()]  # before rasterising: see _soft
        size = self.world.image_size
        small = max(8, math.ceil(size / SHADOW_SHRINK))
        pix_to_face = self.rasterize(ndc, flat_objects, mode, small)  # (L * B, h, h, K)
        cover = (pix_to_face[..., :1] >= 0).to(ground.dtype)  # (L * B, h, h, 1)
        if mode == "soft":  # the soft silhouette of the covered pixels only (as _soft)
            pixels = cover.reshape(-1).nonzero()[:, 0]
            faces = pix_to_face.reshape(-1, pix_to_face.shape[-1])[pixels]  # (P, K)
            _, _, dists = pixel_fragments(face_verts, faces, pixels % small**2, small, True)
            soft = _silhouette(faces, dists, self.world)  # (P, 1)
            cover = cover.reshape(-1, 1).index_put((pixels,), soft).reshape(cover.shape)
        if small != size:
            cover = F.interpolate(
                cover.permute(0, 3, 1, 2), size=(size, size), mode="bilinear", align_corners=False
            ).permute(0, 2, 3, 1)
        cover = (
            shading.soften(cover, look.shadow_blur() * self.world.image_size)
            if self.world.shading.shadow_blur
            else cover
        )
        cover = cover.reshape(n, len(meshes), *cover.shape[1:])  # (L, B, H, W, 1)
        points, hits = self._floor_of(eye)  # (1 or B, H, W, 3), (1 or B, H, W)
        _, lamps = shading.floor_light(points, light)  # (1 or B, H, W, L, 3)
        lost = light.lamps.shadow[:, None, None, None, None] * lamps.permute(3, 0, 1, 2, 4)
        lost = (cover * lost).sum(0) * hits[..., None]  # (B, H, W, 3)
        return ground - look.ground_color() * lost

    def _paint(
        self,
        meshes: Meshes,
        objects: list[int],
        under: torch.Tensor,
        materials=None,
        eye=None,
        normals: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Crisp: each pixel's nearest face colour over `under` (1 or B, H, W, 3); (B, H, W, 3).
        With corner `normals` (smooth shading), each covered pixel is shaded on its own."""
        ndc = self.project(meshes, eye)
        face_verts = ndc.verts_packed()[ndc.faces_packed()]  # before rasterising: see _soft
        pix_to_face = self.rasterize(ndc, objects, "crisp")[..., 0]
        if normals is None:
            colors = self.face_colors(meshes, materials, eye)[pix_to_face.clamp(min=0)]
            return torch.where((pix_to_face >= 0)[..., None], colors, under)
        B, H, W = pix_to_face.shape
        pixels = (pix_to_face >= 0).reshape(-1).nonzero()[:, 0]
        faces = pix_to_face.reshape(-1)[pixels][:, None]  # (P, 1)
        colors = self.fragment_colors(
            meshes, face_verts, faces, pixels % (H * W), H, normals, materials, eye
        )
        image = under.expand(B, H, W, 3).reshape(B * H * W, 3)
        return image.index_put((pixels,), colors[:, 0]).reshape(B, H, W, 3)

    def _soft(
        self,
        meshes: Meshes,
        objects: list[int],
        ground: torch.Tensor,
        materials=None,
        eye=None,
        normals: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Soft: SoftRas blending of the objects, composited over the ground; (B, H, W, 3)."""
        ndc = self.project(meshes, eye)
        # Before rasterising: Meshes caches verts_packed, and the rasteriser, under no_grad,
        # would cache a copy without autograd history.
        face_verts = ndc.verts_packed()[ndc.faces_packed()]  # (F, 3, 3)
        pix_to_face = self.rasterize(ndc, objects, "soft")
        # Fragments and blend of the covered pixels only (P of the B * H * W; the others
        # show the ground: coverage 0). PyTorch3D's blend is per pixel, so it runs unchanged
        # on the covered pixels laid out as a (P, 1, 1, K) image; the uncovered pixels were
        # most of its work (soft forward + backward at batch 64: 188 -> 390 scenes/s).
        B, H, W, K = pix_to_face.shape
        pixels = (pix_to_face[..., 0] >= 0).reshape(-1).nonzero()[:, 0]  # nearest slot first
        faces = pix_to_face.reshape(B * H * W, K)[pixels]  # (P, K)
        zbuf, _, dists = pixel_fragments(face_verts, faces, pixels % (H * W), H, clip_bary=True)
        hit = Fragments(
            pix_to_face=faces[:, None, None], zbuf=zbuf[:, None, None], bary_coords=None,
            dists=dists[:, None, None],
        )  # fmt: skip
        if normals is None:
            colors = self.face_colors(meshes, materials, eye)[hit.pix_to_face.clamp(min=0)]
        else:
            colors = self.fragment_colors(
                meshes, face_verts, faces, pixels % (H * W), H, normals, materials, eye
            )[:, None, None]  # (P, 1, 1, K, 3)
        cam, soft = self.world.camera, self.world.rendering
        blend = BlendParams(soft.soft_sigma, soft.soft_gamma, self.appearance.background())
        rgb = softmax_rgb_blend(colors, hit, blend, cam.znear, cam.zfar)[..., :3]
        alpha = _silhouette(hit.pix_to_face, hit.dists, self.world)  # (P, 1, 1, 1)
        ground = ground.expand(B, H, W, 3).reshape(B * H * W, 3)  # one per scene (shadows)
        under = ground[pixels][:, None, None]  # (P, 1, 1, 3)
        blended = (alpha * rgb + (1.0 - alpha) * under).reshape(-1, 3)
        return ground.index_put((pixels,), blended).reshape(B, H, W, 3)


def _windows(
    face_verts: torch.Tensor, object_of: torch.Tensor, n: int, size: int, blur: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each object's rasterisation window: its side in pixels (n,), a multiple of 4 (so
    that objects share few window sizes, one rasteriser call each), and its origin (n, 2),
    the (column, row) of its top-left pixel, placed to hold the object's screen box grown
    by the blur radius (plus a pixel for rounding) and to stay inside the image."""
    xy = face_verts[..., :2].reshape(-1, 2)  # (3F, 2) NDC
    owner = object_of.repeat_interleave(3)[:, None].expand(-1, 2)
    low = xy.new_full((n, 2), torch.inf).scatter_reduce(0, owner, xy, "amin")
    high = xy.new_full((n, 2), -torch.inf).scatter_reduce(0, owner, xy, "amax")
    reach = math.sqrt(blur)
    # NDC u at pixel p (+u is left and up): u = 1 - (2p + 1) / size, so p = (size (1 - u) - 1) / 2
    first = torch.floor((size * (1.0 - high - reach) - 1.0) / 2.0) - 1.0  # (n, 2) col, row
    last = torch.ceil((size * (1.0 - low + reach) - 1.0) / 2.0) + 1.0
    first, last = first.clamp(0, size - 1), last.clamp(0, size - 1)
    extent = (last - first + 1).amax(1)  # (n,)
    window = (torch.ceil(extent / 4) * 4).clamp(1, size)
    return window.long(), torch.minimum(first, (size - window)[:, None])


def _merge(
    found: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]],
    scenes: int,
    size: int,
) -> torch.Tensor:
    """Objects' window fragments to the scenes' K nearest per pixel (B, H, W, K).

    `found` holds, per window size w, the objects' pix_to_face and zbuf (n, w, w, K),
    their origins (n, 2) and scenes (n,).

    Works on the covered fragments alone: sorted by depth, then (stably) by pixel, each
    pixel's fragments come nearest first, and the first K of each pixel are kept.
    """
    k = found[0][0].shape[-1]
    pixels, faces, depths = [], [], []
    for pix_to_face, zbuf, origin, scene_of in found:
        obj, row, col, slot = (pix_to_face >= 0).nonzero().unbind(1)
        pixels.append((scene_of[obj] * size + origin[obj, 1] + row) * size + origin[obj, 0] + col)
        faces.append(pix_to_face[obj, row, col, slot])
        depths.append(zbuf[obj, row, col, slot])
    pixel, faces = torch.cat(pixels), torch.cat(faces)
    order = torch.sort(torch.cat(depths), stable=True).indices
    order = order[torch.sort(pixel[order], stable=True).indices]
    pixel, faces = pixel[order], faces[order]
    position = torch.arange(len(pixel), device=pixel.device)
    first = torch.ones_like(pixel, dtype=torch.bool)
    first[1:] = pixel[1:] != pixel[:-1]
    rank = position - torch.where(first, position, 0).cummax(0).values  # place in its pixel
    kept = rank < k
    out = faces.new_full((scenes * size * size * k,), -1)
    out[pixel[kept] * k + rank[kept]] = faces[kept]
    return out.reshape(scenes, size, size, k)


def _silhouette(pix_to_face: torch.Tensor, dists: torch.Tensor, world: World) -> torch.Tensor:
    """Takes fragments (B, H, W, K) to the objects' one-sided soft coverage (B, H, W, 1).

    dists is PyTorch3D's signed squared distance from the pixel to each face (negative
    inside); -1 in pix_to_face marks an empty slot.
    """
    outside = 2.0 * torch.sigmoid(-dists.clamp(min=0.0) / world.rendering.soft_sigma)
    coverage = torch.where(dists <= 0, torch.ones_like(dists), outside) * (pix_to_face >= 0)
    return 1.0 - torch.prod(1.0 - coverage, dim=-1, keepdim=True)


def corner_normals(verts: np.ndarray, faces: np.ndarray, smooth_angle: float) -> torch.Tensor:
    """Each face corner's shading normal (F, 3, 3): the area-weighted mean of the unit
    normals of the faces at that corner's position that meet this face's at less than
    `smooth_angle` degrees (Blender's shade smooth by angle; vertices at one position are
    one, so a mesh's seams do not crease it). Flat faces keep their own normal. Normals do
    not change with scale: the kinds of a shape (sizes) share one computation."""
    verts = np.asarray(verts, np.float64)
    unit = verts / max(float(np.abs(verts).max()), 1e-12)
    faces = np.asarray(faces, np.int64)
    return _corner_normals(unit.round(6).tobytes(), faces.tobytes(), smooth_angle)


@functools.lru_cache(maxsize=64)
def _corner_normals(verts: bytes, faces: bytes, smooth_angle: float) -> torch.Tensor:
    v = torch.from_numpy(np.frombuffer(verts, np.float64).reshape(-1, 3).copy())
    f = torch.from_numpy(np.frombuffer(faces, np.int64).reshape(-1, 3).copy())
    corners = v[f]  # (F, 3, 3)
    cross = torch.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0], dim=-1)
    unit = F.normalize(cross, dim=-1)  # outward for counter-clockwise faces; |cross|: 2 area
    _, position = torch.unique(torch.round(v * 1e5), dim=0, return_inverse=True)
    at = position[f]  # (F, 3): each corner's position
    touches = (at.reshape(-1, 1, 1) == at[None]).any(-1)  # (3F, F): faces at each corner
    near = (unit @ unit.T) > math.cos(math.radians(smooth_angle))  # (F, F)
    share = touches & near.repeat_interleave(3, dim=0)  # (3F, F)
    normals = F.normalize(share.double() @ cross, dim=-1)
    return normals.reshape(-1, 3, 3).float()


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
