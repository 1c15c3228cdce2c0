"""MuJoCo as a third renderer: tiny (32x32) renders checked against our projection, shading
and tone, a changed look, and make-data with it. Skipped without mujoco or OSMesa."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml

from air3d.clevr_format import pixel_coords
from air3d.cli import main
from air3d.renderer import Scene, SceneObject, SceneRenderer

os.environ.setdefault("MUJOCO_GL", "osmesa")  # before mujoco is imported: it reads it once
pytest.importorskip("mujoco", reason="the optional extra: pip install air3d[mujoco]")

from air3d.renderer.mujoco import Look, MujocoRenderer, load_look  # noqa: E402

SCENE = Scene((SceneObject("cube", (0.4, 0.3, 0.3), 30.0),))
# Our crisp silhouette against the pixels MuJoCo changes (its object, anti-aliased edges,
# and its cast shadow): measured 0.81 at 64 px with three objects
IOU_BOUND = 0.6


@pytest.fixture(scope="module")
def tiny_world(world):
    return replace(world, image_size=32)


def _renderer(world, shapes, look: Look | None = None) -> MujocoRenderer:
    try:
        return MujocoRenderer(world, shapes, look)
    except ImportError as error:  # mujoco without an OpenGL context (no libosmesa6)
        pytest.skip(str(error))


@pytest.fixture(scope="module")
def mujoco(tiny_world, shapes):
    renderer = _renderer(tiny_world, shapes)
    yield renderer
    renderer.close()


def test_the_object_appears_where_ours_does(mujoco, tiny_world, shapes) -> None:
    image, empty = mujoco.render([SCENE, Scene()])
    assert image.shape == (3, 32, 32) and image.min() >= 0.0 and image.max() <= 1.0
    col, row, _ = pixel_coords([SCENE.objects[0].position], tiny_world)[0]
    assert image[0, row, col] > image[1, row, col] + 0.1  # the cube is red
    with torch.no_grad():
        drawn, bare = SceneRenderer(tiny_world, shapes).render_scenes([SCENE, Scene()])
    ours = (drawn - bare).abs().amax(0) > 0.02
    theirs = (image - empty).abs().amax(0) > 0.02
    iou = (ours & theirs).sum() / (ours | theirs).sum()
    assert ours.sum() >= 10 and iou > IOU_BOUND, f"IoU {iou:.2f}"


def test_the_bare_table_has_our_shading(mujoco, tiny_world, shapes) -> None:
    with torch.no_grad():
        ours = SceneRenderer(tiny_world, shapes).render_scenes([Scene()])[0]
    theirs = mujoco.render([Scene()])[0]
    assert (theirs - ours).abs().mean() < 0.01  # 8-bit rounding apart


def test_a_look_changes_light_colours_and_tone(tiny_world, shapes) -> None:
    look = Look(light={"ambient": 0.2, "diffuse": 0.6}, ground_color=(0.4, 0.3, 0.2),
                tone="srgb", exposure=0.8)  # fmt: skip
    renderer = _renderer(tiny_world, shapes, look)
    try:
        table = renderer.render([Scene()])[0][:, 24, 16]  # a pixel of the bare table
    finally:
        renderer.close()
    up = torch.nn.functional.normalize(torch.tensor(tiny_world.light.direction), dim=0)[1]
    linear = 0.8 * torch.tensor([0.4, 0.3, 0.2]) * (0.2 + 0.6 * up)
    srgb = 1.055 * linear ** (1 / 2.4) - 0.055
    assert torch.allclose(table, srgb, atol=0.02), (table, srgb)


def test_look_files_are_checked(tmp_path: Path, world, shapes) -> None:
    path = tmp_path / "look.yaml"
    path.write_text(yaml.safe_dump({"tone": "srgb", "shadows": False}))
    with pytest.raises(ValueError, match=r"unknown keys \['shadows'\]"):
        load_look(path)
    with pytest.raises(ValueError, match="look tone 'film' unknown; known: linear, srgb"):
        Look(tone="film")
    with pytest.raises(ValueError, match=r"look light: unknown keys \['colour'\]"):
        Look(light={"colour": 1.0}).apply(world, shapes)
    shipped = load_look(Path(__file__).parents[2] / "configs" / "look-mujoco.yaml")
    assert shipped.tone == "srgb"


def test_make_data_with_mujoco_records_the_look(mujoco, tmp_path: Path, world) -> None:
    config = tmp_path / "world.yaml"
    small = json.loads(json.dumps(world.to_dict()))
    small["image_size"] = 32
    config.write_text(yaml.safe_dump(small))
    look = tmp_path / "look.yaml"
    look.write_text(yaml.safe_dump({"ground_color": [0.3, 0.3, 0.6], "tone": "srgb"}))
    out = tmp_path / "data"
    argv = ["make-data", "--n", "2", "--seed", "2", "--out", str(out), "--world", str(config)]
    assert main([*argv, "--renderer", "mujoco", "--look", str(look)]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["renderer"] == "mujoco" and meta["look"]["tone"] == "srgb"
    assert meta["world"]["ground"]["color"] == list(world.ground.color)  # the geometry's world
    assert len(list((out / "images").glob("*.png"))) == 2


def test_look_needs_mujoco(tmp_path: Path, capsys) -> None:
    argv = ["make-data", "--n", "1", "--out", str(tmp_path), "--look", "x.yaml"]
    assert main(argv) == 2
    assert "--look needs --renderer mujoco" in capsys.readouterr().err


def test_a_scene_with_its_own_camera_is_refused(mujoco) -> None:
    with pytest.raises(ValueError, match="MuJoCo draws from the world's camera only"):
        mujoco.render_one(Scene(SCENE.objects, camera=(2.0, 2.0, 2.0)))
