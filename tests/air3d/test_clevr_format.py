"""CLEVR's scenes JSON: the coordinate mapping, round trips, pixel coordinates, errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from air3d.clevr_format import (
    clevr_document,
    from_clevr_coords,
    pixel_coords,
    read_clevr,
    scene_to_clevr,
    to_clevr_coords,
    write_clevr,
)
from air3d.data import CLEVR_FILE, SCENES_FILE, load_dataset, make_dataset
from air3d.renderer import Scene, SceneObject, SceneRenderer

SCENE = Scene(
    (
        SceneObject("cube", (0.5, 0.3, -0.8), 30.0),
        SceneObject("sphere", (-1.0, 0.35, 0.9), 0.0),
        SceneObject("cone", (0.1, 0.3, 0.2), 359.5),
    )
)


def test_coordinates_map_y_up_to_z_up_and_back() -> None:
    # our up (y) is CLEVR's up (Z); our +z (towards the camera) is CLEVR's -Y
    assert to_clevr_coords((1.0, 2.0, 3.0)) == [1.0, -3.0, 2.0]
    assert from_clevr_coords([1.0, -3.0, 2.0]) == (1.0, 2.0, 3.0)


def test_yaw_is_clevr_rotation_because_the_mapping_is_a_proper_rotation() -> None:
    # turn a point by yaw as our renderer does (right-handed about +y), map it to CLEVR,
    # and compare with turning the mapped point right-handed about +Z by the same angle
    yaw = math.radians(40.0)
    x, y, z = 1.0, 0.2, 0.5
    ours = (math.cos(yaw) * x + math.sin(yaw) * z, y, -math.sin(yaw) * x + math.cos(yaw) * z)
    X, Y, Z = to_clevr_coords((x, y, z))
    clevr = [math.cos(yaw) * X - math.sin(yaw) * Y, math.sin(yaw) * X + math.cos(yaw) * Y, Z]
    assert to_clevr_coords(ours) == pytest.approx(clevr)


def test_scenes_round_trip_through_a_clevr_file(tmp_path: Path, world, shapes) -> None:
    records = [scene_to_clevr(s, f"{i}.png", i, world) for i, s in enumerate([SCENE, Scene()])]
    write_clevr(tmp_path / "s.json", clevr_document(records, split="test"))
    document = json.loads((tmp_path / "s.json").read_text())
    assert document["info"]["split"] == "test"
    first = document["scenes"][0]["objects"][0]
    assert set(first) == {"shape", "3d_coords", "rotation", "pixel_coords"}  # no colour etc.
    assert first["3d_coords"] == [0.5, 0.8, 0.3] and first["rotation"] == 30.0
    back = read_clevr(tmp_path / "s.json", world, shapes)
    assert back == [("0.png", SCENE), ("1.png", Scene())]


def test_pixel_coords_are_where_the_renderer_draws_the_object(world, shapes) -> None:
    renderer = SceneRenderer(world, shapes)
    empty = renderer.render_scenes([Scene()])[0]
    for obj in SCENE.objects:
        image = renderer.render_scenes([Scene((obj,))])[0]
        col, row, depth = pixel_coords([obj.position], world)[0]
        assert isinstance(col, int) and isinstance(row, int)
        assert (image[:, row, col] - empty[:, row, col]).abs().max() > 0.05
        eye = torch.tensor(world.camera.position)
        assert 0 < depth <= torch.dist(torch.tensor(obj.position), eye)
    # an object nearer the camera (+z) is lower in the image and less deep
    (_, row_far, d_far), (_, row_near, d_near) = pixel_coords(
        [(0.0, 0.3, -1.0), (0.0, 0.3, 1.0)], world
    )
    assert row_near > row_far and d_near < d_far


def test_make_data_writes_the_same_scenes_in_both_formats(tmp_path: Path, world, shapes) -> None:
    make_dataset(tmp_path, 5, 1, world, shapes, progress=False)
    clevr = read_clevr(tmp_path / CLEVR_FILE, world, shapes)
    ours = load_dataset(tmp_path, world, shapes)
    assert [name for name, _ in clevr] == [f"images/{i:06d}.png" for i in range(5)]
    assert (tmp_path / SCENES_FILE).exists()
    for (_, a), b in zip(clevr, ours.scenes, strict=True):
        assert [o.shape for o in a.objects] == [o.shape for o in b.objects]
        for p, q in zip(a.objects, b.objects, strict=True):
            assert p.position == pytest.approx(q.position) and p.yaw_deg == q.yaw_deg


def test_bad_files_name_the_field(tmp_path: Path, world, shapes) -> None:
    path = tmp_path / "bad.json"
    path.write_text("{")
    with pytest.raises(ValueError, match="not JSON"):
        read_clevr(path, world, shapes)
    path.write_text('{"scenes": [{"objects": []}]}')
    with pytest.raises(ValueError, match=r"scenes\[0\].image_filename: missing"):
        read_clevr(path, world, shapes)
    path.write_text('{"scenes": [{"image_filename": "a.png", "objects": [{"shape": "cube"}]}]}')
    with pytest.raises(ValueError, match=r'objects\[0\]: needs "shape" and "3d_coords"'):
        read_clevr(path, world, shapes)
    bad_shape = {"shape": "torus", "3d_coords": [0, 0, 0.3]}
    path.write_text(json.dumps({"scenes": [{"image_filename": "a", "objects": [bad_shape]}]}))
    with pytest.raises(ValueError, match="unknown shape 'torus'"):
        read_clevr(path, world, shapes)
