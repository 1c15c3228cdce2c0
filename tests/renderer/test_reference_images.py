"""Crisp renders against committed reference PNGs, compared with a tolerance.

The references are 64x64 crisp renders of the scenes below with the shipped world. When a
deliberate change to the renderer or the world changes them, regenerate and look at them:

    AIR3D_REGENERATE_REFERENCES=1 .venv/bin/python -m pytest tests/renderer/test_reference_images.py
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from air3d.images import to_pil
from air3d.renderer import Scene, SceneObject, SceneRenderer, ShapeLibrary, World

REFERENCE_DIR = Path(__file__).parent / "reference"
REGENERATE = os.environ.get("AIR3D_REGENERATE_REFERENCES") == "1"

# Each pixel may differ by this much in any channel (one PNG quantisation step plus slack)...
PIXEL_TOLERANCE = 3 / 255
# ...and this fraction of pixels may differ by more (rasterisers disagree on edge pixels).
MAX_DIFFERING_FRACTION = 0.005

REFERENCE_SCENES = {
    "empty": Scene(),
    "cube_yaw30": Scene((SceneObject("cube", (0.0, 0.3, 0.0), 30.0),)),
    "three_objects": Scene(
        (
            SceneObject("cube", (-0.8, 0.3, -0.6), 30.0),
            SceneObject("sphere", (0.8, 0.35, -0.5), 0.0),
            SceneObject("cone", (0.0, 0.3, 0.8), 0.0),
        )
    ),
    "cylinder_and_cone": Scene(
        (
            SceneObject("cylinder", (-0.5, 0.3, 0.3), 10.0),
            SceneObject("cone", (0.5, 0.3, 0.3), 10.0),
        )
    ),
}


def image_difference(
    actual: np.ndarray, expected: np.ndarray, tolerance: float = PIXEL_TOLERANCE
) -> tuple[float, tuple[int, int, int, int] | None]:
    """Takes two (H, W, 3) images in [0, 1] to (fraction of pixels off by more than
    tolerance in some channel, their bounding box (top, left, bottom, right) or None)."""
    if actual.shape != expected.shape:
        raise ValueError(f"image shapes differ: {actual.shape} vs {expected.shape}")
    off = (np.abs(actual - expected) > tolerance).any(axis=-1)  # (H, W)
    if not off.any():
        return 0.0, None
    rows, cols = np.nonzero(off)
    return float(off.mean()), (int(rows.min()), int(cols.min()), int(rows.max()), int(cols.max()))


def assert_images_close(actual: np.ndarray, expected: np.ndarray, name: str) -> None:
    fraction, box = image_difference(actual, expected)
    worst = float(np.abs(actual - expected).max())
    assert fraction <= MAX_DIFFERING_FRACTION, (
        f"{name}: {fraction:.2%} of pixels differ by more than {PIXEL_TOLERANCE:.4f} "
        f"(allowed {MAX_DIFFERING_FRACTION:.2%}); they lie in rows {box[0]}..{box[2]}, "
        f"columns {box[1]}..{box[3]}; largest difference {worst:.3f}"
    )


def _read_png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0


@pytest.mark.parametrize("name", sorted(REFERENCE_SCENES))
def test_crisp_render_matches_reference(
    name: str, renderer: SceneRenderer, world: World, shapes: ShapeLibrary
) -> None:
    with torch.no_grad():
        image = renderer.render_scenes([REFERENCE_SCENES[name]], "crisp")[0]
    assert image.shape == (3, world.image_size, world.image_size)
    path = REFERENCE_DIR / f"{name}.png"
    if REGENERATE:
        REFERENCE_DIR.mkdir(exist_ok=True)
        to_pil(image).save(path)
        pytest.skip(f"regenerated {path}: look at it before committing")
    assert path.exists(), f"{path} missing: run with AIR3D_REGENERATE_REFERENCES=1"
    actual = image.permute(1, 2, 0).numpy()
    assert_images_close(actual, _read_png(path), name)


def test_references_show_the_objects() -> None:
    """Guards the references themselves: each object's colour is in its image."""
    empty = _read_png(REFERENCE_DIR / "empty.png")
    for name, scene in REFERENCE_SCENES.items():
        image = _read_png(REFERENCE_DIR / f"{name}.png")
        changed = (np.abs(image - empty) > 0.05).any(-1).mean()
        assert (changed > 0) == bool(scene.objects), f"{name}: {changed:.2%} of pixels changed"


def test_image_difference_reports_where_images_differ() -> None:
    expected = np.zeros((64, 64, 3), np.float32)
    actual = expected.copy()
    actual[10:13, 20:30, 1] = 0.5  # a 3x10 block of changed pixels
    actual[40, 5, :] = 1 / 255  # within tolerance: not counted
    fraction, box = image_difference(actual, expected)
    assert fraction == pytest.approx(30 / 4096)
    assert box == (10, 20, 12, 29)
    with pytest.raises(AssertionError, match=r"rows 10\.\.12, columns 20\.\.29"):
        assert_images_close(actual, expected, "block")
    assert image_difference(expected, expected) == (0.0, None)
