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
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from air3d.renderer import World
from air3d.renderer.camera import projection_matrices, unproject_to_plane, view_depths

GRID = 15  # candidates per axis and round
ROUNDS = 3  # each round's grid spans two steps of the last one's
PRIOR_SPAN = 3.0  # the first grid spans the prior's mean +- this many stds


@dataclass(frozen=True)
class EyePrior:
    """The prior's eyes in spherical terms about the camera's look-at: mean and std of
    their distance and elevation (radians)."""

    distance: float
    elevation: float
    distance_std: float
    elevation_std: float

    @classmethod
    @functools.lru_cache(maxsize=8)  # a world's prior is fixed: measured once, not per fit
    def of(cls, world: World, n: int = 4096) -> EyePrior:
        """Measured on n eyes drawn as the prior draws them (uniform in the jitter box)."""
        camera = world.camera
        g = torch.Generator().manual_seed(0)
        box = (torch.rand(n, 3, generator=g, dtype=torch.float64) * 2 - 1) * camera.jitter
        eyes = torch.tensor(camera.position, dtype=torch.float64) + box
        distance, elevation, _ = to_spherical(eyes, world)
        return cls(
            float(distance.mean()),
            float(elevation.mean()),
            float(distance.std()),
            float(elevation.std()),
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
        cost = _misfit(world, candidates, uv, heights, log_scales, image_of, noise)
        cost += 0.5 * ((d - prior.distance) / prior.distance_std) ** 2
        cost += 0.5 * ((e - prior.elevation) / prior.elevation_std) ** 2
        best = cost.argmin(dim=1, keepdim=True)
        distance, elevation = d.gather(1, best)[:, 0], e.gather(1, best)[:, 0]
        spans = tuple(2.0 * span / (GRID - 1) for span in spans)
    fitted = to_cartesian(distance, elevation, azimuth, world).to(eyes)
    has_objects = torch.zeros(B, dtype=torch.bool, device=eyes.device)
    has_objects[image_of] = True
    return torch.where(has_objects[:, None], fitted, eyes)


def _misfit(
    world: World,
    candidates: torch.Tensor,
    uv: torch.Tensor,
    heights: torch.Tensor,
    log_scales: torch.Tensor,
    image_of: torch.Tensor,
    noise: float,
) -> torch.Tensor:
    """(B, C) each image's negative log likelihood (Cauchy of scale `noise`, up to a
    constant) of its objects' measured log scales under each of its C candidate eyes
    (B, C, 3)."""
    expected = expected_log_scales(world, candidates, uv, heights, image_of)
    misfit = torch.log1p(((expected - log_scales.double()[:, None]) / noise) ** 2)
    B, C, _ = candidates.shape
    return torch.zeros(B, C, dtype=torch.float64).index_add_(0, image_of, misfit)


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
    B, C, _ = candidates.shape
    matrices = projection_matrices(world, candidates.reshape(-1, 3).float()).double()
    matrices = matrices.view(B, C, 4, 4)[image_of]  # (n, C, 4, 4)
    h = heights.double()[:, None].expand(-1, C)
    xz = unproject_to_plane(uv.double()[:, None].expand(-1, C, 2), matrices, h)
    centres = torch.stack([xz[..., 0], h, xz[..., 1]], dim=-1)
    depth = view_depths(world, centres, candidates[image_of]).clamp_min(1e-3)
    return torch.log(h / depth)


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
