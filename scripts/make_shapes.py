"""Make the shape library's meshes reproducibly with trimesh.

Run from the repository root:  python scripts/make_shapes.py [tabletop|clevr]
It (re)writes assets/worlds/WORLD/shapes/*.obj. Meshes are low-poly on purpose: PyTorch3D's
CPU rasteriser tests every pixel against every face. Each mesh is centred on its
bounding box centre, so an object rests on the ground when its centre is at
height = half its height (the manifest's `height`).
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import trimesh

WORLDS_DIR = Path(__file__).resolve().parents[1] / "assets" / "worlds"
SECTIONS = 12  # facets around round shapes: enough to read as round at 64x64
CLEVR_SECTIONS = 16  # CLEVR's objects are larger on screen (up to ~20 pixels at 96x72)
CLEVR_RADIUS = 0.7  # CLEVR's meshes have half-extent 1 scaled by r (large: 0.7)
# CLEVR's cube and cylinder (SmoothCube_v2, SmoothCylinder) have rounded edges, and
# renderer/blender.py rounds sharp edges by this share of the height (its BEVEL): ours too,
# so that our renderer draws the highlights along them that Blender's images show.
CLEVR_BEVEL = 0.05


def make_meshes(world: str = "tabletop") -> dict[str, trimesh.Trimesh]:
    """Takes a world's name to its library's meshes, each centred at its bounding-box centre."""
    meshes = (
        _clevr()
        if world == "clevr"
        else {
            "cube": trimesh.creation.box(extents=(0.6, 0.6, 0.6)),
            "sphere": trimesh.creation.icosphere(subdivisions=1, radius=0.35),
            # trimesh builds round shapes along z; the world is y-up, so turn them upright.
            "cylinder": trimesh.creation.cylinder(radius=0.3, height=0.6, sections=SECTIONS),
            "cone": trimesh.creation.cone(radius=0.3, height=0.6, sections=SECTIONS),
        }
    )
    z_to_y = trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0])
    for name in ("cylinder", "cone"):
        if name in meshes:
            meshes[name].apply_transform(z_to_y)
    for mesh in meshes.values():
        mesh.apply_translation(-mesh.bounds.mean(axis=0))
    return meshes


def _clevr() -> dict[str, trimesh.Trimesh]:
    """CLEVR's three shapes at its large size (size attributes scale them): each has
    half-extent r. The cube is full size, side 2 r: CLEVR's generator means to shrink cubes
    by sqrt(2), but its test compares the name 'Cube' with the mesh's 'SmoothCube_v2' and
    never fires, so CLEVR's images and scene files hold full-size cubes."""
    r = CLEVR_RADIUS
    bevel = CLEVR_BEVEL * 2 * r
    return {
        "cube": _rounded_box(r, bevel),
        "sphere": trimesh.creation.icosphere(subdivisions=2, radius=r),
        "cylinder": _rounded_cylinder(r, bevel),
    }


def _rounded_box(half: float, bevel: float) -> trimesh.Trimesh:
    """A cube of half-extent `half` whose edges and corners are rounded by `bevel`: the
    convex hull of a small sphere in each corner."""
    ball = trimesh.creation.icosphere(subdivisions=2, radius=bevel).vertices
    corners = np.array(list(itertools.product((-1.0, 1.0), repeat=3))) * (half - bevel)
    return trimesh.convex.convex_hull(np.concatenate([c + ball for c in corners]))


def _rounded_cylinder(radius: float, bevel: float) -> trimesh.Trimesh:
    """A cylinder along z (radius, height 2 radius) whose rims are rounded by `bevel`: the
    convex hull of quarter circles of that radius swept round both rims."""
    points = []
    for turn in np.linspace(0.0, 2 * np.pi, CLEVR_SECTIONS, endpoint=False):
        for bend in np.linspace(0.0, np.pi / 2, 5):
            out = radius - bevel + bevel * np.cos(bend)
            for side in (-1.0, 1.0):
                height = side * (radius - bevel + bevel * np.sin(bend))
                points.append((out * np.cos(turn), out * np.sin(turn), height))
    return trimesh.convex.convex_hull(np.array(points))


def main() -> None:
    world = sys.argv[1] if len(sys.argv) > 1 else "tabletop"
    shapes_dir = WORLDS_DIR / world / "shapes"
    shapes_dir.mkdir(parents=True, exist_ok=True)
    for name, mesh in make_meshes(world).items():
        path = shapes_dir / f"{name}.obj"
        path.write_text(trimesh.exchange.obj.export_obj(mesh, include_normals=False))
        print(f"{path.name}: {len(mesh.faces)} faces, extents {np.round(mesh.extents, 3)}")


if __name__ == "__main__":
    main()
