"""The shape library: meshes plus the manifest (a world's shapes/manifest.yaml), and the
world's kinds of object.

A kind is a shape with one value of each of the world's attributes (colour, size,
material): `expand_kinds` makes one ShapeSpec and mesh per kind, so the renderer, the
prior and q all index kinds as they index shapes. A world without attributes has one kind
per shape, in manifest order.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import trimesh
import yaml

from air3d.assets import ASSETS_DIR
from air3d.renderer.world import World

DEFAULT_SHAPES_DIR = ASSETS_DIR / "worlds" / "tabletop" / "shapes"


@dataclass(frozen=True)
class ShapeSpec:
    """One manifest entry. `symmetry` is None for shapes that look the same at any yaw."""

    name: str
    mesh: str
    height: float
    symmetry: int | None
    color: tuple[float, float, float]
    # The kind's attribute values besides the shape, in the world's order: (("size",
    # "large"), ...); () in a world without attributes.
    attributes: tuple[tuple[str, str], ...] = ()
    specular: float = 0.0  # Phong highlight strength of the surface (0: matte)
    shininess: float = 1.0  # Phong exponent: larger is a smaller, sharper highlight
    # linear RGB share of the lit floor the surface mirrors (worlds with `shading`; 0: none)
    mirror: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def label(self) -> str:
        """The kind in words: "cube", or "large red metal cube" (attribute values first)."""
        return " ".join([*(value for _, value in self.attributes), self.name])

    def describe(self) -> dict[str, str]:
        """{"shape": name, attribute: value, ...}: the kind as scene JSON writes it."""
        return {"shape": self.name, **dict(self.attributes)}


@dataclass(frozen=True)
class ShapeMesh:
    """A shape's geometry: vertices (V, 3) float32, faces (F, 3) int64, centred, y up."""

    verts: np.ndarray
    faces: np.ndarray


@dataclass(frozen=True)
class ShapeLibrary:
    specs: tuple[ShapeSpec, ...]
    meshes: tuple[ShapeMesh, ...]

    # Derived from the specs once (the prior and SceneBatch look kinds up per object).
    @cached_property
    def names(self) -> tuple[str, ...]:
        """The shapes' names, each once, in manifest order."""
        return tuple(dict.fromkeys(spec.name for spec in self.specs))

    @property
    def labels(self) -> tuple[str, ...]:
        """Each kind in words (ShapeSpec.label), in index order."""
        return tuple(spec.label for spec in self.specs)

    @cached_property
    def factors(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """(("shape", names), (attribute, values), ...): the categorical choices a kind is
        made of, each value list in first-seen order."""
        names = [("shape", self.names)]
        for i, (attribute, _) in enumerate(self.specs[0].attributes if self.specs else ()):
            values = dict.fromkeys(spec.attributes[i][1] for spec in self.specs)
            names.append((attribute, tuple(values)))
        return tuple(names)

    @cached_property
    def bounding_radii(self) -> np.ndarray:
        """(K,) each kind's bounding sphere radius about its centre (the mesh's farthest
        vertex): a fixed property of the library, asked for on every answer's visibility."""
        return np.array([float(np.linalg.norm(mesh.verts, axis=1).max()) for mesh in self.meshes])

    @cached_property
    def apparent_radii(self) -> np.ndarray:
        """(K,) the radius of the disc as large as each kind looks on average, seen from
        all sides: by Cauchy's formula a convex body's mean projected area is a quarter of
        its surface area, so sqrt(area / 4 pi) (a sphere: its radius; a cube of side s:
        0.69 s)."""
        areas = [trimesh.Trimesh(m.verts, m.faces, process=False).area for m in self.meshes]
        return np.sqrt(np.array(areas) / (4 * np.pi))

    def factor_index(self) -> np.ndarray:
        """(K, A) int: each kind's value index in each factor (shape first)."""
        factors = self.factors
        rows = []
        for spec in self.specs:
            values = [spec.name, *(value for _, value in spec.attributes)]
            rows.append([factors[a][1].index(v) for a, v in enumerate(values)])
        return np.asarray(rows, np.int64).reshape(len(self.specs), len(factors))

    def swaps(self) -> list[np.ndarray]:
        """Per factor a, (K, values of a) int: the kind that kind k becomes with factor a
        set to each of its values, the others kept (what a sweep over one attribute tries)."""
        index = self.factor_index()
        kind_of = {tuple(row): k for k, row in enumerate(index.tolist())}
        out = []
        for a, (_, values) in enumerate(self.factors):
            table = np.empty((len(self.specs), len(values)), np.int64)
            for k, row in enumerate(index.tolist()):
                for v in range(len(values)):
                    table[k, v] = kind_of[(*row[:a], v, *row[a + 1 :])]
            out.append(table)
        return out

    def __len__(self) -> int:
        return len(self.specs)

    def index(self, name: str, attributes: Mapping[str, str] | None = None) -> int:
        """The kind of shape `name` with these attribute values (each attribute the world
        has); ValueError naming the known values otherwise."""
        if name not in self.names:
            raise ValueError(f"unknown shape {name!r}; known: {', '.join(self.names)}")
        attributes = attributes or {}
        for attribute, values in self.factors[1:]:
            value = attributes.get(attribute)
            if value not in values:
                what = "missing" if value is None else f"unknown {attribute} {value!r}"
                raise ValueError(f"{attribute}: {what}; known: {', '.join(values)}")
        wanted = (name, *(attributes[a] for a, _ in self.factors[1:]))
        if wanted not in self._kinds:
            raise ValueError(f"no kind {' '.join(map(str, wanted))!r} in the library")
        return self._kinds[wanted]

    @cached_property
    def _kinds(self) -> dict[tuple[str, ...], int]:
        """(shape, value, ...) -> kind index."""
        return {
            (spec.name, *(value for _, value in spec.attributes)): k
            for k, spec in enumerate(self.specs)
        }

    def spec(self, name: str, attributes: Mapping[str, str] | None = None) -> ShapeSpec:
        return self.specs[self.index(name, attributes)]

    def to_dict(self) -> dict[str, Any]:
        """Manifest plus geometry as plain data: checkpoints store it to rebuild the world."""
        return {
            "shapes": [_plain_spec(spec) for spec in self.specs],
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


def _plain_spec(spec: ShapeSpec) -> dict[str, Any]:
    """A spec as plain data; without `mirror` where it has none (older libraries' form)."""
    data = asdict(spec)
    if not any(spec.mirror):
        del data["mirror"]
    return data


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
            attributes=tuple((str(a), str(v)) for a, v in entry.get("attributes", ())),
            specular=float(entry.get("specular", 0.0)),
            shininess=float(entry.get("shininess", 1.0)),
            mirror=tuple(float(c) for c in entry.get("mirror", (0.0, 0.0, 0.0))),
        )
    except KeyError as error:
        raise ValueError(f"shape manifest entry {entry!r} lacks {error}") from None


def load_shape_library(directory: str | Path | None = None) -> ShapeLibrary:
    """Reads manifest.yaml and its meshes (default: the shipped tabletop world's shapes/).
    These are the shapes; `expand_kinds` makes the world's kinds of them."""
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


def expand_kinds(shapes: ShapeLibrary, world: World) -> ShapeLibrary:
    """One spec and mesh per kind: each shape with each combination of the world's
    attribute values (the last attribute varies fastest, the shape slowest). Sizes scale
    the mesh and height; a colour replaces the shape's; a material scales the colour and
    sets the highlight. Without attributes: the shapes, with the world's specular light."""
    attributes = world.attributes
    specs, meshes = [], []
    for spec, mesh in zip(shapes.specs, shapes.meshes, strict=True):
        for values in itertools.product(*(a.values for a in attributes)):
            chosen = {a.name: a.setting(v) for a, v in zip(attributes, values, strict=True)}
            scale = chosen.get("size", 1.0)
            material = dict(chosen.get("material", ()))
            raw = np.asarray(chosen.get("color", spec.color))
            color = raw * material.get("albedo", 1.0)
            tint = material.get("tint", 0.0)  # 1: the mirror image in the object's colour
            mirror = material.get("reflect", 0.0) * (tint * raw + (1.0 - tint))
            specs.append(
                replace(
                    spec,
                    height=spec.height * scale,
                    color=tuple(float(c) for c in np.clip(color, 0.0, 1.0)),
                    attributes=tuple((a.name, v) for a, v in zip(attributes, values, strict=True)),
                    specular=material.get("specular", world.light.specular),
                    shininess=material.get("shininess", 1.0),
                    mirror=tuple(float(c) for c in np.clip(mirror, 0.0, 1.0)),
                )
            )
            meshes.append(ShapeMesh((mesh.verts * scale).astype(np.float32), mesh.faces))
    return ShapeLibrary(tuple(specs), tuple(meshes))


def footprint_radius(mesh: ShapeMesh) -> float:
    """Half the larger of the mesh's extents along x and z: its radius on the ground."""
    extent = mesh.verts[:, [0, 2]].max(0) - mesh.verts[:, [0, 2]].min(0)
    return float(extent.max() / 2)
