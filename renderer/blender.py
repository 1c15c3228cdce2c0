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
  A world with a `frame` (CLEVR: 320 x 240) is rendered at the frame's size: the square
  canvas's field of view is the frame's horizontal one.
- Light, in a world with `lamps` (CLEVR): those lamps (area lamps aimed at the look-at, a
  sun), no light from the sky, and a floor of Blender's default material reaching the
  camera's far plane, objects shaded smooth across edges under 30 degrees (our meshes
  approximate curved surfaces) and their sharp edges slightly rounded, as CLEVR's cubes and
  cylinders are (the rims catch the light; the CLEVR world's own meshes come rounded by
  the same width, and the bevel, limited to edges sharper than 30 degrees, leaves them
  as they are). In a world without lamps: our renderer shades
  `colour * (ambient + diffuse * max(0, n . l))`. Here the ambient term is a uniform
  world light of that intensity (a diffuse surface open to the whole sky reflects
  `colour * ambient`; shadowed or enclosed ones get less) and the diffuse term a sun from
  the world's light direction of strength `diffuse * pi` (Cycles' sun strength is
  irradiance; a Lambertian surface reflects albedo * E * cos / pi).
- Surfaces: diffuse BSDFs of the shapes' and the ground's colours, flat-shaded faces as ours.
  In a world with attributes, one Principled BSDF per kind: the `color` attribute's value
  as base colour (the raw linear colour, not ShapeSpec.color, which our material albedo
  scales), the `material` value's metallic, roughness and sheen; sizes are the kinds'
  meshes.
- Pixels that see no surface show the world's background colour (camera rays only).
- Colours are written as the world's tone says: gamma near 2.2 through Blender's "Standard"
  view transform (sRGB, as CLEVR's PNGs), else without one, as our renderer writes them
  (the stored 8-bit value is the linear intensity); the tone's exposure in stops.
- The camera is the scene's (`Scene.camera`, drawn by the prior in a world with camera
  jitter, CLEVR's), else the world's. The area lamps move per image by uniform noise on
  each axis (the world's `lamp_jitter`, CLEVR: 1.0; BlenderConfig.lamp_jitter overrides),
  drawn from the scene and the seed: a nuisance of the image, not part of the scene.

`bpy` is imported when a BlenderRenderer is made (install it with `pip install
air3d[blender]`). Blender is one global state per process: a BlenderRenderer builds its
stage again when another one has rendered since (about half a second).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from air3d.renderer.scene import Scene
from air3d.renderer.shapes import ShapeLibrary, ShapeSpec
from air3d.renderer.world import CameraConfig, LampConfig, World

INSTALL_HINT = "Blender rendering needs the bpy package: pip install air3d[blender]"
SMOOTH_ANGLE_DEG = 30.0  # lit by lamps: faces meeting at less than this are shaded smooth
BEVEL = 0.05  # lit by lamps: sharp edges rounded by this share of the object's height
SRGB_GAMMA = 1.6  # a tone gamma at least this is written through the sRGB view transform


@dataclass(frozen=True)
class BlenderConfig:
    samples: int = 64  # Cycles samples per pixel: more is less noise, linearly slower
    # the sun's angular diameter in a world without lamps: how soft shadow edges are
    sun_angle_deg: float = 3.0
    max_bounces: int = 4  # light bounces between surfaces (0: direct light only)
    threads: int = 0  # CPU threads for Cycles; 0: as many as there are cores
    seed: int = 0  # Cycles' sampling seed, and with the scene the lamps': same seed, same image
    # Per image, uniform[-j, j] added to each axis of each area lamp's position; None: the
    # world's lamp_jitter (CLEVR: 1.0), 0: the lamps where the world puts them.
    lamp_jitter: float | None = None
    # OpenImageDenoise after sampling: 320x240 clevr, 32 samples denoised were nearer a
    # 512-sample render than 64 without (RMSE 0.0066 vs 0.0076), in 3.6 s instead of 5.0
    denoise: bool = False

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise ValueError(f"BlenderConfig.samples must be >= 1, got {self.samples}")
        for name in ("max_bounces", "threads", "lamp_jitter"):
            if (getattr(self, name) or 0) < 0:
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
    """Takes Scenes to Cycles renders (B, 3, H, W) in [0, 1], H x W the world's frame (else
    its square image_size): an ImageSource for make-data."""

    name = "blender"
    _on_stage: BlenderRenderer | None = None  # whose scene Blender's global state holds

    def __init__(self, world: World, shapes: ShapeLibrary, config: BlenderConfig | None = None):
        self.config = config or BlenderConfig()
        self.world, self.shapes = world, shapes
        self.bpy = import_bpy()
        self._tmp = tempfile.TemporaryDirectory(prefix="air3d-blender-")  # removed with self
        self._build_stage()

    def render(self, scenes: list[Scene]) -> torch.Tensor:
        return torch.stack([self.render_one(scene) for scene in scenes])

    def render_one(self, scene: Scene, mask: bool = False) -> torch.Tensor:
        """One image (3, H, W); with mask=True instead the objects' coverage (1, H, W) in
        [0, 1]: the alpha of a render in which the ground and sky are hidden."""
        if BlenderRenderer._on_stage is not self:  # another renderer replaced our stage
            self._build_stage()
        self._place_objects(scene)
        self._place_camera_and_lamps(scene)
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

    @property
    def lamp_jitter(self) -> float:
        """How far the area lamps move per image: the config's, else the world's."""
        jitter = self.config.lamp_jitter
        return self.world.lamp_jitter if jitter is None else jitter

    def _lamp_offsets(self, scene: Scene) -> np.ndarray:
        """(L, 3) this image's lamp offsets (zeros without jitter): drawn from the seed and
        the scene itself, so a resumed run draws the same."""
        if not self.lamp_jitter:
            return np.zeros((len(self.world.lamps), 3))
        key = zlib.crc32(json.dumps(scene.to_json(), sort_keys=True).encode())
        rng = np.random.default_rng([self.config.seed, key])
        return rng.uniform(-1.0, 1.0, (len(self.world.lamps), 3)) * self.lamp_jitter

    # -- the stage: render settings, sky, camera, lamps or sun, floor or ground ---------

    def _build_stage(self) -> None:
        bpy, world, config = self.bpy, self.world, self.config
        bpy.ops.wm.read_factory_settings(use_empty=True)
        BlenderRenderer._on_stage = self
        scene = bpy.context.scene
        render = scene.render
        render.engine = "CYCLES"
        render.resolution_x, render.resolution_y = world.frame or (world.image_size,) * 2
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
        cycles.use_denoising = config.denoise
        if config.denoise:
            cycles.denoiser = "OPENIMAGEDENOISE"
        cycles.seed = config.seed
        cycles.max_bounces = config.max_bounces
        srgb = world.tone.gamma >= SRGB_GAMMA  # sRGB, as CLEVR; else linear, as our renderer
        scene.view_settings.view_transform = "Standard" if srgb else "Raw"
        scene.view_settings.look = "None"
        scene.view_settings.exposure = math.log2(world.tone.exposure)
        if world.lamps:
            cycles.caustics_reflective = cycles.caustics_refractive = False  # fireflies
            cycles.use_light_tree = False  # a few lamps: measured 20% faster, same noise
        self._build_sky(scene, ambient=0.0 if world.lamps else world.light.ambient)
        self._camera = self._build_camera(scene)
        if world.lamps:
            self._lamps = [self._build_lamp(scene, i, lamp) for i, lamp in enumerate(world.lamps)]
            self._ground = self._build_floor(scene)
        else:
            self._lamps = []
            self._build_sun(scene)
            self._ground = self._build_ground(scene)
        self._objects: list[Any] = []
        self._meshes = [
            _mesh(bpy, f"kind-{k}", mesh.verts, mesh.faces, self._kind_material(k, spec))
            for k, (spec, mesh) in enumerate(
                zip(self.shapes.specs, self.shapes.meshes, strict=True)
            )
        ]
        if world.lamps:
            for mesh in self._meshes:
                mesh.shade_smooth()
                mesh.set_sharp_from_angle(angle=math.radians(SMOOTH_ANGLE_DEG))

    def _kind_material(self, k: int, spec: ShapeSpec) -> Any:
        """A diffuse surface of the kind's colour; in a world with attributes a Principled
        BSDF of the raw `color` value (not spec.color: our albedo factor scales that) and
        the `material` value's metallic, roughness and sheen."""
        if not self.world.attributes:
            return _diffuse_material(self.bpy, f"kind-{k}", spec.color)
        values = dict(spec.attributes)
        color = self.world.attribute("color")
        material = self.world.attribute("material")
        surface = dict(material.setting(values["material"])) if material else {}
        return _principled_material(
            self.bpy,
            f"kind-{k}",
            color.setting(values["color"]) if color else spec.color,
            metallic=surface.get("metallic", 0.0),
            roughness=surface.get("roughness", 0.5),
            sheen=surface.get("sheen", 0.0),
        )

    def _build_sky(self, scene, ambient: float) -> None:
        """Ambient light for shading; the background colour for camera rays only."""
        sky = self.bpy.data.worlds.new("air3d-sky")
        scene.world = sky
        nodes, links = sky.node_tree.nodes, sky.node_tree.links
        nodes.clear()
        light = nodes.new("ShaderNodeBackground")
        light.inputs["Color"].default_value = (ambient, ambient, ambient, 1.0)
        backdrop = nodes.new("ShaderNodeBackground")
        backdrop.inputs["Color"].default_value = (*self.world.background, 1.0)
        path = nodes.new("ShaderNodeLightPath")
        mix = nodes.new("ShaderNodeMixShader")
        out = nodes.new("ShaderNodeOutputWorld")
        links.new(path.outputs["Is Camera Ray"], mix.inputs["Fac"])
        links.new(light.outputs["Background"], mix.inputs[1])
        links.new(backdrop.outputs["Background"], mix.inputs[2])
        links.new(mix.outputs["Shader"], out.inputs["Surface"])

    def _build_camera(self, scene) -> Any:
        bpy, cam = self.bpy, self.world.camera
        data = bpy.data.cameras.new("air3d-camera")
        # the square canvas's field of view is the frame's horizontal one (world.frame)
        data.sensor_fit = "HORIZONTAL" if self.world.frame else "VERTICAL"
        data.angle = math.radians(cam.fov_deg)
        data.clip_start, data.clip_end = cam.znear, cam.zfar
        camera = bpy.data.objects.new("air3d-camera", data)
        camera.rotation_mode = "QUATERNION"
        scene.collection.objects.link(camera)
        scene.camera = camera
        _aim_camera(camera, cam)
        return camera

    def _build_lamp(self, scene, i: int, lamp: LampConfig) -> Any:
        """An area lamp or a sun of the world's `lamps`, aimed at the camera's look-at."""
        data = self.bpy.data.lights.new(f"air3d-lamp-{i}", lamp.kind.upper())
        data.energy, data.color = lamp.energy, lamp.color
        if lamp.kind == "area":
            data.size = lamp.size
        else:
            data.angle = math.radians(lamp.size)
        obj = self.bpy.data.objects.new(f"air3d-lamp-{i}", data)
        obj.rotation_mode = "QUATERNION"
        scene.collection.objects.link(obj)
        self._aim_lamp(obj, lamp.position)
        return obj

    def _aim_lamp(self, obj, position) -> None:
        """Puts a lamp at `position` (ours), its -Z towards the look-at (a sun: its light)."""
        from mathutils import Vector

        where = Vector(blender_coords(position))
        towards = where - Vector(blender_coords(self.world.camera.look_at))
        obj.location = where
        obj.rotation_quaternion = towards.to_track_quat("Z", "Y")

    def _place_camera_and_lamps(self, scene: Scene) -> None:
        """The scene's camera (else the world's), and the lamps moved by this image's jitter."""
        _aim_camera(self._camera, self.world.camera.moved_to(scene.camera))
        offsets = self._lamp_offsets(scene)
        for obj, lamp, offset in zip(self._lamps, self.world.lamps, offsets, strict=True):
            self._aim_lamp(obj, np.asarray(lamp.position) + (offset if lamp.kind == "area" else 0))

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

    def _build_floor(self, scene):
        """Lit by lamps: a floor of Blender's default material (a Principled BSDF as Blender
        makes it, grey) reaching the camera's far plane, so it fills the view as CLEVR's."""
        h = self.world.camera.zfar
        verts = np.array([[-h, 0, -h], [h, 0, -h], [h, 0, h], [-h, 0, h]], np.float32)
        faces = np.array([[0, 2, 1], [0, 3, 2]])
        material = self.bpy.data.materials.new("floor")  # its node tree: Blender's default
        floor = self.bpy.data.objects.new("floor", _mesh(self.bpy, "floor", verts, faces, material))
        scene.collection.objects.link(floor)
        return floor

    # -- the objects of one scene ---------------------------------------------------------

    def _place_objects(self, scene: Scene) -> None:
        bpy = self.bpy
        for obj in self._objects:
            bpy.data.objects.remove(obj, do_unlink=True)
        self._objects = []
        for i, item in enumerate(scene.objects):
            kind = self.shapes.index(item.shape, dict(item.attributes))
            obj = bpy.data.objects.new(f"object-{i}", self._meshes[kind])
            obj.location = blender_coords(item.position)
            obj.rotation_euler = (0.0, 0.0, math.radians(item.yaw_deg))
            if self.world.lamps:
                _bevel(obj, BEVEL * self.shapes.specs[kind].height)
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


def _bevel(obj, width: float) -> None:
    """Rounds the object's edges sharper than SMOOTH_ANGLE_DEG by `width` (world units)."""
    bevel = obj.modifiers.new("bevel", "BEVEL")
    bevel.width, bevel.segments = width, 4
    bevel.limit_method, bevel.angle_limit = "ANGLE", math.radians(SMOOTH_ANGLE_DEG)


def _aim_camera(camera, config: CameraConfig) -> None:
    """Puts the Blender camera where `config` says, looking at its look-at, up its up."""
    from mathutils import Vector

    eye = Vector(blender_coords(config.position))
    camera.location = eye
    look = Vector(blender_coords(config.look_at)) - eye
    camera.rotation_quaternion = _look_rotation(look, Vector(blender_coords(config.up)))


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


def _principled_material(
    bpy, name: str, color, metallic: float, roughness: float, sheen: float
) -> Any:
    material = bpy.data.materials.new(name)
    nodes, links = material.node_tree.nodes, material.node_tree.links
    nodes.clear()
    bsdf = nodes.new("ShaderNodeBsdfPrincipled")
    bsdf.inputs["Base Color"].default_value = (*color, 1.0)
    bsdf.inputs["Metallic"].default_value = metallic
    bsdf.inputs["Roughness"].default_value = roughness
    bsdf.inputs["Sheen Weight"].default_value = sheen
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
