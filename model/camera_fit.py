"""Each image's camera from how large its objects appear.

A world whose camera jitters (CLEVR: the eye moves by up to 0.5 per axis, still aimed at
the origin) sees each image from its own eye, and a position read from the image through
the wrong eye misses (benchmarks/camera_floor.py: 0.109 median on CLEVR). A featureless
floor hides the eye's azimuth, but its distance and elevation show in the objects'
apparent sizes: an object whose centre is h above the ground at depth z in front of the
camera appears at a scale proportional to h / z. The CentreRefiner measures log(h / z) for
each object (model/centre_refiner.py). For each image, `fit_eyes` finds the distance and
elevation (azimuth kept) under which the objects' image points, read onto their planes,
lie at the depths their scales say: the most probable eye under the prior's spread of eyes
(Gaussian in distance and elevation) and a Cauchy likelihood of each measured scale, whose
heavy tails let a few bad measurements (an object half hidden behind another, a look the
refiner never saw) pull less than a Gaussian's would. Searched on a grid, then on finer
grids around the best.

The fit also says how sure each object's ground position is (`position_spreads`): the
posterior of the eye's distance and elevation about the fit (a Laplace approximation of
the same cost), carried through to the object's point on its plane, and the prior's spread
of azimuths, which nothing in the image narrows: turning the eye about the look-at turns
the read positions with it, so an object far from the look-at is less sure than one near
it; and the image point's own error, stretched where the ground is foreshortened. Answers
rank their objects by it (`Predictor`): most of CLEVR's centre error is the eye's.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from air3d.renderer import World
from air3d.renderer.camera import (
    ground_centres,
    projection_matrices,
    unproject_to_plane,
    view_depths,
)

GRID = 15  # candidates per axis and round
ROUNDS = 3  # each round's grid spans two steps of the last one's
PRIOR_SPAN = 3.0  # the first grid spans the prior's mean +- this many stds
# The Laplace approximation's finite differences, in prior stds of distance and elevation:
# well inside the posterior's width of a few tenths of a std on CLEVR (7 objects, 1-3%
# scale noise), and far above float64's rounding.
LAPLACE_STEP = 0.05
# The refiner's own error in an image point, std per axis in image units ([-1, 1] across the
# frame's width): about half a pixel at 320 (ours: 0.3 px median; Blender's more). It adds
# to the spread of the eye's.
POINT_NOISE = 0.003
NUDGE = 1e-3  # image units: the finite difference of the ground's stretch under the points


@dataclass(frozen=True)
class EyePrior:
    """The prior's eyes in spherical terms about the camera's look-at: mean and std of
    their distance and elevation (radians), and the std of their azimuth (radians)."""

    distance: float
    elevation: float
    distance_std: float
    elevation_std: float
    azimuth_std: float

    @classmethod
    @functools.lru_cache(maxsize=8)  # a world's prior is fixed: measured once, not per fit
    def of(cls, world: World, n: int = 4096) -> EyePrior:
        """Measured on n eyes drawn as the prior draws them (uniform in the jitter box)."""
        camera = world.camera
        g = torch.Generator().manual_seed(0)
        box = (torch.rand(n, 3, generator=g, dtype=torch.float64) * 2 - 1) * camera.jitter
        eyes = torch.tensor(camera.position, dtype=torch.float64) + box
        distance, elevation, azimuth = to_spherical(eyes, world)
        _, _, mean_azimuth = to_spherical(eyes.mean(dim=0), world)
        turn = torch.remainder(azimuth - mean_azimuth + math.pi, 2 * math.pi) - math.pi
        return cls(
            float(distance.mean()),
            float(elevation.mean()),
            float(distance.std()),
            float(elevation.std()),
            float(turn.std()),
        )


def to_spherical(eye: torch.Tensor, world: World):
    """(distance, elevation, azimuth) (...,) of eyes (..., 3) about the look-at, y up."""
    offset = eye - eye.new_tensor(world.camera.look_at)
    distance = offset.norm(dim=-1)
    elevation = torch.asin(offset[..., 1] / distance)
    return distance, elevation, torch.atan2(offset[..., 2], offset[..., 0])


def to_cartesian(distance, elevation, azimuth, world: World) -> torch.Tensor:
    """Eyes (..., 3) from broadcasting (distance, elevation, azimuth) about the look-at."""
    flat = distance * torch.cos(elevation)
    offset = torch.stack(
        torch.broadcast_tensors(
            flat * torch.cos(azimuth), distance * torch.sin(elevation), flat * torch.sin(azimuth)
        ),
        dim=-1,
    )
    return offset + offset.new_tensor(world.camera.look_at)


def fit_eyes(
    world: World,
    uv: torch.Tensor,
    heights: torch.Tensor,
    log_scales: torch.Tensor,
    image_of: torch.Tensor,
    eyes: torch.Tensor,
    noise: float,
) -> torch.Tensor:
    """Each image's eye (B, 3): n objects' image points uv (n, 2) in [-1, 1], centre
    heights (n,), measured log scales log(h / z) (n,), image index image_of (n,); `eyes`
    (B, 3) are the starting eyes, whose azimuths are kept; an image without objects keeps
    its eye. `noise`: the scale of the measured log scales' errors (Cauchy)."""
    prior = EyePrior.of(world)
    B = len(eyes)
    _, _, azimuth = to_spherical(eyes.double(), world)
    distance = torch.full((B,), prior.distance, dtype=torch.float64)
    elevation = torch.full((B,), prior.elevation, dtype=torch.float64)
    spans = (PRIOR_SPAN * prior.distance_std, PRIOR_SPAN * prior.elevation_std)
    steps = torch.linspace(-1.0, 1.0, GRID, dtype=torch.float64)
    for _ in range(ROUNDS):
        d = (distance[:, None, None] + spans[0] * steps[None, :, None]).expand(B, GRID, GRID)
        e = (elevation[:, None, None] + spans[1] * steps[None, None, :]).expand(B, GRID, GRID)
        d, e = d.reshape(B, -1), e.reshape(B, -1)
        candidates = to_cartesian(d, e, azimuth[:, None], world)  # (B, G*G, 3)
        expected = expected_log_scales(world, candidates, uv, heights, image_of)
        cost = _eye_cost(prior, expected, d, e, log_scales, image_of, noise)
        best = cost.argmin(dim=1, keepdim=True)
        distance, elevation = d.gather(1, best)[:, 0], e.gather(1, best)[:, 0]
        spans = tuple(2.0 * span / (GRID - 1) for span in spans)
    fitted = to_cartesian(distance, elevation, azimuth, world).to(eyes)
    has_objects = torch.zeros(B, dtype=torch.bool, device=eyes.device)
    has_objects[image_of] = True
    return torch.where(has_objects[:, None], fitted, eyes)


def position_spreads(
    world: World,
    uv: torch.Tensor,
    heights: torch.Tensor,
    log_scales: torch.Tensor,
    image_of: torch.Tensor,
    eyes: torch.Tensor,
    noise: float,
) -> torch.Tensor:
    """(n,) how far each object's ground position may be off (RMS, world units): the same
    objects as `fit_eyes` took, `eyes` (B, 3) the fitted ones. For want of the true eye:
    the posterior of distance and elevation is Gaussian about the fit (the cost's curvature
    there, by finite differences, never wider than the prior), and the azimuth keeps the
    prior's spread. And the image point's own error (POINT_NOISE), stretched as the ground
    is at that point (more far from the camera)."""
    prior = EyePrior.of(world)
    distance, elevation, azimuth = to_spherical(eyes.double(), world)
    step = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64) * LAPLACE_STEP
    d_step, e_step = torch.meshgrid(step, step, indexing="ij")  # 3 x 3 about the fit
    d = distance[:, None] + prior.distance_std * d_step.reshape(1, -1)
    e = elevation[:, None] + prior.elevation_std * e_step.reshape(1, -1)
    candidates = to_cartesian(d, e, azimuth[:, None], world)  # (B, 9, 3)
    # Each image point and the same nudged four ways (_stretch) on the plane, seen from
    # each candidate: one set of camera matrices for both.
    n, nudged = len(uv), _nudged(uv)
    points = plane_points(
        world, candidates, torch.cat([uv, nudged]), heights.repeat(5), image_of.repeat(5)
    )
    centres = points[:n]  # (n, 9, 3)
    expected = _log_scales_at(world, centres, candidates, image_of)
    cost = _eye_cost(prior, expected, d, e, log_scales, image_of, noise)
    covariance = _laplace_covariance(cost.view(-1, 3, 3))  # in prior stds, (B, 2, 2)
    xz = centres[..., [0, 2]].view(-1, 3, 3, 2)
    # Each object's ground point per prior std of distance and of elevation: (n, 2, 2)
    jacobian = torch.stack([xz[:, 2, 1] - xz[:, 0, 1], xz[:, 1, 2] - xz[:, 1, 0]], dim=-1) / (
        2 * LAPLACE_STEP
    )
    eye_variance = (jacobian @ covariance[image_of] * jacobian).sum(dim=(1, 2))
    look_at = torch.tensor(world.camera.look_at, dtype=torch.float64)[[0, 2]]
    reach = (xz[:, 1, 1] - look_at).norm(dim=-1)  # from the axis the azimuth turns about
    point_variance = POINT_NOISE**2 * _stretch(points[n:, 4, [0, 2]].view(4, n, 2))
    return torch.sqrt(eye_variance + (reach * prior.azimuth_std) ** 2 + point_variance)


def _nudged(uv: torch.Tensor) -> torch.Tensor:
    """(4n, 2) the image points (n, 2) nudged right, left, down and up, each in turn."""
    h = NUDGE
    nudges = torch.tensor([[h, 0.0], [-h, 0.0], [0.0, h], [0.0, -h]], dtype=uv.dtype)
    return (uv[None] + nudges[:, None]).reshape(-1, 2)


def _stretch(nudged_points: torch.Tensor) -> torch.Tensor:
    """(n,) the ground's squared stretch per image unit (summed over both ground and both
    image axes) at n points, from their nudged points on the ground (4, n, 2): the
    variance of a ground point per unit variance of its image point. More where the ground
    is foreshortened, far from the camera."""
    right, left, down, up = nudged_points
    stretch = torch.stack([right - left, down - up], dim=-1) / (2 * NUDGE)
    return (stretch**2).sum(dim=(1, 2))


def _laplace_covariance(cost: torch.Tensor) -> torch.Tensor:
    """(B, 2, 2) the covariance of a Gaussian posterior whose negative log density (B, 3, 3)
    is sampled LAPLACE_STEP apart about its mode, in the steps' units; its precision is
    kept at or above the prior's (1 per axis), where the Cauchy's tails bend the cost."""
    h = LAPLACE_STEP
    dd = (cost[:, 2, 1] - 2 * cost[:, 1, 1] + cost[:, 0, 1]) / h**2
    ee = (cost[:, 1, 2] - 2 * cost[:, 1, 1] + cost[:, 1, 0]) / h**2
    de = (cost[:, 2, 2] - cost[:, 2, 0] - cost[:, 0, 2] + cost[:, 0, 0]) / (4 * h**2)
    precision = torch.stack([torch.stack([dd, de], -1), torch.stack([de, ee], -1)], -2)
    values, vectors = torch.linalg.eigh(precision)
    return vectors @ torch.diag_embed(1.0 / values.clamp_min(1.0)) @ vectors.transpose(-1, -2)


def _eye_cost(
    prior: EyePrior,
    expected: torch.Tensor,
    d: torch.Tensor,
    e: torch.Tensor,
    log_scales: torch.Tensor,
    image_of: torch.Tensor,
    noise: float,
) -> torch.Tensor:
    """(B, C) each of C candidate eyes' negative log posterior, up to a constant: the misfit
    of the objects' measured log scales (n,) to those each eye would show (expected, (n, C);
    Cauchy of scale `noise`) and the prior of its distance d and elevation e (B, C)."""
    misfit = torch.log1p(((expected - log_scales.double()[:, None]) / noise) ** 2)
    cost = torch.zeros(d.shape, dtype=torch.float64).index_add_(0, image_of, misfit)
    cost += 0.5 * ((d - prior.distance) / prior.distance_std) ** 2
    return cost + 0.5 * ((e - prior.elevation) / prior.elevation_std) ** 2


def expected_log_scales(
    world: World,
    candidates: torch.Tensor,
    uv: torch.Tensor,
    heights: torch.Tensor,
    image_of: torch.Tensor,
) -> torch.Tensor:
    """(n, C) the log scale log(h / z) each of n objects would show under each of its
    image's C candidate eyes (B, C, 3): its image point uv (n, 2) read onto the plane at its
    centre height h (n,), z that point's depth in front of the candidate camera."""
    centres = plane_points(world, candidates, uv, heights, image_of)
    return _log_scales_at(world, centres, candidates, image_of)


def _log_scales_at(world: World, centres: torch.Tensor, candidates: torch.Tensor, image_of):
    """(n, C) log(h / z) of n objects' centres (n, C, 3) seen from their images' C candidate
    eyes (B, C, 3): h the centre's height, z its depth in front of the camera."""
    depth = view_depths(world, centres, candidates[image_of]).clamp_min(1e-3)
    return torch.log(centres[..., 1] / depth)


def plane_points(
    world: World,
    candidates: torch.Tensor,
    uv: torch.Tensor,
    heights: torch.Tensor,
    image_of: torch.Tensor,
) -> torch.Tensor:
    """(n, C, 3) where each of n objects' image points uv (n, 2) meets the plane at its
    centre height (n,), seen from each of its image's C candidate eyes (B, C, 3)."""
    B, C, _ = candidates.shape
    matrices = projection_matrices(world, candidates.reshape(-1, 3).float()).double()
    matrices = matrices.view(B, C, 4, 4)[image_of]  # (n, C, 4, 4)
    h = heights.double()[:, None].expand(-1, C)
    xz = unproject_to_plane(uv.double()[:, None].expand(-1, C, 2), matrices, h)
    return ground_centres(xz, h)


def eye_grid(world: World, eyes: torch.Tensor, grid: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Candidate eyes (B, grid * grid, 3) spanning the prior's distance and elevation
    (PRIOR_SPAN stds each way) at each of the eyes' (B, 3) azimuths, and their prior's
    negative log density (grid * grid,), up to a constant."""
    prior = EyePrior.of(world)
    _, _, azimuth = to_spherical(eyes.double(), world)
    steps = torch.linspace(-PRIOR_SPAN, PRIOR_SPAN, grid, dtype=torch.float64)
    d_steps, e_steps = torch.meshgrid(steps, steps, indexing="ij")
    d = prior.distance + prior.distance_std * d_steps.reshape(-1)
    e = prior.elevation + prior.elevation_std * e_steps.reshape(-1)
    candidates = to_cartesian(d[None], e[None], azimuth[:, None], world)
    return candidates, 0.5 * (d_steps.reshape(-1) ** 2 + e_steps.reshape(-1) ** 2)
