"""Blender's Cycles as a second renderer: one tiny render (32x32, 8 samples) per object
placement, checked against our own projection and silhouette, and make-data with it."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml

from air3d.clevr_format import pixel_coords
from air3d.cli import main
from air3d.renderer import Scene, SceneObject, SceneRenderer

pytest.importorskip("bpy", reason="the optional extra: pip install air3d[blender]")

from air3d.renderer.blender import BlenderConfig, BlenderRenderer  # noqa: E402

# Cycles' silhouette (anti-aliased, alpha > 1/2) against our crisp one: measured 0.95
IOU_BOUND = 0.85
SCENE = Scene((SceneObject("cube", (0.4, 0.3, 0.3), 30.0),))


@pytest.fixture(scope="module")
def tiny_world(world):
    return replace(world, image_size=32)


@pytest.fixture(scope="module")
def blender(tiny_world, shapes):
    return BlenderRenderer(tiny_world, shapes, BlenderConfig(samples=8))


def test_the_object_appears_where_our_projection_puts_it(blender, tiny_world) -> None:
    image, empty = blender.render_one(SCENE), blender.render_one(Scene())
    assert image.shape == (3, 32, 32) and image.min() >= 0.0 and image.max() <= 1.0
    col, row, _ = pixel_coords([SCENE.objects[0].position], tiny_world)[0]
    # the cube is red (0.85, 0.25, 0.2): its centre pixel is redder than the bare ground
    assert (image[:, row, col] - empty[:, row, col]).abs().max() > 0.1
    assert image[0, row, col] > image[1, row, col] + 0.1


def test_the_silhouette_overlaps_ours(blender, tiny_world, shapes) -> None:
    ours = SceneRenderer(tiny_world, shapes)
    with torch.no_grad():
        drawn, bare = ours.render_scenes([SCENE, Scene()])
    our_mask = (drawn - bare).abs().amax(0) > 0.02
    their_mask = blender.mask(SCENE)[0] > 0.5
    iou = (our_mask & their_mask).sum() / (our_mask | their_mask).sum()
    assert our_mask.sum() >= 10 and iou > IOU_BOUND, f"IoU {iou:.2f}"


def test_the_bare_ground_has_our_brightness(blender, tiny_world, shapes) -> None:
    # ambient sky + sun of the world's intensities: Lambertian ground as our shader draws it
    with torch.no_grad():
        ours = SceneRenderer(tiny_world, shapes).render_scenes([Scene()])[0]
    theirs = blender.render_one(Scene())
    assert (theirs[:, 20:, :] - ours[:, 20:, :]).abs().mean() < 0.03


def test_make_data_with_blender_writes_images_and_ground_truth(tmp_path: Path, world) -> None:
    config = tmp_path / "world.yaml"
    small = json.loads(json.dumps(world.to_dict()))
    small["image_size"] = 32
    config.write_text(yaml.safe_dump(small))
    out = tmp_path / "data"
    argv = ["make-data", "--n", "1", "--count", "1", "--seed", "2", "--out", str(out)]
    assert main([*argv, "--world", str(config), "--renderer", "blender", "--samples", "4"]) == 0
    assert (out / "images" / "000000.png").is_file()
    meta = json.loads((out / "meta.json").read_text())
    assert meta["renderer"] == "blender" and meta["world"]["image_size"] == 32
    clevr = json.loads((out / "clevr_scenes.json").read_text())
    line = json.loads((out / "scenes.jsonl").read_text())
    assert clevr["info"]["renderer"] == "blender"
    assert [o["shape"] for o in clevr["scenes"][0]["objects"]] == [
        o["shape"] for o in line["objects"]
    ]


def test_missing_bpy_names_the_extra(monkeypatch, world, shapes) -> None:
    monkeypatch.setitem(sys.modules, "bpy", None)  # import bpy now raises ImportError
    with pytest.raises(ImportError, match=r"pip install air3d\[blender\]"):
        BlenderRenderer(world, shapes)


def test_bad_config_is_named() -> None:
    with pytest.raises(ValueError, match="BlenderConfig.samples must be >= 1"):
        BlenderConfig(samples=0)
