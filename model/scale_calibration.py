"""The camera fit's apparent scales, calibrated on unlabeled images of another renderer.

The CentreRefiner learns to read each object's apparent scale log(h / z) on our renderer's
images (model/centre_refiner.py), and the camera fit reads each image's eye from those
scales (model/camera_fit.py). On another renderer's images the scales come out a little off:
on CLEVR's Blender images the refiner reads objects 1.9% smaller than they are, with twice the
spread (2.9% robust std against 1.5%). A bias moves every image's fitted eye the same way:
1.9% of the eye's distance (11.3) is 0.21, most of the prior's spread of distances (0.28).

Both show without labels. The world's prior says how the eyes spread; under the right bias
and noise the images' measured scales are the most probable (empirical Bayes): each image's
likelihood of its scales, integrated over the prior's eyes on a grid (the evidence), summed
over the images. `calibrate_scales` finds the bias and the noise (the camera fit's Cauchy
scale) that maximise it; `ScaleCalibration.apply` writes them into the refiner. Some dozens of
images fix the bias to a fraction of a percent: the evidence of n images pins the mean eye
to the prior's spread over sqrt(n).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import minimize

from air3d.model.camera_fit import expected_log_scales, eye_grid
from air3d.model.centre_refiner import CentreRefiner
from air3d.renderer import World

EVIDENCE_GRID = 31  # eyes per axis (distance, elevation) over which each image's evidence sums
MIN_OBJECTS = 20  # fewer read objects than this say too little about a bias


@dataclass(frozen=True)
class ScaleReadings:
    """What the camera fit reads in a set of images: n objects' image points uv (n, 2) in
    [-1, 1], centre heights (n,), log scales as the refiner reads them (n,), the image each
    is in (n,), and the images' starting eyes (B, 3) (whose azimuths the fit keeps)."""

    uv: torch.Tensor
    heights: torch.Tensor
    log_scales: torch.Tensor
    image_of: torch.Tensor
    eyes: torch.Tensor

    @classmethod
    def cat(cls, parts: list[ScaleReadings]) -> ScaleReadings:
        """The readings of several batches of images, as one set."""
        offsets = np.cumsum([0] + [len(p.eyes) for p in parts[:-1]])
        return cls(
            torch.cat([p.uv for p in parts]),
            torch.cat([p.heights for p in parts]),
            torch.cat([p.log_scales for p in parts]),
            torch.cat([p.image_of + int(o) for p, o in zip(parts, offsets, strict=True)]),
            torch.cat([p.eyes for p in parts]),
        )


@dataclass(frozen=True)
class ScaleCalibration:
    """The refiner's read log scales less their true values, on average (`bias`), and the
    Cauchy scale of what is left (`noise`), measured on `images` images (`objects` objects);
    `evidence_gain`: log evidence per image over the refiner's own (no bias, its noise)."""

    bias: float
    noise: float
    images: int
    objects: int
    evidence_gain: float

    def apply(self, refiner: CentreRefiner, reference: ScaleCalibration) -> None:
        """The refiner reads its scales less the bias, and the camera fit expects the noise,
        both relative to the `reference` (the same measure on our renderer's images, where
        the refiner's own scale_reference and scale_noise were measured with labels): the
        measure's own small offsets (the prior's shape, q's misreadings) cancel."""
        refiner.scale_reference -= self.bias - reference.bias
        refiner.scale_noise *= self.noise / reference.noise


def calibrate_scales(readings: ScaleReadings, world: World, noise: float) -> ScaleCalibration:
    """The bias and noise that make the readings most probable under the world's prior of
    eyes; `noise` is the refiner's own (where the search starts). ValueError when the
    images hold fewer than MIN_OBJECTS read objects."""
    if len(readings.uv) < MIN_OBJECTS:
        raise ValueError(
            f"calibrating the scales needs at least {MIN_OBJECTS} objects; the images hold "
            f"{len(readings.uv)}: give it more images (some dozens)"
        )
    log_evidence = evidence(readings, world)

    def negative(params: np.ndarray) -> float:
        return -log_evidence(float(params[0]), math.exp(float(params[1])))

    start = np.array([0.0, math.log(noise)])
    best = minimize(negative, start, method="Nelder-Mead", options={"xatol": 1e-4, "fatol": 1e-3})
    bias, fitted_noise = float(best.x[0]), math.exp(float(best.x[1]))
    images = int(readings.image_of.unique().numel())
    gain = (negative(start) - float(best.fun)) / images
    return ScaleCalibration(bias, fitted_noise, images, len(readings.uv), gain)


def evidence(readings: ScaleReadings, world: World):
    """(bias, noise) -> the log evidence of the readings' scales (summed over their images,
    up to a constant): each image's Cauchy likelihood of its scales, corrected by the bias,
    integrated over a grid of the prior's eyes."""
    candidates, prior_cost = eye_grid(world, readings.eyes, EVIDENCE_GRID)
    # The geometry does not depend on bias or noise: each object's log scale under each
    # candidate eye is computed once.
    expected = expected_log_scales(
        world, candidates, readings.uv, readings.heights, readings.image_of
    )
    residual = expected - readings.log_scales.double()[:, None]  # (n, C)
    image_of = readings.image_of
    B = len(readings.eyes)

    def log_evidence(bias: float, noise: float) -> float:
        per_object = -torch.log1p(((residual + bias) / noise) ** 2) - math.log(math.pi * noise)
        per_image = torch.zeros(B, residual.shape[1], dtype=torch.float64)
        per_image.index_add_(0, image_of, per_object)
        return float(torch.logsumexp(per_image - prior_cost, dim=1)[image_of.unique()].sum())

    return log_evidence
