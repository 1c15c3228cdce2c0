"""The camera fit (model/camera_fit.py): each image's eye from its objects' apparent scales."""

from __future__ import annotations

import pytest
import torch

from air3d.model.camera_fit import (
    EyePrior,
    fit_eyes,
    position_spreads,
    to_cartesian,
    to_spherical,
)
from air3d.renderer import open_world
from air3d.renderer.camera import projection_matrices, unproject_to_plane, view_depths
from tests.model.views import prior_views


def test_spherical_and_cartesian_are_inverse(world):
    eyes = torch.tensor([[7.4, 5.3, 6.5], [-3.0, 2.0, 9.0]], dtype=torch.float64)
    assert torch.allclose(to_cartesian(*to_spherical(eyes, world), world), eyes)


def test_view_depth_is_the_distance_along_the_line_of_sight(world):
    eye = torch.tensor([[0.0, 0.0, 10.0]])
    at = torch.tensor(world.camera.look_at)
    ahead = eye + 4.0 * (at - eye) / (at - eye).norm()
    assert view_depths(world, ahead, eye).item() == pytest.approx(4.0, abs=1e-5)


def test_exact_scales_give_back_the_distance_and_elevation(tiny_clevr_world):
    world, shapes = open_world(tiny_clevr_world)
    uv, heights, log_scales, scene, xz, true_eyes = prior_views(world, shapes, 40, 0)
    start = torch.tensor([world.camera.position]).expand(40, 3)
    # Keep only images with objects, and give the start the true azimuth, which the fit
    # keeps (the floor does not show it).
    distance, elevation, azimuth = to_spherical(true_eyes.double(), world)
    r0, e0, _ = to_spherical(start.double(), world)
    start = to_cartesian(r0, e0, azimuth, world).float()
    eyes = fit_eyes(world, uv, heights, log_scales, scene, start, noise=0.002)
    counts = torch.bincount(scene, minlength=40)
    three = counts == 3  # two unknowns: one or two objects leave them (nearly) open
    assert three.sum() >= 5
    fitted_distance, fitted_elevation, fitted_azimuth = to_spherical(eyes.double(), world)
    assert (fitted_distance - distance)[three].abs().max() < 0.05
    assert (fitted_elevation - elevation)[three].abs().max() < 0.005
    assert torch.allclose(fitted_azimuth, azimuth, atol=1e-4)
    assert torch.equal(eyes[counts == 0], start[counts == 0])  # no objects: the eye stays
    # and the positions read through the fitted eyes are the true ones
    on = three[scene]
    read = unproject_to_plane(uv, projection_matrices(world, eyes)[scene], heights)
    through_start = unproject_to_plane(uv, projection_matrices(world, start)[scene], heights)
    assert (read - xz)[on].norm(dim=1).max() < 0.03 < (through_start - xz)[on].norm(dim=1).max()


def test_without_a_clear_answer_the_prior_holds_the_eye(tiny_clevr_world):
    """Very noisy scales: the fit stays near the prior's mean eye."""
    world, shapes = open_world(tiny_clevr_world)
    uv, heights, log_scales, scene, _, _ = prior_views(world, shapes, 10, 1)
    noisy = log_scales + torch.randn(len(log_scales), generator=torch.Generator().manual_seed(0))
    start = torch.tensor([world.camera.position]).expand(10, 3)
    eyes = fit_eyes(world, uv, heights, noisy, scene, start, noise=10.0)
    prior = EyePrior.of(world)
    distance, elevation, _ = to_spherical(eyes.double(), world)
    assert (distance - prior.distance).abs().max() < 0.5 * prior.distance_std
    assert (elevation - prior.elevation).abs().max() < 0.5 * prior.elevation_std


def _fit_noisy(world, shapes, n: int, seed: int, noise: float):
    """Prior scenes' scales with Gaussian noise (std `noise`), fitted from the world's eye
    (whose azimuth the fit keeps): (misses of the read ground positions (n,), their
    spreads (n,), the objects' distance from the look-at (n,))."""
    uv, heights, log_scales, scene, xz, _ = prior_views(world, shapes, n, seed)
    g = torch.Generator().manual_seed(seed)
    noisy = log_scales + noise * torch.randn(len(log_scales), generator=g)
    start = torch.tensor([world.camera.position]).expand(n, 3)
    # A Cauchy as steep at its centre as the Gaussian: scale sqrt(2) std.
    cauchy = 2**0.5 * noise
    eyes = fit_eyes(world, uv, heights, noisy, scene, start, cauchy)
    spreads = position_spreads(world, uv, heights, noisy, scene, eyes, cauchy).float()
    read = unproject_to_plane(uv, projection_matrices(world, eyes)[scene], heights)
    reach = (xz - torch.tensor(world.camera.look_at)[[0, 2]]).norm(dim=1)
    return (read - xz).norm(dim=1), spreads, reach


def test_position_spreads_say_how_far_the_read_positions_miss(tiny_clevr_world):
    world, shapes = open_world(tiny_clevr_world)
    misses, spreads, reach = _fit_noisy(world, shapes, 300, 2, noise=0.01)
    # In the aggregate the spreads are the misses' RMS, ...
    assert 0.7 < float(torch.sqrt((misses**2 / spreads**2).mean())) < 1.4
    # ... and objects they call surer miss less: the surer half's median miss is smaller.
    surer = spreads <= spreads.median()
    assert misses[surer].median() < 0.8 * misses[~surer].median()
    # Far from the look-at the unseen azimuth turns the positions more.
    assert torch.corrcoef(torch.stack([reach, spreads]))[0, 1] > 0.5


def test_position_spreads_are_no_surer_than_the_prior_without_a_clear_answer(
    tiny_clevr_world,
):
    world, shapes = open_world(tiny_clevr_world)
    _, sure, _ = _fit_noisy(world, shapes, 40, 3, noise=0.002)
    _, unsure, _ = _fit_noisy(world, shapes, 40, 3, noise=1.0)
    assert (unsure > sure).float().mean() > 0.95
