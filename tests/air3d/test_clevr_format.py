"""CLEVR's scenes JSON: the coordinate mapping, round trips, pixel coordinates, errors."""

from __future__ import annotations

import json
import math
from dataclasses import replace
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
from air3d.renderer import Scene, SceneObject, SceneRenderer, open_world
from air3d.renderer.camera import project, projection_matrix, to_pixels

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


# ---- a world with attributes and a frame (the clevr world)


def _clevr_scene(kinds) -> Scene:
    big = kinds.spec("cube", {"color": "red", "size": "large", "material": "metal"})
    small = kinds.spec("sphere", {"color": "cyan", "size": "small", "material": "rubber"})
    return Scene(
        (
            SceneObject("cube", (1.0, big.height / 2, -2.0), 30.0, big.attributes),
            SceneObject("sphere", (-1.5, small.height / 2, 0.5), 0.0, small.attributes),
        )
    )


def test_clevr_attributes_are_written_and_read_back(tmp_path: Path) -> None:
    world, kinds = open_world("clevr")
    scene = _clevr_scene(kinds)
    record = scene_to_clevr(scene, "0.png", 0, world)
    cube = record["objects"][0]
    assert (cube["shape"], cube["color"], cube["size"], cube["material"]) == (
        "cube", "red", "large", "metal",
    )  # fmt: skip
    assert cube["3d_coords"] == pytest.approx([1.0, 2.0, scene.objects[0].position[1]])
    write_clevr(tmp_path / "s.json", clevr_document([record]))
    assert read_clevr(tmp_path / "s.json", world, kinds) == [("0.png", scene)]
    # a tabletop reader ignores the attributes it does not have
    tabletop, shapes = open_world("tabletop")
    [(_, flat)] = read_clevr(
        tmp_path / "s.json", replace(tabletop, workspace=world.workspace), shapes
    )
    assert [o.attributes for o in flat.objects] == [(), ()]


def test_clevr_attributes_missing_or_unknown_are_named(tmp_path: Path) -> None:
    world, kinds = open_world("clevr")
    record = scene_to_clevr(_clevr_scene(kinds), "0.png", 0, world)
    del record["objects"][1]["material"]
    write_clevr(tmp_path / "s.json", clevr_document([record]))
    with pytest.raises(
        ValueError, match=r"scenes\[0\].*objects\[1\]\.material: missing; known: rubber, metal"
    ):
        read_clevr(tmp_path / "s.json", world, kinds)
    record["objects"][1]["material"] = "glass"
    write_clevr(tmp_path / "s.json", clevr_document([record]))
    with pytest.raises(ValueError, match="unknown material 'glass'"):
        read_clevr(tmp_path / "s.json", world, kinds)


def test_pixel_coords_are_in_the_frame_of_a_letterboxed_world() -> None:
    world, kinds = open_world("clevr")
    assert world.frame == (320, 240) and world.frame_rows == (12, 84)
    # the camera looks at the origin: the centre of the canvas, so of the frame
    [[col, row, _]] = pixel_coords([(0.0, 0.0, 0.0)], world)
    assert (col, row) == (160, 120)
    # elsewhere: the canvas pixel scaled by 320 / 96 across, rows shifted by the band
    position = (2.0, 0.35, 2.5)
    canvas = to_pixels(project(torch.tensor([position]), projection_matrix(world)), 96)[0]
    [[col, row, _]] = pixel_coords([position], world)
    assert (col, row) == (
        math.floor(canvas[0] * 320 / 96),
        math.floor((canvas[1] - 12) * 240 / 72),
    )
    assert 0 <= col < 320 and 0 <= row < 240


def test_pixel_coords_land_on_the_object_in_a_frame_sized_rendering(tiny_clevr_world) -> None:
    world, kinds = open_world(tiny_clevr_world)
    scene = _clevr_scene(kinds)
    renderer = SceneRenderer(world, kinds)
    empty = renderer.render_scenes([Scene()])[0]
    first, last = world.frame_rows
    for obj in scene.objects:
        image = renderer.render_scenes([Scene((obj,))])[0][:, first:last]  # the frame
        frame = torch.nn.functional.interpolate(image[None], size=(240, 320))[0]
        ground = torch.nn.functional.interpolate(empty[None, :, first:last], size=(240, 320))[0]
        col, row, _ = pixel_coords([obj.position], world)[0]
        assert (frame[:, row, col] - ground[:, row, col]).abs().max() > 0.05


def test_a_scene_camera_is_written_as_camera_location_and_read_back(
    tmp_path: Path, world, shapes
) -> None:
    eye = (2.0, 2.4, 2.6)
    moved = Scene(SCENE.objects, eye)
    record = scene_to_clevr(moved, "0.png", 0, world)
    assert record["camera_location"] == pytest.approx([2.0, -2.6, 2.4])  # CLEVR's axes
    # pixel_coords follow the scene's camera: where a renderer at that camera draws it
    assert (
        record["objects"][0]["pixel_coords"]
        != scene_to_clevr(SCENE, "0.png", 0, world)["objects"][0]["pixel_coords"]
    )
    renderer = SceneRenderer(world, shapes)
    with torch.no_grad():
        image, empty = renderer.render_scenes([moved, Scene((), eye)])
    col, row, _ = record["objects"][0]["pixel_coords"]
    assert (image[:, row, col] - empty[:, row, col]).abs().max() > 0.05
    write_clevr(tmp_path / "s.json", clevr_document([record]))
    ((_, back),) = read_clevr(tmp_path / "s.json", world, shapes)
    assert back.camera == pytest.approx(eye) and back.objects == moved.objects
