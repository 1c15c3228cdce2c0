"""The shape library: the shipped manifest and meshes, adding a shape, broken manifests."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
import yaml

from air3d.renderer import (
    Scene,
    SceneRenderer,
    ShapeLibrary,
    World,
    load_shape_library,
)
from air3d.renderer.shapes import DEFAULT_SHAPES_DIR, footprint_radius


def test_shipped_library(shapes: ShapeLibrary) -> None:
    assert shapes.names == ("cube", "sphere", "cylinder", "cone")
    assert len(shapes) == 4
    assert shapes.spec("cube").symmetry == 4
    assert shapes.spec("sphere").symmetry is None
    assert shapes.spec("cylinder").symmetry is None
    assert shapes.index("cone") == 3
    with pytest.raises(ValueError, match="unknown shape 'torus'; known: cube, sphere, cylinder"):
        shapes.index("torus")


@pytest.mark.parametrize("name", ["cube", "sphere", "cylinder", "cone"])
def test_meshes_are_centred_sized_and_outward(shapes: ShapeLibrary, name: str) -> None:
    """Centred on the bounding box, as tall as the manifest says, faces wound outwards
    (soft mode culls back faces, so inward winding would make the shape vanish there)."""
    mesh = shapes.meshes[shapes.index(name)]
    spec = shapes.spec(name)
    low, high = mesh.verts.min(0), mesh.verts.max(0)
    np.testing.assert_allclose((low + high) / 2, 0.0, atol=1e-6)
    assert high[1] - low[1] == pytest.approx(spec.height, abs=1e-4)
    assert mesh.verts.dtype == np.float32 and mesh.faces.dtype == np.int64
    solid = trimesh.Trimesh(mesh.verts, mesh.faces, process=False)
    assert solid.is_winding_consistent and solid.volume > 0


def test_apparent_radii_are_the_discs_of_the_kinds_mean_image_area(shapes: ShapeLibrary) -> None:
    """Cauchy: a convex body's mean projected area is a quarter of its surface area."""
    cylinder = shapes.index("cylinder")  # radius r, height h: sqrt(r (r + h) / 2)
    r, h = footprint_radius(shapes.meshes[cylinder]), shapes.spec("cylinder").height
    assert shapes.apparent_radii[cylinder] == pytest.approx(np.sqrt(r * (r + h) / 2), rel=0.05)
    cube = shapes.index("cube")
    side = shapes.spec("cube").height
    assert shapes.apparent_radii[cube] == pytest.approx(side * np.sqrt(1.5 / np.pi), rel=0.01)
    sphere = shapes.index("sphere")
    radius = shapes.spec("sphere").height / 2  # the low-poly mesh's area is a little less
    assert shapes.apparent_radii[sphere] == pytest.approx(radius, rel=0.05)
    # smaller than the bounding sphere: a cube is seen on average as a disc well inside it
    assert (shapes.apparent_radii <= shapes.bounding_radii + 1e-6).all()
    assert shapes.apparent_radii[cube] < 0.85 * shapes.bounding_radii[cube]


def test_plain_data_round_trip(shapes: ShapeLibrary) -> None:
    back = ShapeLibrary.from_dict(shapes.to_dict())
    assert back.specs == shapes.specs
    for a, b in zip(back.meshes, shapes.meshes, strict=True):
        np.testing.assert_array_equal(a.verts, b.verts)
        np.testing.assert_array_equal(a.faces, b.faces)


def _copy_library(tmp_path: Path) -> Path:
    directory = tmp_path / "shapes"
    shutil.copytree(DEFAULT_SHAPES_DIR, directory)
    return directory


def _edit_manifest(directory: Path, edit) -> None:
    path = directory / "manifest.yaml"
    data = yaml.safe_load(path.read_text())
    edit(data["shapes"])
    path.write_text(yaml.safe_dump(data))


def test_user_can_add_a_shape(tmp_path: Path, world: World) -> None:
    """A mesh file plus a manifest line: the shape renders and scenes may name it."""
    directory = _copy_library(tmp_path)
    box = trimesh.creation.box(extents=(0.9, 0.3, 0.4))
    (directory / "slab.obj").write_text(trimesh.exchange.obj.export_obj(box))
    entry = {"name": "slab", "mesh": "slab.obj", "height": 0.3, "symmetry": 2}
    _edit_manifest(directory, lambda s: s.append({**entry, "color": [0.9, 0.8, 0.1]}))
    library = load_shape_library(directory)
    assert library.names[-1] == "slab" and library.spec("slab").symmetry == 2
    scene = Scene.from_json(
        {"objects": [{"shape": "slab", "position": [0, 0, 0], "yaw_deg": 0}]}, world, library
    )
    with torch.no_grad():
        image = SceneRenderer(world, library).render_scenes([scene])[0]
    yellow = (image[0] > 0.6) & (image[1] > 0.5) & (image[2] < 0.3)
    assert yellow.sum() > 20


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s[0].pop("height"), r"lacks 'height'"),
        (lambda s: s[1].update(symmetry=0), r"shape 'sphere': symmetry must be >= 1 or null"),
        (lambda s: s.append(dict(s[0])), r"shape names in .*manifest\.yaml must be unique"),
        (lambda s: s[2].update(mesh="missing.obj"), r"shape 'cylinder': mesh file .*missing\.obj"),
    ],
)
def test_broken_manifest_is_refused(tmp_path: Path, edit, message: str) -> None:
    directory = _copy_library(tmp_path)
    _edit_manifest(directory, edit)
    with pytest.raises(ValueError, match=message):
        load_shape_library(directory)
