"""The scales' calibration on unlabeled images (model/scale_calibration.py)."""

from __future__ import annotations

import shutil

import pytest
import torch

from air3d.images import to_pil
from air3d.model.camera_fit import to_cartesian, to_spherical
from air3d.model.centre_refiner import CentreRefiner
from air3d.model.scale_calibration import (
    MIN_IMAGES,
    ScaleCalibration,
    ScaleReadings,
    calibrate_scales,
    sample_evenly,
)
from air3d.renderer import open_world
from tests.model.views import prior_views


def _readings(world, shapes, n: int, seed: int, bias: float, noise: float) -> ScaleReadings:
    """What a refiner that reads log scales off by `bias`, with Gaussian noise of std
    `noise`, reads in n prior scenes; the starting eyes carry the true azimuths (which the
    floor hides) at the camera's own distance and elevation."""
    uv, heights, exact, scene, _, eyes = prior_views(world, shapes, n, seed)
    g = torch.Generator().manual_seed(seed)
    read = exact + bias + noise * torch.randn(len(exact), generator=g)
    _, _, azimuth = to_spherical(eyes.double(), world)
    start = torch.tensor([world.camera.position], dtype=torch.float64).expand(n, 3)
    r0, e0, _ = to_spherical(start, world)
    return ScaleReadings(uv, heights, read, scene, to_cartesian(r0, e0, azimuth, world).float())


@pytest.mark.parametrize("bias", [-0.02, 0.0, 0.015])
def test_unlabeled_readings_give_back_the_bias(bias):
    """CLEVR's own world: 3-10 objects an image, more than its eye's two unknowns."""
    world, shapes = open_world("clevr")
    readings = _readings(world, shapes, 80, 3, bias, noise=0.015)
    calibration = calibrate_scales(readings, world, noise=0.05)
    # 80 images pin the mean eye's distance to about 0.3% of it
    assert calibration.bias == pytest.approx(bias, abs=0.005)
    # the Cauchy scale that fits Gaussian noise of std 0.015 (less what each image's own
    # eye absorbs) is of that order, well under where the search started
    assert 0.005 < calibration.noise < 0.015
    assert calibration.images == 80 and calibration.objects == len(readings.uv)
    assert calibration.evidence_gain > 0


def test_too_few_objects_is_a_clear_error(tiny_clevr_world):
    world, shapes = open_world(tiny_clevr_world)
    readings = _readings(world, shapes, 2, 0, 0.0, 0.01)
    with pytest.raises(ValueError, match="at least"):
        calibrate_scales(readings, world, noise=0.05)


def test_cat_numbers_the_images_of_later_parts_after_the_earlier(tiny_clevr_world):
    world, shapes = open_world(tiny_clevr_world)
    first, second = (_readings(world, shapes, 3, seed, 0.0, 0.01) for seed in (0, 1))
    both = ScaleReadings.cat([first, second])
    assert torch.equal(both.image_of, torch.cat([first.image_of, second.image_of + 3]))
    assert len(both.eyes) == 6 and torch.equal(both.log_scales[: len(first.uv)], first.log_scales)


def test_apply_corrects_the_refiners_readings_relative_to_our_renders():
    refiner = CentreRefiner(
        64, window=16, channels=(8, 8), hidden=8, reads_scale=True, scale_reference=0.1,
        scale_noise=0.05,
    )  # fmt: skip
    theirs = ScaleCalibration(bias=-0.02, noise=0.03, images=50, objects=300, evidence_gain=1.0)
    with pytest.raises(ValueError, match="no reference"):
        theirs.apply(refiner)
    ours = ScaleCalibration(bias=0.005, noise=0.015, images=50, objects=300, evidence_gain=1.0)
    refiner.scale_evidence = ours.as_reference(refiner)
    assert theirs.apply(refiner) == pytest.approx((-0.025, 2.0))
    assert refiner.scale_reference == pytest.approx(0.125)
    assert refiner.scale_noise == pytest.approx(0.1)
    # the same images, read by the calibrated refiner, show the reference's bias: no change
    again = ScaleCalibration(bias=0.005, noise=0.03, images=50, objects=300, evidence_gain=1.0)
    assert again.apply(refiner) == pytest.approx((0.0, 2.0))
    assert refiner.scale_reference == pytest.approx(0.125)
    assert refiner.scale_noise == pytest.approx(0.1)


def test_sample_evenly_spreads_over_the_set():
    assert sample_evenly(5, 10) == [0, 1, 2, 3, 4]
    picked = sample_evenly(1000, 200)
    assert len(picked) == 200 and picked[0] == 0 and picked[-1] == 995


def test_calibrating_on_our_own_renders_changes_little(tmp_path, capsys):
    """The shipped CLEVR model: its reference measured, then calibrated to our renderer's
    images of other prior scenes: the bias is small and the noise about the reference's;
    `infer` calibrates to a folder of them by itself."""
    from air3d.cli import main
    from air3d.model import Predictor
    from air3d.model.centre_refiner import fine_world
    from air3d.model.shipped import shipped_checkpoint
    from air3d.renderer import SceneRenderer
    from air3d.renderer.prior import sample_scenes

    shipped = tmp_path / "clevr.pt"
    shutil.copy(shipped_checkpoint("clevr"), shipped)
    predictor = Predictor.from_checkpoint(shipped, fit=False)
    world, shapes = predictor.world, predictor.shapes
    fine = fine_world(world, predictor.canvas.size)
    first, last = fine.frame_rows  # the 320 x 240 frame, as Blender writes it
    images = tmp_path / "images"
    images.mkdir()
    drawn = SceneRenderer(fine, shapes).render_scenes(sample_scenes(world, shapes, MIN_IMAGES, 5))
    for i, image in enumerate(drawn):
        to_pil(image[:, first:last]).save(images / f"{i:03d}.png")

    argv = ["calibrate-scales", "--checkpoint", str(shipped), "--no-progress"]
    if predictor.centres.scale_evidence is None:  # a refiner fresh from train-centres
        assert main([*argv, "--reference", "24"]) == 0
    assert main(argv) == 2  # measured once: again would measure a calibrated refiner
    assert "already holds its reference" in capsys.readouterr().err
    reference = Predictor.from_checkpoint(shipped, fit=False).centres
    out = tmp_path / "calibrated.pt"
    assert main([*argv, "--images", str(images), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    bias = float(printed.split("bias ")[1].split()[0])
    assert abs(bias) < 0.01, printed
    calibrated = Predictor.from_checkpoint(out, fit=False).centres
    assert calibrated.scale_reference == pytest.approx(reference.scale_reference - bias, abs=1e-4)
    assert 0.5 < calibrated.scale_noise / reference.scale_noise < 2.0
    assert Predictor.from_checkpoint(shipped, fit=False).centres.scale_reference == (
        reference.scale_reference
    )  # --out leaves the original alone

    lines = tmp_path / "answers.jsonl"
    infer = ["infer", str(images), "--checkpoint", str(shipped), "--no-progress"]
    assert main([*infer, "--out", str(lines)]) == 0
    assert "scales calibrated to" in capsys.readouterr().err
    assert main([*infer, "--out", str(tmp_path / "off.jsonl"), "--calibrate-scales", "off"]) == 0
    assert "scales calibrated" not in capsys.readouterr().err


def test_a_model_without_a_refiner_is_a_clear_error(tiny_checkpoint, tmp_path, capsys):
    from air3d.cli import main

    argv = ["calibrate-scales", "--checkpoint", str(tiny_checkpoint), "--images", str(tmp_path)]
    assert main(argv) == 2
    assert "has no centre refiner" in capsys.readouterr().err
