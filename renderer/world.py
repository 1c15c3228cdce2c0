"""The world config: camera, light, ground, workspace, prior, likelihood (assets/scene.yaml)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from air3d.assets import ASSETS_DIR

DEFAULT_WORLD_PATH = ASSETS_DIR / "scene.yaml"

Vec3 = tuple[float, float, float]


@dataclass(frozen=True)
class CameraConfig:
    position: Vec3
    look_at: Vec3
    up: Vec3
    fov_deg: float
    znear: float
    zfar: float


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

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form: what checkpoints store and GET /shapes returns."""
        data = asdict(self)
        data["likelihood"] = {"pixel_sigma": data.pop("pixel_sigma")}
        return data

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
            )
        except (KeyError, TypeError) as error:
            raise ValueError(f"invalid scene config: {error!r}") from error
        _check(world)
        return world


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
    if world.image_size < 8:
        raise ValueError(f"image_size must be at least 8, got {world.image_size}")


def load_world(path: str | Path | None = None) -> World:
    """Reads a scene config (default: the shipped assets/scene.yaml)."""
    path = Path(path) if path is not None else DEFAULT_WORLD_PATH
    with open(path) as file:
        return World.from_dict(yaml.safe_load(file))


def with_max_objects(world: World, max_objects: int) -> World:
    """The world with room for at least max_objects (extra counts get prior probability 0):
    for reading data sets, e.g. generalisation sets, that hold more objects than the prior."""
    if max_objects <= world.max_objects:
        return world
    probs = tuple(world.prior.count_probs) + (0.0,) * (max_objects - world.max_objects)
    return replace(world, max_objects=max_objects, prior=replace(world.prior, count_probs=probs))
