"""The scene contract: one typed structure, JSON in and out, and its batched tensor form.

JSON form (what `POST /infer` returns and `/render`, `air3d render` and `air3d rerender`
accept):  {"objects": [{"shape": "cube", "position": [x, y, z], "yaw_deg": 30.0}, ...]}
In a world with attributes each object also names its value of each, e.g.
{"shape": "cube", "color": "red", "size": "large", "material": "metal", ...}.
Positions are world coordinates of the object's centre, y up. Objects rest on the
ground, so y follows from the shape: on input it is checked for being a finite number and
then replaced by the resting height. Extra keys (`presence`, `shape_probs`, `count`, ...)
are accepted and ignored.

A scene may carry the camera it is seen from: {"camera": {"position": [x, y, z]}, ...}, the
eye in world coordinates, aimed at the world camera's look-at with its up and field of view
(a world with camera jitter, CLEVR's, moves it per scene). Absent: the world's camera.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from air3d.renderer.shapes import ShapeLibrary
from air3d.renderer.world import World


@dataclass(frozen=True)
class SceneObject:
    shape: str
    position: tuple[float, float, float]  # world coordinates of the centre
    yaw_deg: float  # rotation about the vertical (y) axis, degrees, counter-clockwise from above
    attributes: tuple[tuple[str, str], ...] = ()  # (("color", "red"), ...): the world's order

    def to_json(self) -> dict[str, Any]:
        return {
            "shape": self.shape,
            **dict(self.attributes),
            "position": list(self.position),
            "yaw_deg": self.yaw_deg,
        }


@dataclass(frozen=True)
class Scene:
    objects: tuple[SceneObject, ...] = ()
    camera: tuple[float, float, float] | None = None  # the eye's position; None: the world's

    def to_json(self) -> dict[str, Any]:
        camera = {} if self.camera is None else {"camera": {"position": list(self.camera)}}
        return {"objects": [obj.to_json() for obj in self.objects], **camera}

    @classmethod
    def from_json(cls, data: Any, world: World, shapes: ShapeLibrary) -> Scene:
        """Validates and builds a scene; ValueError naming the offending field otherwise."""
        if not isinstance(data, dict) or not isinstance(data.get("objects"), list):
            raise ValueError('scene must be a JSON object with a list "objects"')
        items = data["objects"]
        if len(items) > world.max_objects:
            raise ValueError(
                f"objects: {len(items)} objects; at most max_objects={world.max_objects}"
            )
        objects = tuple(_object(i, item, world, shapes) for i, item in enumerate(items))
        camera = data.get("camera")
        return cls(objects, None if camera is None else _camera(camera, world))


def camera_bounds(world: World) -> tuple[tuple[float, float], ...]:
    """Where a scene's camera may stand: per axis (x, y, z) the [low, high] of its eye.
    Within zfar / 2 of the look-at on each axis (so the look-at is inside the far plane),
    and more than znear above it (y > low: the camera looks down on the ground, from
    farther than the near plane)."""
    cam = world.camera
    reach = cam.zfar / 2
    bounds = [(c - reach, c + reach) for c in cam.look_at]
    bounds[1] = (cam.look_at[1] + cam.znear, cam.look_at[1] + reach)
    return tuple(bounds)


def _camera(item: Any, world: World) -> tuple[float, float, float]:
    """The scene's eye position from {"position": [x, y, z]}, inside camera_bounds."""
    if not isinstance(item, dict) or "position" not in item:
        raise ValueError('camera: must be a JSON object {"position": [x, y, z]}')
    position = item["position"]
    if not isinstance(position, list | tuple) or len(position) != 3:
        raise ValueError("camera.position: must be a list of 3 numbers [x, y, z]")
    eye = tuple(_finite(f"camera.position[{k}]", value) for k, value in enumerate(position))
    for k, (value, (low, high)) in enumerate(zip(eye, camera_bounds(world), strict=True)):
        if not (low < value <= high if k == 1 else low <= value <= high):
            interval = f"({low:g}, {high:g}]" if k == 1 else f"[{low:g}, {high:g}]"
            raise ValueError(
                f"camera.position[{k}]: {value:g} is outside {interval} (within zfar/2 of the "
                "look-at, and more than znear above it)"
            )
    return eye  # type: ignore[return-value]


def _object(i: int, item: Any, world: World, shapes: ShapeLibrary) -> SceneObject:
    where = f"objects[{i}]"
    if not isinstance(item, dict):
        raise ValueError(f"{where}: must be a JSON object with shape, position, yaw_deg")
    for key in ("shape", "position", "yaw_deg"):
        if key not in item:
            raise ValueError(f"{where}.{key}: missing")
    name = item["shape"]
    if not isinstance(name, str) or name not in shapes.names:
        raise ValueError(f"{where}.shape: unknown shape {name!r}; known: {', '.join(shapes.names)}")
    attributes = {attribute: item.get(attribute) for attribute, _ in shapes.factors[1:]}
    try:
        spec = shapes.spec(name, attributes)
    except ValueError as error:
        raise ValueError(f"{where}.{error}") from None
    position = item["position"]
    if not isinstance(position, list | tuple) or len(position) != 3:
        raise ValueError(f"{where}.position: must be a list of 3 numbers [x, y, z]")
    x, y, z = (_finite(f"{where}.position[{k}]", value) for k, value in enumerate(position))
    yaw = _finite(f"{where}.yaw_deg", item["yaw_deg"])
    ws = world.workspace
    if not ws.contains(x, z):
        raise ValueError(
            f"{where}.position: (x={x:g}, z={z:g}) is outside the workspace "
            f"x in [{ws.x[0]:g}, {ws.x[1]:g}], z in [{ws.z[0]:g}, {ws.z[1]:g}]"
        )
    return SceneObject(name, (x, spec.height / 2, z), yaw, spec.attributes)


def _finite(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{field}: must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{field}: must be finite, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class SceneBatch:
    """B scenes padded to N object slots: the renderer's and the model's common currency.

    shape:   (B, N) long, the object's kind: index into the library's specs (a shape with
             one value of each of the world's attributes); 0 in empty slots
    present: (B, N) bool, whether the slot holds an object; False in empty slots
    xz:      (B, N, 2) float, ground-plane position (x, z) of the centre; 0 in empty slots
    yaw:     (B, N) float, radians about the vertical axis; 0 in empty slots
    eye:     (B, 3) float, each scene's camera position (Scene.camera), or None: every
             scene is seen from the world's camera
    """

    shape: torch.Tensor
    present: torch.Tensor
    xz: torch.Tensor
    yaw: torch.Tensor
    eye: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.shape.shape[0]

    def to(self, device: torch.device | str) -> SceneBatch:
        eye = None if self.eye is None else self.eye.to(device)
        return SceneBatch(
            *(t.to(device) for t in (self.shape, self.present, self.xz, self.yaw)), eye
        )

    def __getitem__(self, rows: torch.Tensor | slice) -> SceneBatch:
        """The scenes at rows (an index tensor or a slice), all slots."""
        eye = None if self.eye is None else self.eye[rows]
        return SceneBatch(self.shape[rows], self.present[rows], self.xz[rows], self.yaw[rows], eye)

    def with_present(self, present: torch.Tensor) -> SceneBatch:
        """The same slots with another presence mask (B, N)."""
        return SceneBatch(self.shape, present, self.xz, self.yaw, self.eye)

    def with_slots(
        self, shape: torch.Tensor, present: torch.Tensor, xz: torch.Tensor, yaw: torch.Tensor
    ) -> SceneBatch:
        """Other slots (B, N') seen from the same cameras."""
        return SceneBatch(shape, present, xz, yaw, self.eye)

    def append(self, rows: torch.Tensor, more: SceneBatch) -> SceneBatch:
        """M more slots per scene: more's (len(rows), M) slots at rows, empty elsewhere; the
        cameras stay this batch's."""
        mine = (self.shape, self.present, self.xz, self.yaw)
        theirs = (more.shape, more.present, more.xz, more.yaw)
        grown = (append_rows(a, rows, b) for a, b in zip(mine, theirs, strict=True))
        return self.with_slots(*grown)

    def repeat_scenes(self, times: int) -> SceneBatch:
        """Each scene `times` times in a row (B * times scenes): trials of variants."""
        fields = (self.shape, self.present, self.xz, self.yaw, self.eye)
        return SceneBatch(*(None if t is None else t.repeat_interleave(times, 0) for t in fields))

    @classmethod
    def from_scenes(
        cls,
        scenes: Sequence[Scene],
        shapes: ShapeLibrary,
        slots: int | None = None,
        eye: Sequence[float] | None = None,
    ) -> SceneBatch:
        """Scenes to tensors. `eye`: the camera position of scenes that carry none (the
        world's); needed only when some scenes carry a camera and others do not."""
        slots = max([len(s.objects) for s in scenes] + [slots or 0, 1])
        batch = len(scenes)
        shape = torch.zeros(batch, slots, dtype=torch.long)
        present = torch.zeros(batch, slots, dtype=torch.bool)
        xz = torch.zeros(batch, slots, 2)
        yaw = torch.zeros(batch, slots)
        for b, scene in enumerate(scenes):
            for n, obj in enumerate(scene.objects):
                shape[b, n] = shapes.index(obj.shape, dict(obj.attributes))
                present[b, n] = True
                xz[b, n] = torch.tensor([obj.position[0], obj.position[2]])
                yaw[b, n] = math.radians(obj.yaw_deg)
        return cls(shape, present, xz, yaw, _eyes(scenes, eye))

    def to_scenes(self, shapes: ShapeLibrary) -> list[Scene]:
        """Present slots in slot order; yaw wrapped to [0, 360)."""
        shape, present = self.shape.tolist(), self.present.tolist()
        xz, yaw = self.xz.detach().cpu().tolist(), self.yaw.detach().cpu().tolist()
        eyes = None if self.eye is None else self.eye.detach().cpu().tolist()
        scenes = []
        for b in range(len(shape)):
            objects = []
            for n in range(len(shape[b])):
                if not present[b][n]:
                    continue
                spec = shapes.specs[shape[b][n]]
                x, z = xz[b][n]
                yaw_deg = math.degrees(yaw[b][n]) % 360.0
                yaw_deg = 0.0 if yaw_deg == 360.0 else yaw_deg  # -1e-20 % 360 == 360.0
                position = (x, spec.height / 2, z)
                objects.append(SceneObject(spec.name, position, yaw_deg, spec.attributes))
            camera = None if eyes is None else tuple(eyes[b])
            scenes.append(Scene(tuple(objects), camera))
        return scenes


def _eyes(scenes: Sequence[Scene], default: Sequence[float] | None) -> torch.Tensor | None:
    """(B, 3) the scenes' camera positions, `default` where a scene has none; None when no
    scene has one."""
    if all(scene.camera is None for scene in scenes):
        return None
    if default is None and any(scene.camera is None for scene in scenes):
        raise ValueError(
            "some scenes carry a camera and others do not: pass the world camera's position "
            "as `eye` for the others"
        )
    return torch.tensor([scene.camera or tuple(default) for scene in scenes], dtype=torch.float32)


def append_rows(values: torch.Tensor, rows: torch.Tensor, more: torch.Tensor) -> torch.Tensor:
    """values (B, N, ...) with more (len(rows), M, ...) appended along dim 1 at rows, zeros
    (False) elsewhere: per-slot tensors of a SceneBatch that grows by M slots."""
    padded = values.new_zeros(values.shape[0], *more.shape[1:])
    padded[rows] = more.to(padded.device)
    return torch.cat([values, padded], 1)
