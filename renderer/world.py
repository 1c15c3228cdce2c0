"""The world config: camera, light, ground, workspace, attributes, prior, likelihood.

A world is data: a folder holding `world.yaml` (this config) and `shapes/` (the shape
library); `renderer/worlds.py` finds and opens one by name or path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from air3d.assets import ASSETS_DIR

DEFAULT_WORLD_PATH = ASSETS_DIR / "worlds" / "tabletop" / "world.yaml"

Vec3 = tuple[float, float, float]


@dataclass(frozen=True)
class CameraConfig:
    position: Vec3
    look_at: Vec3
    up: Vec3
    fov_deg: float
    znear: float
    zfar: float
    # Per scene, uniform[-jitter, jitter] added to each axis of `position`, still aimed at
    # `look_at` (CLEVR: 0.5). The prior draws it, the scene records it (Scene.camera).
    jitter: float = 0.0

    def moved_to(self, position: Sequence[float] | None) -> CameraConfig:
        """This camera with its eye at `position` (None: where it is)."""
        if position is None:
            return self
        return replace(self, position=tuple(float(c) for c in position))


@dataclass(frozen=True)
class LightConfig:
    direction: Vec3
    ambient: float
    diffuse: float
    specular: float
    shadow: float = 0.0  # share of the diffuse light objects' cast shadows take from the table


@dataclass(frozen=True)
class GroundConfig:
    half_extent: float
    color: Vec3


LAMP_KINDS = ("area", "sun")


@dataclass(frozen=True)
class LampConfig:
    """A light for physically based renderers (Blender's Cycles, renderer/blender.py); our
    renderer ignores lamps and shades by `light`. Lamps are aimed at the camera's look-at."""

    kind: str  # "area": a square lamp at `position`; "sun": parallel light from `position`
    position: Vec3  # world coordinates (y up): where the lamp is, or where the sun is seen
    energy: float  # as Blender: an area lamp's power in watts, a sun's irradiance in W/m^2
    color: Vec3 = (1.0, 1.0, 1.0)  # linear RGB in [0, 1]
    size: float = 0.5  # an area lamp's side (world units); a sun's angular diameter (degrees)


@dataclass(frozen=True)
class LampLight:
    """One of our renderer's lamps (world.yaml `shading.lamps`): a small lamp aimed at the
    camera's look-at, as CLEVR's area lamps are. What a surface receives from it falls off
    with the square of the distance, with the cosine at the surface and with the cosine
    off the lamp's axis (an area lamp emits most along its axis)."""

    position: Vec3  # world coordinates (y up)
    intensity: float  # a white surface facing it at distance 1, on its axis, reflects this
    color: Vec3 = (1.0, 1.0, 1.0)  # linear RGB in [0, 1]
    shadow: float = 1.0  # share of its light that the objects' cast shadows take (0: none)


@dataclass(frozen=True)
class ShadingConfig:
    """Our renderer's shading under several lamps (renderer/shading.py): world.yaml
    `shading`. A world without it is shaded by `light` alone, as before. With it, `light`
    still gives the ambient term and a directional (sun) term, and adds to them:"""

    lamps: tuple[LampLight, ...] = ()  # lamps with falloff and cast shadows
    # std of the shadows' soft edge as a share of the canvas's side (0: hard edges)
    shadow_blur: float = 0.0
    # Mirror-like materials (a material's `reflect`) reflect the lit floor below the horizon
    # and `sky` above it; `horizon` is how soft that edge is (std of the reflected ray's
    # height, a unit vector's y: a rough surface blurs the reflection).
    horizon: float = 0.1
    sky: float = 0.0  # linear intensity reflected above the horizon (CLEVR: a black sky)
    floor_extent: float = 100.0  # the lit floor reaches this far from the origin (Blender's)
    # Faces that meet at less than this many degrees are shaded smooth (normals interpolated
    # across them, as Blender's shade-smooth-by-angle): round shapes look round, not
    # faceted. 0: flat, one colour per face (worlds stored before this existed).
    smooth_angle: float = 0.0


@dataclass(frozen=True)
class ToneConfig:
    """How linear intensities become stored pixel values: min(1, exposure * v) ** (1 / gamma).

    The identity (exposure 1, gamma 1) is what our renderer writes; a camera or a renderer
    that writes sRGB is close to gamma 2.2. Part of the learnable appearance (`air3d adapt`).
    """

    exposure: float = 1.0
    gamma: float = 1.0


@dataclass(frozen=True)
class WorkspaceConfig:
    x: tuple[float, float]
    z: tuple[float, float]

    @property
    def width(self) -> float:
        """Side of the workspace along x (the scale that position errors are reported in)."""
        return self.x[1] - self.x[0]

    def contains(self, x: float, z: float) -> bool:
        return self.x[0] <= x <= self.x[1] and self.z[0] <= z <= self.z[1]


@dataclass(frozen=True)
class PriorConfig:
    count_probs: tuple[float, ...]
    shape_probs: tuple[float, ...] | None
    min_separation: float
    # Centres at least r1 + r2 + min_gap apart (r: each object's footprint radius), on top
    # of min_separation; None: min_separation alone. CLEVR's rule, with gap 0.25.
    min_gap: float | None = None
    # CLEVR's second rule: any two objects differ by at least this much along both of the
    # camera's ground-plane axes (left-right and front-behind), so relations are clear.
    direction_margin: float = 0.0
    # Every object covers at least this share of the frame's pixels in a crisp render
    # (scenes are drawn again until it does: renderer/visibility.py). CLEVR: 200 of 320x240.
    min_visible: float = 0.0


# The roles an attribute can play in rendering, and what its values are:
#   color    linear RGB in [0, 1], the object's albedo (replaces the shape's own colour)
#   size     a scale factor of the shape's mesh (and height)
#   material a mapping of {albedo: factor of the colour, specular: strength,
#            shininess: Phong exponent}, optionally with the physically based surface
#            that Blender draws (renderer/blender.py; ours ignores it): {metallic: 0..1,
#            roughness: 0..1, sheen: 0..1}; in a world with `shading`, optionally
#            {reflect: 0..1, tint: 0..1}: how much of the floor the surface mirrors, and
#            whether the mirror image takes the object's colour (1, metal) or not (0)
ATTRIBUTE_ROLES = ("color", "size", "material")
MATERIAL_KEYS = ("albedo", "specular", "shininess")
MIRROR_KEYS = ("reflect", "tint")
PBR_KEYS = ("metallic", "roughness", "sheen")


@dataclass(frozen=True)
class Attribute:
    """A categorical attribute every object of the world carries besides its shape."""

    name: str  # one of ATTRIBUTE_ROLES
    values: tuple[str, ...]  # value names, in the order of the model's categorical
    settings: tuple[Any, ...]  # each value's rendering setting (see ATTRIBUTE_ROLES)

    def setting(self, value: str) -> Any:
        return self.settings[self.values.index(value)]


@dataclass(frozen=True)
class RenderingConfig:
    soft_sigma: float
    soft_gamma: float
    soft_faces_per_pixel: int


@dataclass(frozen=True)
class World:
    """Everything the renderer and the prior need to know about the scene (scene.yaml)."""

    image_size: int
    camera: CameraConfig
    light: LightConfig
    ground: GroundConfig
    background: Vec3
    workspace: WorkspaceConfig
    max_objects: int
    prior: PriorConfig
    pixel_sigma: float
    rendering: RenderingConfig
    tone: ToneConfig = ToneConfig()  # absent from older configs and checkpoints: identity
    # Categorical attributes besides the shape; () in a world whose shapes carry their look.
    attributes: tuple[Attribute, ...] = ()
    # (width, height) of the world's real images when they are not square: the square
    # image_size canvas holds the frame letterboxed (full width, centred rows); the bands
    # above and below are painted `background` in renders and in loaded images alike.
    frame: tuple[int, int] | None = None
    # Lights of physically based renderers (Blender); () there: light as `light` says.
    lamps: tuple[LampConfig, ...] = ()
    # Per image, uniform[-lamp_jitter, lamp_jitter] added to each axis of every lamp's
    # position (CLEVR: 1.0); a nuisance of the images, not a latent of the scene.
    lamp_jitter: float = 0.0
    # Our renderer's lamps, soft shadows and mirror-like materials; None: shaded by `light`
    shading: ShadingConfig | None = None
    name: str = "custom"  # the world's folder name: what `--world NAME` finds

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form: what checkpoints store and GET /shapes returns."""
        data = asdict(self)
        if self.shading is None:  # older worlds' plain form unchanged
            del data["shading"]
        data["likelihood"] = {"pixel_sigma": data.pop("pixel_sigma")}
        data["attributes"] = {
            a.name: {v: _plain(a.name, x) for v, x in zip(a.values, a.settings, strict=True)}
            for a in self.attributes
        }
        return data

    def model_facing(self) -> World:
        """The world without what only physically based renderers read (lamps; materials'
        metallic, roughness, sheen): all that our renderer and the model depend on, e.g. to
        tell whether a checkpoint was trained in this world."""
        attributes = tuple(
            replace(a, settings=tuple(_ours(a.name, x) for x in a.settings))
            for a in self.attributes
        )
        return replace(self, lamps=(), attributes=attributes)

    def unshadowed(self) -> World:
        """The world without cast shadows (neither the sun's nor the lamps'): e.g. to tell
        the objects' own pixels from the floor."""
        shading = self.shading
        if shading is not None:
            lamps = tuple(replace(lamp, shadow=0.0) for lamp in shading.lamps)
            shading = replace(shading, lamps=lamps)
        return replace(self, light=replace(self.light, shadow=0.0), shading=shading)

    def attribute(self, name: str) -> Attribute | None:
        return next((a for a in self.attributes if a.name == name), None)

    @property
    def frame_rows(self) -> tuple[int, int]:
        """The canvas rows [first, last) that hold the frame (all rows without a frame)."""
        if self.frame is None:
            return 0, self.image_size
        width, height = self.frame
        rows = round(self.image_size * height / width)
        first = (self.image_size - rows) // 2
        return first, first + rows

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> World:
        if not isinstance(data, dict):
            kind = type(data).__name__
            raise ValueError(f"scene config must be a mapping of sections, got {kind}")
        try:
            world = cls(
                image_size=int(data["image_size"]),
                camera=CameraConfig(**_tuples(data["camera"])),
                light=LightConfig(**_tuples(data["light"])),
                ground=GroundConfig(**_tuples(data["ground"])),
                background=tuple(data["background"]),
                workspace=WorkspaceConfig(**_tuples(data["workspace"])),
                max_objects=int(data["max_objects"]),
                prior=PriorConfig(**_tuples(data["prior"])),
                pixel_sigma=float(data["likelihood"]["pixel_sigma"]),
                rendering=RenderingConfig(**data["rendering"]),
                tone=ToneConfig(**data.get("tone", {})),
                attributes=_attributes(data.get("attributes") or {}),
                frame=None if data.get("frame") is None else tuple(data["frame"]),
                lamps=_lamps(data.get("lamps") or ()),
                lamp_jitter=float(data.get("lamp_jitter", 0.0)),
                shading=_shading(data.get("shading")),
                name=str(data.get("name", "custom")),
            )
        except (KeyError, TypeError) as error:
            raise ValueError(f"invalid scene config: {error!r}") from error
        _check(world)
        return world


def _attributes(section: Any) -> tuple[Attribute, ...]:
    """The config's `attributes` mapping {role: {value name: setting}} in config order."""
    if not isinstance(section, dict):
        raise ValueError("attributes must map each attribute to {value: setting}")
    out = []
    for name, values in section.items():
        if name not in ATTRIBUTE_ROLES:
            known = ", ".join(ATTRIBUTE_ROLES)
            raise ValueError(f"attributes.{name}: unknown attribute; known: {known}")
        if not isinstance(values, dict) or not values:
            raise ValueError(f"attributes.{name}: must map value names to settings")
        settings = tuple(_setting(name, v, values[v]) for v in values)
        out.append(Attribute(name, tuple(str(v) for v in values), settings))
    return tuple(out)


def _lamps(section: Any) -> tuple[LampConfig, ...]:
    """The config's `lamps` list, each {kind, position, energy, color, size}."""
    if not isinstance(section, list | tuple):
        raise ValueError("lamps must be a list of {kind, position, energy, color, size}")
    lamps = []
    for i, entry in enumerate(section):
        if not isinstance(entry, dict):
            raise ValueError(f"lamps[{i}]: must be a mapping {{kind, position, energy, ...}}")
        lamp = LampConfig(**_tuples(entry))
        if lamp.kind not in LAMP_KINDS:
            raise ValueError(f"lamps[{i}].kind: {lamp.kind!r}; known: {', '.join(LAMP_KINDS)}")
        if len(lamp.position) != 3 or len(lamp.color) != 3:
            raise ValueError(f"lamps[{i}]: position and color are 3 numbers each")
        if not (lamp.energy >= 0 and lamp.size > 0):
            raise ValueError(f"lamps[{i}]: energy must be >= 0 and size > 0, got {lamp}")
        if not all(0.0 <= float(c) <= 1.0 for c in lamp.color):
            raise ValueError(f"lamps[{i}].color: channels must be in [0, 1], got {lamp.color}")
        lamps.append(lamp)
    return tuple(lamps)


def _shading(section: Any) -> ShadingConfig | None:
    """The config's `shading` mapping: lamps (each {position, intensity, color, shadow}) and
    the ShadingConfig's numbers; None (absent): shaded by `light` alone."""
    if section is None:
        return None
    if not isinstance(section, dict):
        raise ValueError("shading must be a mapping {lamps: [...], shadow_blur, horizon, ...}")
    lamps = []
    for i, entry in enumerate(section.get("lamps") or ()):
        if not isinstance(entry, dict):
            raise ValueError(f"shading.lamps[{i}]: must be a mapping {{position, intensity, ...}}")
        lamp = LampLight(**_tuples(entry))
        if len(lamp.position) != 3 or len(lamp.color) != 3:
            raise ValueError(f"shading.lamps[{i}]: position and color are 3 numbers each")
        if not (lamp.intensity >= 0 and 0.0 <= lamp.shadow <= 1.0):
            raise ValueError(f"shading.lamps[{i}]: intensity >= 0, shadow in [0, 1]; got {lamp}")
        if not all(0.0 <= float(c) <= 1.0 for c in lamp.color):
            raise ValueError(f"shading.lamps[{i}].color: channels in [0, 1], got {lamp.color}")
        lamps.append(lamp)
    shading = ShadingConfig(**{**section, "lamps": tuple(lamps)})
    if not (0 <= shading.shadow_blur < 0.5 and shading.horizon > 0 and shading.sky >= 0):
        raise ValueError(f"shading: shadow_blur in [0, 0.5), sky >= 0, horizon > 0; got {shading}")
    if not 0 <= shading.smooth_angle < 90:
        raise ValueError(f"shading.smooth_angle: degrees in [0, 90), got {shading.smooth_angle}")
    return shading


def _setting(name: str, value: str, setting: Any) -> Any:
    where = f"attributes.{name}.{value}"
    if name == "color":
        if not (isinstance(setting, list | tuple) and len(setting) == 3):
            raise ValueError(f"{where}: a colour is [r, g, b] in [0, 1]")
        if not all(0.0 <= float(c) <= 1.0 for c in setting):
            raise ValueError(f"{where}: colour channels must be in [0, 1], got {setting}")
        return tuple(float(c) for c in setting)
    if name == "size":
        if isinstance(setting, bool) or not isinstance(setting, int | float) or setting <= 0:
            raise ValueError(f"{where}: a size is a scale factor > 0, got {setting!r}")
        return float(setting)
    if not isinstance(setting, dict) or set(setting) - {*MATERIAL_KEYS, *PBR_KEYS, *MIRROR_KEYS}:
        keys = ", ".join((*MATERIAL_KEYS, *PBR_KEYS, *MIRROR_KEYS))
        raise ValueError(f"{where}: a material is {{{keys}}} (the last five optional)")
    for key in (*PBR_KEYS, *MIRROR_KEYS):
        if key in setting and not 0.0 <= float(setting[key]) <= 1.0:
            raise ValueError(f"{where}.{key}: must be in [0, 1], got {setting[key]!r}")
    return (
        ("albedo", float(setting.get("albedo", 1.0))),
        ("specular", float(setting.get("specular", 0.0))),
        ("shininess", float(setting.get("shininess", 1.0))),
        # only those given, so worlds without them keep their plain form (to_dict)
        *((key, float(setting[key])) for key in (*PBR_KEYS, *MIRROR_KEYS) if key in setting),
    )


def _ours(name: str, setting: Any) -> Any:
    """A setting without the keys only physically based renderers read."""
    if name != "material":
        return setting
    return tuple((key, value) for key, value in setting if key not in PBR_KEYS)


def _plain(name: str, setting: Any) -> Any:
    """A parsed setting back to config form."""
    if name == "material":
        return dict(setting)
    return list(setting) if isinstance(setting, tuple) else setting


def _tuples(section: dict[str, Any]) -> dict[str, Any]:
    return {
        key: tuple(value) if isinstance(value, list) else value for key, value in section.items()
    }


def _check(world: World) -> None:
    if len(world.prior.count_probs) != world.max_objects + 1:
        raise ValueError(
            f"prior.count_probs has {len(world.prior.count_probs)} entries; "
            f"max_objects={world.max_objects} needs {world.max_objects + 1}"
        )
    for name in ("count_probs", "shape_probs"):
        probs = getattr(world.prior, name)
        if probs is None:
            continue
        if min(probs, default=0.0) < 0 or not math.isclose(sum(probs), 1.0, abs_tol=1e-6):
            raise ValueError(f"prior.{name} must be >= 0 and sum to 1, got {list(probs)}")
    for axis in ("x", "z"):
        low, high = getattr(world.workspace, axis)
        if not low < high:
            raise ValueError(f"workspace.{axis} must be [low, high], low < high; got {[low, high]}")
    if not world.pixel_sigma > 0:
        raise ValueError(f"likelihood.pixel_sigma must be > 0, got {world.pixel_sigma}")
    if not (world.tone.exposure > 0 and world.tone.gamma > 0):
        raise ValueError(f"tone.exposure and tone.gamma must be > 0, got {world.tone}")
    if world.frame is not None and not (
        len(world.frame) == 2 and min(world.frame) > 0 and world.frame[1] <= world.frame[0]
    ):
        raise ValueError(
            f"frame must be [width, height] with 0 < height <= width, got {world.frame}"
        )
    if not (world.camera.jitter >= 0 and world.lamp_jitter >= 0):
        raise ValueError(
            f"camera.jitter and lamp_jitter must be >= 0, got "
            f"{world.camera.jitter} and {world.lamp_jitter}"
        )
    if world.image_size < 8:
        raise ValueError(f"image_size must be at least 8, got {world.image_size}")


def load_world(path: str | Path | None = None) -> World:
    """Reads a world config file (default: the shipped tabletop world's world.yaml)."""
    path = Path(path) if path is not None else DEFAULT_WORLD_PATH
    with open(path) as file:
        data = yaml.safe_load(file)
    if isinstance(data, dict) and "name" not in data and path.name == "world.yaml":
        data = {**data, "name": path.parent.name}
    return World.from_dict(data)


def with_max_objects(world: World, max_objects: int) -> World:
    """The world with room for at least max_objects (extra counts get prior probability 0):
    for reading data sets, e.g. generalisation sets, that hold more objects than the prior."""
    if max_objects <= world.max_objects:
        return world
    probs = tuple(world.prior.count_probs) + (0.0,) * (max_objects - world.max_objects)
    return replace(world, max_objects=max_objects, prior=replace(world.prior, count_probs=probs))
