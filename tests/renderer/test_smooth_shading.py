"""Smooth shading (world `shading.smooth_angle`): round shapes drawn round, as Blender does."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import trimesh

from air3d.renderer import Scene, SceneObject, SceneRenderer, World, open_world
from air3d.renderer.renderer import corner_normals
from air3d.renderer.shapes import ShapeMesh


@pytest.fixture(scope="module")
def clevr():
    world, shapes = open_world("clevr")
    assert world.shading.smooth_angle > 0, "the clevr world shades round shapes smooth"
    return replace(world, image_size=96), shapes


def _mesh(shapes, name: str):
    return shapes.meshes[
        shapes.index(name, {"color": "gray", "size": "large", "material": "rubber"})
    ]


def _sharp(mesh: trimesh.Trimesh) -> ShapeMesh:
    """A trimesh mesh as the library holds one, y up (trimesh's cylinder stands on z)."""
    verts = np.asarray(mesh.vertices, np.float32)[:, [0, 2, 1]]
    return ShapeMesh(verts, np.asarray(mesh.faces, np.int64)[:, ::-1].copy())


def _face_normals(mesh) -> torch.Tensor:
    v = torch.as_tensor(mesh.verts)[torch.as_tensor(mesh.faces)]
    return F.normalize(torch.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0], dim=-1), dim=-1)


def test_a_spheres_corner_normals_point_away_from_its_centre(clevr) -> None:
    mesh = _mesh(clevr[1], "sphere")
    normals = corner_normals(mesh.verts, mesh.faces, 30.0)  # (F, 3, 3)
    radial = F.normalize(torch.as_tensor(mesh.verts)[torch.as_tensor(mesh.faces)], dim=-1)
    assert (normals * radial).sum(-1).min() > 0.995
    flat = _face_normals(mesh)[:, None].expand_as(normals)
    assert (normals * flat).sum(-1).min() < 0.99, "they differ from the flat faces' normals"


def test_flat_faces_and_sharp_edges_keep_their_own_normals() -> None:
    """On sharp meshes (CLEVR's own come rounded: tests/renderer/test_worlds.py)."""
    cube = _sharp(trimesh.creation.box(extents=(1.4, 1.4, 1.4)))
    normals = corner_normals(cube.verts, cube.faces, 30.0)
    assert torch.allclose(normals, _face_normals(cube)[:, None].expand_as(normals), atol=1e-5)
    cylinder = _sharp(trimesh.creation.cylinder(radius=0.7, height=1.4, sections=16))
    normals = corner_normals(cylinder.verts, cylinder.faces, 30.0)
    cap = _face_normals(cylinder)[:, 1].abs() > 0.99  # faces looking up or down
    assert cap.any() and (~cap).any()
    assert torch.allclose(normals[cap, :, 1].abs(), torch.ones(1), atol=1e-5), "rims stay sharp"
    assert normals[~cap, :, 1].abs().max() < 1e-5, "the side is smooth, and stays horizontal"
    side = normals[~cap].reshape(-1, 3)
    assert (side * _face_normals(cylinder)[~cap].repeat_interleave(3, 0)).sum(-1).min() < 0.99


def _roughness(world: World, shapes, angle: float) -> float:
    """Mean absolute second difference of a large rubber sphere's inner pixels: facets
    make steps in the shading, a smooth sphere's changes gently (no cast shadows: only the
    sphere differs from the empty floor)."""
    world = replace(world, shading=replace(world.shading, smooth_angle=angle)).unshadowed()
    spec = shapes.spec("sphere", {"color": "gray", "size": "large", "material": "rubber"})
    scene = Scene((SceneObject("sphere", (0.0, spec.height / 2, 0.0), 0.0, spec.attributes),))
    image = SceneRenderer(world, shapes).render_scenes([scene])[0].mean(0)  # (H, W)
    empty = SceneRenderer(world, shapes).render_scenes([Scene()])[0].mean(0)
    inside = ((image - empty).abs() > 0.02).float()[None, None]
    inner = -F.max_pool2d(-inside, 5, 1, 2)[0, 0] > 0  # eroded: away from the outline
    lap = (image[1:-1, :-2] + image[1:-1, 2:] + image[:-2, 1:-1] + image[2:, 1:-1]) - 4 * image[
        1:-1, 1:-1
    ]
    return float(lap.abs()[inner[1:-1, 1:-1]].mean())


def test_a_smooth_sphere_shows_no_facets(clevr) -> None:
    world, shapes = clevr
    assert _roughness(world, shapes, 30.0) < 0.65 * _roughness(world, shapes, 0.0)  # 0.52 seen


def test_flat_worlds_have_no_corner_normals(clevr, world, shapes) -> None:
    assert SceneRenderer(world, shapes)._corner_normals is None  # the tabletop: flat
    flat = replace(clevr[0], shading=replace(clevr[0].shading, smooth_angle=0.0))
    assert SceneRenderer(flat, clevr[1])._corner_normals is None


def test_a_bad_smooth_angle_is_refused(clevr) -> None:
    data = clevr[0].to_dict()
    data["shading"] = {**data["shading"], "smooth_angle": 90}
    with pytest.raises(ValueError, match="smooth_angle"):
        World.from_dict(data)
