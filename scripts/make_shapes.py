"""Make the shape library's meshes reproducibly with trimesh.

Run from the repository root:  python scripts/make_shapes.py
It (re)writes assets/shapes/*.obj. Meshes are low-poly on purpose: PyTorch3D's
CPU rasteriser tests every pixel against every face. Each mesh is centred on its
bounding box centre, so an object rests on the ground when its centre is at
height = half its height (the manifest's `height`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh

SHAPES_DIR = Path(__file__).resolve().parents[1] / "assets" / "shapes"
SECTIONS = 12  # facets around round shapes: enough to read as round at 64x64


def make_meshes() -> dict[str, trimesh.Trimesh]:
    """Takes nothing to the library's meshes, each centred at its bounding-box centre."""
    meshes = {
        "cube": trimesh.creation.box(extents=(0.6, 0.6, 0.6)),
        "sphere": trimesh.creation.icosphere(subdivisions=1, radius=0.35),
        # trimesh builds round shapes along z; the world is y-up, so turn them upright.
        "cylinder": trimesh.creation.cylinder(radius=0.3, height=0.6, sections=SECTIONS),
        "cone": trimesh.creation.cone(radius=0.3, height=0.6, sections=SECTIONS),
    }
    z_to_y = trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0])
    for name in ("cylinder", "cone"):
        meshes[name].apply_transform(z_to_y)
    for mesh in meshes.values():
        mesh.apply_translation(-mesh.bounds.mean(axis=0))
    return meshes


def main() -> None:
    SHAPES_DIR.mkdir(parents=True, exist_ok=True)
    for name, mesh in make_meshes().items():
        path = SHAPES_DIR / f"{name}.obj"
        path.write_text(trimesh.exchange.obj.export_obj(mesh, include_normals=False))
        print(f"{path.name}: {len(mesh.faces)} faces, extents {np.round(mesh.extents, 3)}")


if __name__ == "__main__":
    main()
