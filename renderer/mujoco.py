"""A third, independent renderer: MuJoCo's OpenGL renderer, offscreen on a CPU by OSMesa.

It draws the same scenes as renderer.py from the same world config and shape library, with
MuJoCo's own pipeline: cast shadows (a shadow map), multisample anti-aliasing, 8-bit
rendering, and a tone curve applied to what it writes. With a changed look (`Look`: another
light, colours, ground, background, an sRGB curve) its images are the test bed of `air3d
adapt`: unlabeled pictures of our world that our renderer, as configured, does not draw.

How the world's parameters become MuJoCo's:
- Coordinates: ours as they are (y up). Nothing is simulated, so gravity's axis is moot;
  MuJoCo's camera looks along its -z with its x and y axes given (`xyaxes`).
- Camera: the world's eye, look-at, up and vertical field of view.
- Light: a directional light shining along minus the world's light direction, of the
  world's diffuse intensity, plus the headlight's ambient term of the world's ambient (a
  surface reflects `colour * (ambient + diffuse * max(0, n . l))` outside shadows, as ours).
- Surfaces: materials of the shapes' and the ground's colours, no specular term; every
  face has its own vertices, so normals are flat as in ours.
- Background: a flat skybox of the world's background colour.
- Objects: for each shape a few mocap bodies, placed per scene; unused ones wait under
  the table, out of sight.

`mujoco` is imported when a MujocoRenderer is made (`pip install air3d[mujoco]`; offscreen
on a CPU it needs OSMesa, `apt-get install libosmesa6`, and MUJOCO_GL=osmesa, the default
set here when MUJOCO_GL is unset).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from air3d.renderer.scene import Scene
from air3d.renderer.shapes import ShapeLibrary
from air3d.renderer.world import LightConfig, World

INSTALL_HINT = (
    "MuJoCo rendering needs the mujoco package and OSMesa: pip install air3d[mujoco]; "
    "apt-get install libosmesa6"
)
TONES = ("linear", "srgb")
_PARKED = (0.0, -50.0, 0.0)  # where unused objects wait: under the table


@dataclass(frozen=True)
class Look:
    """What a look file changes (all optional: unset keeps the world's own).

    YAML keys: light {direction, ambient, diffuse}, ground_color, background,
    colors {shape name: [r, g, b]}, tone ("linear" or "srgb"), exposure."""

    light: dict[str, Any] | None = None
    ground_color: tuple[float, float, float] | None = None
    background: tuple[float, float, float] | None = None
    colors: dict[str, tuple[float, float, float]] | None = None
    tone: str = "linear"  # the curve applied to MuJoCo's linear output before writing
    exposure: float = 1.0  # multiplies the linear intensities before the curve

    def __post_init__(self) -> None:
        if self.tone not in TONES:
            raise ValueError(f"look tone {self.tone!r} unknown; known: {', '.join(TONES)}")
        if not self.exposure > 0:
            raise ValueError(f"look exposure must be > 0, got {self.exposure}")

    def apply(self, world: World, shapes: ShapeLibrary) -> tuple[World, ShapeLibrary]:
        """The world and shape library as this look draws them (geometry unchanged)."""
        if self.light:
            unknown = sorted(set(self.light) - set(LightConfig.__dataclass_fields__))
            if unknown:
                raise ValueError(f"look light: unknown keys {unknown}; known: direction, "
                                 "ambient, diffuse, specular, shadow")  # fmt: skip
            light = {k: tuple(v) if isinstance(v, list) else v for k, v in self.light.items()}
            world = replace(world, light=replace(world.light, **light))
        if self.ground_color:
            world = replace(world, ground=replace(world.ground, color=tuple(self.ground_color)))
        if self.background:
            world = replace(world, background=tuple(self.background))
        for name, color in (self.colors or {}).items():
            specs = list(shapes.specs)
            specs[shapes.index(name)] = replace(shapes.spec(name), color=tuple(color))
            shapes = replace(shapes, specs=tuple(specs))
        return world, shapes

    def to_dict(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if value is not None}


def load_look(path: str | Path) -> Look:
    """Reads a look file (YAML); ValueError naming unknown keys."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"look file {path} does not exist")
    data = yaml.safe_load(path.read_text()) or {}
    known = set(Look.__dataclass_fields__)
    if not isinstance(data, dict) or set(data) - known:
        extra = sorted(set(data) - known) if isinstance(data, dict) else data
        raise ValueError(f"look file {path}: unknown keys {extra}; known: {sorted(known)}")
    return Look(**data)


def import_mujoco() -> Any:
    """The mujoco module, offscreen by OSMesa unless MUJOCO_GL says otherwise."""
    os.environ.setdefault("MUJOCO_GL", "osmesa")
    try:
        import mujoco
    except ImportError as error:
        raise ImportError(f"{INSTALL_HINT} ({error})") from None
    return mujoco


class MujocoRenderer:
    """Takes Scenes to MuJoCo renders (B, 3, S, S) in [0, 1]: an ImageSource for make-data."""

    name = "mujoco"

    def __init__(
        self,
        world: World,
        shapes: ShapeLibrary,
        look: Look | None = None,
        slots: int | None = None,
        multisamples: int = 4,
    ):
        self.look = look or Look()
        self.world, self.shapes = self.look.apply(world, shapes)
        self.slots = max(slots or 0, world.max_objects)  # bodies per shape
        self.mujoco = mujoco = import_mujoco()
        xml = _model_xml(self.world, self.shapes, self.slots, multisamples)
        self.model = mujoco.MjModel.from_xml_string(xml)
        self.data = mujoco.MjData(self.model)
        size = self.world.image_size
        try:
            self._renderer = mujoco.Renderer(self.model, size, size)
        except Exception as error:  # no OpenGL context: OSMesa missing
            raise ImportError(f"{INSTALL_HINT} ({error})") from None

    def close(self) -> None:
        self._renderer.close()

    def __enter__(self) -> MujocoRenderer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def render(self, scenes: list[Scene]) -> torch.Tensor:
        return torch.stack([self.render_one(scene) for scene in scenes])

    def render_one(self, scene: Scene) -> torch.Tensor:
        """One image (3, S, S) in [0, 1], toned as the look says."""
        if scene.camera is not None:  # its camera is fixed in the MJCF model
            raise ValueError(
                "MuJoCo draws from the world's camera only; this scene has its own "
                "(a world with camera jitter): make-data --camera-jitter 0, or another renderer"
            )
        self._place_objects(scene)
        self.mujoco.mj_forward(self.model, self.data)
        self._renderer.update_scene(self.data, camera="air3d")
        pixels = self._renderer.render().astype(np.float32) / 255.0  # (S, S, 3) linear
        return torch.from_numpy(_tone(pixels, self.look)).permute(2, 0, 1).contiguous()

    def _place_objects(self, scene: Scene) -> None:
        used = [0] * len(self.shapes)
        self.data.mocap_pos[:] = _PARKED
        self.data.mocap_quat[:] = (1.0, 0.0, 0.0, 0.0)
        for item in scene.objects:
            s = self.shapes.index(item.shape)
            if used[s] == self.slots:
                raise ValueError(
                    f"scene has more than {self.slots} objects of shape {item.shape!r}: "
                    "make the MujocoRenderer with more slots"
                )
            body = s * self.slots + used[s]
            used[s] += 1
            half = math.radians(item.yaw_deg) / 2  # a rotation about +y, as ours
            self.data.mocap_pos[body] = item.position
            self.data.mocap_quat[body] = (math.cos(half), 0.0, math.sin(half), 0.0)


def _tone(linear: np.ndarray, look: Look) -> np.ndarray:
    value = np.clip(linear * look.exposure, 0.0, 1.0)
    if look.tone == "srgb":  # IEC 61966-2-1
        value = np.where(
            value <= 0.0031308, 12.92 * value, 1.055 * np.power(value, 1 / 2.4) - 0.055
        )
    return value.astype(np.float32)


def _model_xml(world: World, shapes: ShapeLibrary, slots: int, multisamples: int) -> str:
    """The MJCF model: stage (camera, lights, sky, ground) plus `slots` bodies per shape."""
    cam, light = world.camera, world.light
    eye, target = np.array(cam.position), np.array(cam.look_at)
    forward = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(forward, np.array(cam.up))
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    towards = np.array(light.direction) / np.linalg.norm(light.direction)
    h = world.ground.half_extent

    def vec(values) -> str:
        return " ".join(f"{float(v):.6g}" for v in values)

    assets, bodies = [], []
    for spec, mesh in zip(shapes.specs, shapes.meshes, strict=True):
        verts = mesh.verts[mesh.faces].reshape(-1, 3)  # every face its own vertices: flat
        faces = np.arange(len(verts)).reshape(-1, 3)
        assets.append(
            f'<mesh name="{spec.name}" vertex="{vec(verts.ravel())}" face="{vec(faces.ravel())}"/>'
            f'<material name="{spec.name}" rgba="{vec(spec.color)} 1" specular="0" '
            'shininess="0" reflectance="0"/>'
        )
        for i in range(slots):
            bodies.append(
                f'<body name="{spec.name}-{i}" mocap="true" pos="{vec(_PARKED)}">'
                f'<geom type="mesh" mesh="{spec.name}" material="{spec.name}" '
                'contype="0" conaffinity="0"/></body>'
            )
    sky = vec(world.background)
    return f"""
<mujoco model="air3d">
  <compiler inertiafromgeom="false"/>
  <statistic extent="{2 * h}" center="0 0 0"/>
  <visual>
    <global offwidth="{world.image_size}" offheight="{world.image_size}"/>
    <quality shadowsize="2048" offsamples="{multisamples}"/>
    <headlight ambient="{vec([light.ambient] * 3)}" diffuse="0 0 0" specular="0 0 0"/>
    <map znear="{cam.znear / (2 * h)}" zfar="{cam.zfar / (2 * h)}" haze="0" shadowclip="1"/>
    <rgba haze="{sky} 1"/>
  </visual>
  <asset>
    <texture name="sky" type="skybox" builtin="flat" rgb1="{sky}" rgb2="{sky}"
             width="8" height="8"/>
    <material name="ground" rgba="{vec(world.ground.color)} 1" specular="0" shininess="0"
              reflectance="0"/>
    {"".join(assets)}
  </asset>
  <worldbody>
    <light name="sun" directional="true" castshadow="true" dir="{vec(-towards)}"
           pos="{vec(towards * 2 * h)}" ambient="0 0 0" diffuse="{vec([light.diffuse] * 3)}"
           specular="0 0 0"/>
    <camera name="air3d" pos="{vec(eye)}" xyaxes="{vec(right)} {vec(up)}" fovy="{cam.fov_deg}"/>
    <geom name="ground" type="box" size="{h} 0.005 {h}" pos="0 -0.005 0" material="ground"
          contype="0" conaffinity="0"/>
    {"".join(bodies)}
  </worldbody>
</mujoco>
"""
