"""The scales' calibration on unlabeled images (model/scale_calibration.py)."""

from __future__ import annotations

import pytest
import torch

from air3d.model.camera_fit import to_cartesian, to_spherical
from air3d.model.centre_refiner import CentreRefiner
from air3d.model.scale_calibration import ScaleCalibration, ScaleReadings, calibrate_scales
from air3d.renderer import SceneBatch, open_world
from air3d.renderer.camera import project, projection_matrices, view_depths
from air3d.renderer.prior import sample_scenes


def _readings(world, shapes, n: int, seed: int, bias: float, noise: float) -> ScaleReadings:
    """What a refiner that reads log scales off by `bias`, with Gaussian noise of std
    `noise`, reads in n prior scenes; the starting eyes carry the true azimuths (which the
    floor hides) at the camera's own distance and elevation."""
    scenes = sample_scenes(world, shapes, n, seed)
    latents = SceneBatch.from_scenes(scenes, shapes, world.max_objects)
    scene, slot = latents.present.nonzero(as_tuple=True)
    heights = torch.tensor([spec.height / 2 for spec in shapes.specs])[latents.shape[scene, slot]]
    xz = latents.xz[scene, slot]
    centres = torch.stack([xz[:, 0], heights, xz[:, 1]], dim=1)
    eyes = latents.eye.float()
    uv = project(centres, projection_matrices(world, eyes)[scene])
    exact = torch.log(heights / view_depths(world, centres, eyes[scene]))
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
    ours = ScaleCalibration(bias=0.005, noise=0.015, images=50, objects=300, evidence_gain=1.0)
    theirs.apply(refiner, reference=ours)
    assert refiner.scale_reference == pytest.approx(0.125)
    assert refiner.scale_noise == pytest.approx(0.1)
