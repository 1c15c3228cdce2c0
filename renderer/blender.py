"""A second, independent renderer: Blender's Cycles path tracer through the `bpy` package.

It draws the same scenes as renderer.py from the same world config and shape library, but
by path tracing: cast shadows, light bounced between surfaces, anti-aliased edges, sampling
noise. Images from it are what "a renderer we did not write" looks like to a model trained
on ours. The scene is built in code: our own meshes, node materials with the world's
colours, the world's camera and light.

How the world's parameters become Blender's:
- Coordinates: Blender is z-up; points go through the CLEVR mapping of
  air3d/clevr_format.py (X, Y, Z) = (x, -z, y), a proper rotation, so yaw is the object's
  rotation about Blender's Z.
- Camera: the world's eye, look-at, up and field of view (vertical; images are square).
- Light: our renderer shades `colour * (ambient + diffuse * max(0, n . l))`. Here the
  ambient term is a uniform world light of that intensity (a diffuse surface open to the
  whole sky reflects `colour * ambient`; shadowed or enclosed ones get less) and the
  diffuse term a sun from the world's light direction of strength `diffuse * pi` (Cycles'
  sun strength is irradiance; a Lambertian surface reflects albedo * E * cos / pi).
- Surfaces: diffuse BSDFs of the shapes' and the ground's colours, flat-shaded faces as ours.
- Pixels that see no surface show the world's background colour (camera rays only).
- Colours are written without a view transform, as our renderer writes them: the stored
  8-bit value is the linear intensity.

`bpy` is imported when a BlenderRenderer is made (install it with `pip install
air3d[blender]`). Blender is one global state per process: use one BlenderRenderer at a time.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from air3d.renderer.scene import Scene
from air3d.renderer.shapes import ShapeLibrary
from air3d.renderer.world import World

INSTALL_HINT = "Blender rendering needs the bpy package: pip install air3d[blender]"


@dataclass(frozen=True)
class BlenderConfig:
    samples: int = 64  # Cycles samples per pixel: more is less noise, linearly slower
    sun_angle_deg: float = 3.0  # the sun's angular diameter: how soft shadow edges are
    max_bounces: int = 4  # light bounces between surfaces (0: direct light only)
    threads: int = 0  # CPU threads for Cycles; 0: as many as there are cores
    seed: int = 0  # Cycles' sampling seed: same seed, same noise

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise ValueError(f"BlenderConfig.samples must be >= 1, got {self.samples}")
        for name in ("max_bounces", "threads"):
            if getattr(self, name) < 0:
                raise ValueError(f"BlenderConfig.{name} must be >= 0, got {getattr(self, name)}")


def import_bpy() -> Any:
    """The bpy module, or an ImportError that says how to install it."""
    try:
        import bpy
    except ImportError as error:
        raise ImportError(f"{INSTALL_HINT} ({error})") from None
    return bpy


def blender_coords(point) -> tuple[float, float, float]:
    """Our (x, y, z), y up, to Blender's (X, Y, Z), z up (the CLEVR mapping)."""
    x, y, z = point
    return (float(x), float(-z), float(y))


class BlenderRenderer:
    """Takes Scenes to Cycles renders (B, 3, S, S) in [0, 1]: an ImageSource for make-data."""

    name = "blender"

    def __init__(self, world: World, shapes: ShapeLibrary, config: BlenderConfig | None = None):
        self.config = config or BlenderConfig()
        self.world, self.shapes = world, shapes
        self.bpy = import_bpy()
        self._tmp = tempfile.TemporaryDirectory(prefix="air3d-blender-")  # removed with self
        self._build_stage()

    def render(self, scenes: list[Scene]) -> torch.Tensor:
        return torch.stack([self.render_one(scene) for scene in scenes])

    def render_one(self, scene: Scene, mask: bool = False) -> torch.Tensor:
        """One image (3, S, S); with mask=True instead the objects' coverage (1, S, S) in
        [0, 1]: the alpha of a render in which the ground and sky are hidden."""
        self._place_objects(scene)
        bpy = self.bpy
        self._ground.visible_camera = not mask
        bpy.context.scene.render.film_transparent = mask
        path = Path(self._tmp.name) / "render.png"
        bpy.context.scene.render.filepath = str(path)
        with _quiet():
            bpy.ops.render.render(write_still=True)
        pixels = np.asarray(Image.open(path).convert("RGBA"), dtype=np.float32) / 255.0
        image = torch.from_numpy(pixels).permute(2, 0, 1)
        return image[3:] if mask else image[:3].clone()

    def mask(self, scene: Scene) -> torch.Tensor:
        return self.render_one(scene, mask=True)

    # -- the stage: render settings, world light, camera, sun, ground (once) -------------

    def _build_stage(self) -> None:
        bpy, world, config = self.bpy, self.world, self.config
        bpy.ops.wm.read_factory_settings(use_empty=True)
        scene = bpy.context.scene
        render = scene.render
        render.engine = "CYCLES"
        render.resolution_x = render.resolution_y = world.image_size
        render.resolution_percentage = 100
        render.image_settings.file_format = "PNG"
        render.image_settings.color_mode = "RGBA"
        render.threads_mode = "FIXED" if config.threads else "AUTO"
        if config.threads:
            render.threads = config.threads
        cycles = scene.cycles
        cycles.device = "CPU"
        cycles.samples = config.samples
        cycles.use_adaptive_sampling = False
        cycles.use_denoising = False
        cycles.seed = config.seed
        cycles.max_bounces = config.max_bounces
        scene.view_settings.view_transform = "Raw"  # write linear values, as our renderer
        self._build_sky(scene)
        self._build_camera(scene)
        self._build_sun(scene)
        self._ground = self._build_ground(scene)
        self._objects: list[Any] = []
        self._materials = [
            _diffuse_material(bpy, f"shape-{spec.name}", spec.color) for spec in self.shapes.specs
        ]
        self._meshes = [
            _mesh(bpy, f"shape-{spec.name}", mesh.verts, mesh.faces, self._materials[i])
            for i, (spec, mesh) in enumerate(
                zip(self.shapes.specs, self.shapes.meshes, strict=True)
            )
        ]

    def _build_sky(self, scene) -> None:
        """Ambient light for shading; the background colour for camera rays only."""
        sky = self.bpy.data.worlds.new("air3d-sky")
        scene.world = sky
        nodes, links = sky.node_tree.nodes, sky.node_tree.links
        nodes.clear()
        ambient = nodes.new("ShaderNodeBackground")
        ambient.inputs["Color"].default_value = (*(self.world.light.ambient,) * 3, 1.0)
        backdrop = nodes.new("ShaderNodeBackground")
        backdrop.inputs["Color"].default_value = (*self.world.background, 1.0)
        path = nodes.new("ShaderNodeLightPath")
        mix = nodes.new("ShaderNodeMixShader")
        out = nodes.new("ShaderNodeOutputWorld")
        links.new(path.outputs["Is Camera Ray"], mix.inputs["Fac"])
        links.new(ambient.outputs["Background"], mix.inputs[1])
        links.new(backdrop.outputs["Background"], mix.inputs[2])
        links.new(mix.outputs["Shader"], out.inputs["Surface"])

    def _build_camera(self, scene) -> None:
        bpy, cam = self.bpy, self.world.camera
        from mathutils import Vector

        data = bpy.data.cameras.new("air3d-camera")
        data.sensor_fit = "VERTICAL"
        data.angle_y = math.radians(cam.fov_deg)
        data.clip_start, data.clip_end = cam.znear, cam.zfar
        camera = bpy.data.objects.new("air3d-camera", data)
        eye = Vector(blender_coords(cam.position))
        camera.location = eye
        look = Vector(blender_coords(cam.look_at)) - eye
        up = Vector(blender_coords(cam.up))
        camera.rotation_mode = "QUATERNION"
        camera.rotation_quaternion = _look_rotation(look, up)
        scene.collection.objects.link(camera)
        scene.camera = camera

    def _build_sun(self, scene) -> None:
        from mathutils import Vector

        light = self.world.light
        data = self.bpy.data.lights.new("air3d-sun", "SUN")
        data.energy = light.diffuse * math.pi
        data.angle = math.radians(self.config.sun_angle_deg)
        sun = self.bpy.data.objects.new("air3d-sun", data)
        towards = Vector(blender_coords(light.direction)).normalized()
        sun.rotation_mode = "QUATERNION"
        sun.rotation_quaternion = towards.to_track_quat("Z", "Y")  # it shines along its -Z
        scene.collection.objects.link(sun)

    def _build_ground(self, scene):
        h = self.world.ground.half_extent
        verts = np.array([[-h, 0, -h], [h, 0, -h], [h, 0, h], [-h, 0, h]], np.float32)
        faces = np.array([[0, 2, 1], [0, 3, 2]])  # counter-clockwise from above, as ours
        material = _diffuse_material(self.bpy, "ground", self.world.ground.color)
        mesh = _mesh(self.bpy, "ground", verts, faces, material)
        ground = self.bpy.data.objects.new("ground", mesh)
        scene.collection.objects.link(ground)
        return ground

    # -- the objects of one scene ---------------------------------------------------------

    def _place_objects(self, scene: Scene) -> None:
        bpy = self.bpy
        for obj in self._objects:
            bpy.data.objects.remove(obj, do_unlink=True)
        self._objects = []
        for i, item in enumerate(scene.objects):
            mesh = self._meshes[self.shapes.index(item.shape)]
            obj = bpy.data.objects.new(f"object-{i}", mesh)
            obj.location = blender_coords(item.position)
            obj.rotation_euler = (0.0, 0.0, math.radians(item.yaw_deg))
            bpy.context.scene.collection.objects.link(obj)
            self._objects.append(obj)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silences what Blender prints to the process's stdout (a line per render tile)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _look_rotation(look, up):
    """The camera rotation that points its -Z along `look` with its +Y towards `up`."""
    from mathutils import Matrix

    back = -look.normalized()
    right = up.cross(back).normalized()
    true_up = back.cross(right)
    return Matrix((right, true_up, back)).transposed().to_quaternion()


def _diffuse_material(bpy, name: str, color) -> Any:
    material = bpy.data.materials.new(name)
    nodes, links = material.node_tree.nodes, material.node_tree.links
    nodes.clear()
    bsdf = nodes.new("ShaderNodeBsdfDiffuse")
    bsdf.inputs["Color"].default_value = (*color, 1.0)
    out = nodes.new("ShaderNodeOutputMaterial")
    links.new(bsdf.outputs["BSDF"], out.inputs["Surface"])
    return material


def _mesh(bpy, name: str, verts: np.ndarray, faces: np.ndarray, material) -> Any:
    """A Blender mesh of our (V, 3) y-up vertices and (F, 3) faces, flat-shaded."""
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata([blender_coords(v) for v in verts.tolist()], [], faces.tolist())
    mesh.update()
    mesh.materials.append(material)
    return mesh
