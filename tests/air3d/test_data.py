"""air3d.data: make_dataset / load_dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from air3d.data import load_dataset, make_dataset, stored_image
from air3d.renderer import SceneRenderer, ShapeLibrary, World, open_world


def test_make_and_load_round_trip(tmp_path: Path, world: World, shapes: ShapeLibrary) -> None:
    out = tmp_path / "d"
    make_dataset(out, 5, seed=3, world=world, shapes=shapes, batch_size=2, progress=False)
    names = sorted(p.name for p in (tmp_path / "d" / "images").iterdir())
    assert names == [f"{i:06d}.png" for i in range(5)]
    meta = json.loads((tmp_path / "d" / "meta.json").read_text())
    assert meta["n"] == 5 and meta["seed"] == 3 and meta["count"] is None
    assert meta["shapes"] == list(shapes.names)
    assert World.from_dict(meta["world"]) == world

    data = load_dataset(tmp_path / "d", world, shapes)
    assert data.images.shape == (5, 3, 64, 64) and len(data.scenes) == 5
    # The images are the crisp renders of the ground-truth scenes (up to 8-bit rounding).
    with torch.no_grad():
        rendered = SceneRenderer(world, shapes).render_scenes(data.scenes)
    torch.testing.assert_close(data.images, rendered, atol=0.51 / 255, rtol=0)
    assert len(load_dataset(tmp_path / "d", world, shapes, limit=2).scenes) == 2


def test_count_override_beyond_max_objects(
    tmp_path: Path, world: World, shapes: ShapeLibrary
) -> None:
    make_dataset(tmp_path / "d", 2, seed=0, world=world, shapes=shapes, count=4, progress=False)
    data = load_dataset(tmp_path / "d", world, shapes)
    assert [len(s.objects) for s in data.scenes] == [4, 4]


def test_empty_dataset(tmp_path: Path, world: World, shapes: ShapeLibrary) -> None:
    make_dataset(tmp_path / "d", 0, seed=0, world=world, shapes=shapes, progress=False)
    data = load_dataset(tmp_path / "d", world, shapes)
    assert data.images.shape == (0, 3, 64, 64) and data.scenes == []


def test_not_a_dataset(tmp_path: Path, world: World, shapes: ShapeLibrary) -> None:
    with pytest.raises(ValueError, match=r"not a data set \(no scenes\.jsonl\); make one with"):
        load_dataset(tmp_path, world, shapes)


def test_a_framed_world_stores_the_frame_and_loads_back_the_canvas(tmp_path, tiny_clevr_world):
    world, kinds = open_world(tiny_clevr_world)
    make_dataset(tmp_path, 2, seed=1, world=world, shapes=kinds, progress=False)
    assert Image.open(tmp_path / "images" / "000000.png").size == (32, 24)  # 320 x 240 shape
    loaded = load_dataset(tmp_path, world, kinds)
    with torch.no_grad():
        drawn = SceneRenderer(world, kinds).render_scenes(loaded.scenes, "crisp")
    # the frame's rows to 8-bit rounding, the bands exactly what the renderer paints
    assert (loaded.images - drawn).abs().max() <= 0.5 / 255 + 1e-6
    # a source that draws the frame's own shape (Blender at 320 x 240) is stored as it is
    frame = torch.rand(3, 240, 320)
    assert stored_image(frame, world) is frame
    assert stored_image(torch.rand(3, 32, 32), world).shape == (3, 24, 32)
