"""The shape library: meshes plus the manifest (assets/shapes/manifest.yaml)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import trimesh
import yaml

from air3d.assets import ASSETS_DIR

DEFAULT_SHAPES_DIR = ASSETS_DIR / "shapes"


@dataclass(frozen=True)
class ShapeSpec:
    """One manifest entry. `symmetry` is None for shapes that look the same at any yaw."""

    name: str
    mesh: str
    height: float
    symmetry: int | None
    color: tuple[float, float, float]


@dataclass(frozen=True)
class ShapeMesh:
    """A shape's geometry: vertices (V, 3) float32, faces (F, 3) int64, centred, y up."""

    verts: np.ndarray
    faces: np.ndarray


@dataclass(frozen=True)
class ShapeLibrary:
    specs: tuple[ShapeSpec, ...]
    meshes: tuple[ShapeMesh, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.specs)

    def __len__(self) -> int:
        return len(self.specs)

    def index(self, name: str) -> int:
        """The shape's position in the manifest; ValueError naming the known shapes otherwise."""
        try:
            return self.names.index(name)
        except ValueError:
            known = ", ".join(self.names)
            raise ValueError(f"unknown shape {name!r}; known: {known}") from None

    def spec(self, name: str) -> ShapeSpec:
        return self.specs[self.index(name)]

    def to_dict(self) -> dict[str, Any]:
        """Manifest plus geometry as plain data: checkpoints store it to rebuild the world."""
        return {
            "shapes": [asdict(spec) for spec in self.specs],
            "meshes": [
                {"verts": mesh.verts.tolist(), "faces": mesh.faces.tolist()} for mesh in self.meshes
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShapeLibrary:
        specs = tuple(_spec(entry) for entry in data["shapes"])
        meshes = tuple(
            ShapeMesh(np.asarray(m["verts"], np.float32), np.asarray(m["faces"], np.int64))
            for m in data["meshes"]
        )
        return cls(specs, meshes)


def _spec(entry: dict[str, Any]) -> ShapeSpec:
    try:
        symmetry = entry["symmetry"]
        if symmetry is not None and int(symmetry) < 1:
            raise ValueError(f"shape {entry['name']!r}: symmetry must be >= 1 or null")
        return ShapeSpec(
            name=str(entry["name"]),
            mesh=str(entry["mesh"]),
            height=float(entry["height"]),
            symmetry=None if symmetry is None else int(symmetry),
            color=tuple(float(c) for c in entry["color"]),
        )
    except KeyError as error:
        raise ValueError(f"shape manifest entry {entry!r} lacks {error}") from None


def load_shape_library(directory: str | Path | None = None) -> ShapeLibrary:
    """Reads manifest.yaml and its meshes (default: the shipped assets/shapes/)."""
    directory = Path(directory) if directory is not None else DEFAULT_SHAPES_DIR
    with open(directory / "manifest.yaml") as file:
        entries = yaml.safe_load(file)["shapes"]
    specs = tuple(_spec(entry) for entry in entries)
    if len(set(spec.name for spec in specs)) != len(specs):
        raise ValueError(f"shape names in {directory / 'manifest.yaml'} must be unique")
    meshes = []
    for spec in specs:
        if not (directory / spec.mesh).is_file():
            raise ValueError(f"shape {spec.name!r}: mesh file {directory / spec.mesh} not found")
        mesh = trimesh.load(directory / spec.mesh, force="mesh", process=False)
        verts = np.asarray(mesh.vertices, np.float32)
        verts = verts - (verts.max(0) + verts.min(0)) / 2  # centre on the bounding box
        meshes.append(ShapeMesh(verts, np.asarray(mesh.faces, np.int64)))
    return ShapeLibrary(specs, tuple(meshes))
