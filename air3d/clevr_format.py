"""CLEVR's ground-truth scenes JSON (Johnson et al. 2017, clevr-dataset-gen), read and written.

One file per set: {"info": {...}, "scenes": [scene, ...]}, each scene
    {"image_index": i, "image_filename": "...", "split": "...", "objects": [object, ...]}
and each object
    {"shape": "cube", "color": ..., "size": ..., "material": ...,
     "3d_coords": [X, Y, Z], "rotation": degrees, "pixel_coords": [column, row, depth]}.
The attributes are the world's (`World.attributes`): the clevr world writes and reads
"color", "size" and "material" with CLEVR's value names; attributes a world lacks (the
tabletop world has none: a shape's colour is part of the shape) are omitted when writing,
not invented, and ignored when reading. CLEVR's "directions" and "relationships" (derived
from the camera) are not written; readers here do not need them. A scene seen from its own
camera (Scene.camera: CLEVR's jittered one) records it as "camera_location" [X, Y, Z],
which reading restores; `pixel_coords` follow that camera.

Coordinates. CLEVR is z-up with the ground at Z = 0; ours is y-up with the ground at y = 0
and +z towards the camera. The mapping is the rotation by +90 degrees about x:
    CLEVR (X, Y, Z) = ours (x, -z, y);   ours (x, y, z) = CLEVR (X, Z, -Y).
It is a proper rotation (no mirror), so a right-handed turn about our +y is a right-handed
turn about CLEVR's +Z: `rotation` (CLEVR's theta, counter-clockwise seen from above) equals
our `yaw_deg`. `pixel_coords` are integer column and row of the centre's projection in the
world's image (top-left origin, as CLEVR) and its depth along the camera's viewing axis.
The image is the world's frame where it has one (CLEVR's 320 x 240, which the model's
square canvas holds letterboxed: air3d/images.py), else the square canvas.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from air3d.renderer import Scene, ShapeLibrary, World
from air3d.renderer.camera import project, projection_matrix, to_pixels
from air3d.renderer.world import with_max_objects

Vec3 = tuple[float, float, float]


def to_clevr_coords(position: Sequence[float]) -> list[float]:
    """Our (x, y, z), y up, to CLEVR's [X, Y, Z], z up."""
    x, y, z = position
    return [x, -z, y]


def from_clevr_coords(coords: Sequence[float]) -> Vec3:
    """CLEVR's [X, Y, Z], z up, to our (x, y, z), y up."""
    X, Y, Z = coords
    return (float(X), float(Z), float(-Y))


def pixel_coords(positions: Sequence[Vec3], world: World) -> list[list[float]]:
    """[column, row, depth] of each point as CLEVR writes them: integer pixel of the
    projection (top-left origin) in the world's frame (the canvas without one) and distance
    along the camera's viewing axis."""
    if not positions:
        return []
    points = torch.tensor(positions, dtype=torch.float32)
    pixels = frame_pixels(
        to_pixels(project(points, projection_matrix(world)), world.image_size), world
    )
    eye = torch.tensor(world.camera.position)
    axis = torch.tensor(world.camera.look_at) - eye
    depth = (points - eye) @ (axis / axis.norm())
    return [
        [math.floor(col), math.floor(row), d]
        for (col, row), d in zip(pixels.tolist(), depth.tolist(), strict=True)
    ]


def frame_pixels(canvas: torch.Tensor, world: World) -> torch.Tensor:
    """(column, row) pixels (..., 2) of the square canvas to pixels of the world's frame:
    the canvas's width spans the frame's width, its rows [first, last) the frame's height.
    Unchanged in a world without a frame."""
    if world.frame is None:
        return canvas
    width, height = world.frame
    first, last = world.frame_rows
    column = canvas[..., 0] * width / world.image_size
    row = (canvas[..., 1] - first) * height / (last - first)
    return torch.stack([column, row], dim=-1)


def scene_to_clevr(
    scene: Scene,
    image_filename: str,
    image_index: int,
    world: World,
    split: str = "air3d",
    extra: Sequence[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One CLEVR scene record. `extra`: per-object keys to add (e.g. a model's presence)."""
    seen = replace(world, camera=world.camera.moved_to(scene.camera))
    pixels = pixel_coords([obj.position for obj in scene.objects], seen)
    objects = [
        {
            "shape": obj.shape,
            **dict(obj.attributes),  # the world's, in its order: color, size, material
            "3d_coords": to_clevr_coords(obj.position),
            "rotation": obj.yaw_deg,
            "pixel_coords": pixel,
            **(extra[i] if extra is not None else {}),
        }
        for i, (obj, pixel) in enumerate(zip(scene.objects, pixels, strict=True))
    ]
    camera = {} if scene.camera is None else {"camera_location": to_clevr_coords(scene.camera)}
    return {
        "image_index": image_index,
        "image_filename": image_filename,
        "split": split,
        "objects": objects,
        **camera,
    }


def clevr_document(scenes: Sequence[dict[str, Any]], **info: Any) -> dict[str, Any]:
    """The whole file: {"info": {...}, "scenes": [...]}."""
    return {"info": {"generator": "air3d", "coordinates": "CLEVR, z up", **info}, "scenes": scenes}


def scene_from_clevr(record: Any, world: World, shapes: ShapeLibrary, where: str) -> Scene:
    """Our Scene of one CLEVR scene record: the world's attributes are read (and must be
    values it knows), the others ignored; ValueError naming the field otherwise."""
    if not isinstance(record, dict) or not isinstance(record.get("objects"), list):
        raise ValueError(f'{where}: a CLEVR scene needs a list "objects"')
    objects = []
    for i, obj in enumerate(record["objects"]):
        if not isinstance(obj, dict) or "3d_coords" not in obj or "shape" not in obj:
            raise ValueError(f'{where}.objects[{i}]: needs "shape" and "3d_coords"')
        coords = obj["3d_coords"]
        if not isinstance(coords, list) or len(coords) != 3:
            raise ValueError(f"{where}.objects[{i}].3d_coords: must be [X, Y, Z]")
        objects.append(
            {
                **{name: obj.get(name) for name, _ in shapes.factors[1:]},
                "shape": obj["shape"],
                "position": list(from_clevr_coords(coords)),
                "yaw_deg": obj.get("rotation", 0.0),
            }
        )
    camera = record.get("camera_location")
    if camera is not None:
        if not isinstance(camera, list) or len(camera) != 3:
            raise ValueError(f"{where}.camera_location: must be [X, Y, Z]")
        camera = {"camera": {"position": list(from_clevr_coords(camera))}}
    roomy = with_max_objects(world, len(objects))  # data sets may hold more than the prior
    try:
        return Scene.from_json({"objects": objects, **(camera or {})}, roomy, shapes)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None


def read_clevr(path: str | Path, world: World, shapes: ShapeLibrary) -> list[tuple[str, Scene]]:
    """(image_filename, Scene) of every scene of a CLEVR scenes JSON, in file order."""
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not JSON: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get("scenes"), list):
        raise ValueError(f'{path}: a CLEVR scenes file needs a list "scenes"')
    out = []
    for i, record in enumerate(document["scenes"]):
        where = f"{path}: scenes[{i}]"
        if not isinstance(record, dict) or not isinstance(record.get("image_filename"), str):
            raise ValueError(f"{where}.image_filename: missing")
        out.append((record["image_filename"], scene_from_clevr(record, world, shapes, where)))
    return out


def write_clevr(path: str | Path, document: dict[str, Any]) -> None:
    """Writes the document atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(document, allow_nan=False) + "\n")
    os.replace(tmp, path)
