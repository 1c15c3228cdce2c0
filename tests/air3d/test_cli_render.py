"""`air3d render`: scene JSON to PNG, in-process through air3d.cli.main."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from air3d.cli import main
from air3d.renderer import Scene, SceneRenderer, ShapeLibrary, World

THREE = {
    "objects": [
        {"shape": "cube", "position": [-0.8, 0.3, -0.6], "yaw_deg": 30},
        {"shape": "sphere", "position": [0.8, 0.35, -0.5], "yaw_deg": 0, "presence": 0.9},
        {"shape": "cone", "position": [0.0, 0.3, 0.8], "yaw_deg": 0},
    ]
}


def _write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_render_writes_the_crisp_render(
    tmp_path: Path, world: World, shapes: ShapeLibrary, capsys: pytest.CaptureFixture[str]
) -> None:
    scene_file = _write(tmp_path / "scene.json", THREE)
    out = tmp_path / "sub" / "out.png"
    assert main(["render", str(scene_file), "-o", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    picture = np.asarray(Image.open(out).convert("RGB"), dtype=np.float32) / 255
    assert picture.shape == (64, 64, 3)
    with torch.no_grad():
        scene = Scene.from_json(THREE, world, shapes)
        expected = SceneRenderer(world, shapes).render_scenes([scene])
    np.testing.assert_allclose(picture, expected[0].permute(1, 2, 0).numpy(), atol=0.51 / 255)


def test_render_same_scene_same_bytes(tmp_path: Path) -> None:
    scene_file = _write(tmp_path / "scene.json", THREE)
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    assert main(["render", str(scene_file), "-o", str(a)]) == 0
    assert main(["render", str(scene_file), "-o", str(b)]) == 0
    assert a.read_bytes() == b.read_bytes()


def test_render_soft_and_upscaled(tmp_path: Path) -> None:
    scene_file = _write(tmp_path / "scene.json", THREE)
    crisp, soft = tmp_path / "crisp.png", tmp_path / "soft.png"
    assert main(["render", str(scene_file), "-o", str(crisp), "--size", "128"]) == 0
    assert main(["render", str(scene_file), "-o", str(soft), "--mode", "soft"]) == 0
    big = np.asarray(Image.open(crisp))
    assert big.shape == (128, 128, 3)
    assert (big[::2, ::2] == big[1::2, 1::2]).all()  # nearest-neighbour upscaling
    assert Image.open(soft).size == (64, 64)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            {"objects": [{"shape": "pyramid", "position": [0, 0, 0], "yaw_deg": 0}]},
            r"objects\[0\]\.shape: unknown shape 'pyramid'; known: cube, sphere",
        ),
        (
            {"objects": [{"shape": "cube", "position": [9, 0, 0], "yaw_deg": 0}]},
            r"objects\[0\]\.position: \(x=9, z=0\) is outside the workspace",
        ),
        ("{not json", r"cannot read scene JSON"),
    ],
)
def test_bad_scene_file_exits_2_with_a_message(
    tmp_path: Path, content: object, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    out = tmp_path / "out.png"
    assert main(["render", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("air3d render: error: ")
    assert len(err.strip().splitlines()) == 1
    assert re.search(message, err), err
    assert not out.exists()


def test_missing_scene_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", str(tmp_path / "nope.json"), "-o", str(tmp_path / "o.png")]) == 2
    assert "nope.json: cannot read scene JSON" in capsys.readouterr().err
