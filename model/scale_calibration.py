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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy.optimize import minimize

from air3d.model.camera_fit import expected_log_scales, eye_grid
from air3d.model.centre_refiner import CentreRefiner, fine_world
from air3d.renderer import SceneRenderer, World
from air3d.renderer.prior import sample_scenes

if TYPE_CHECKING:
    from air3d.model.predictor import Predictor

EVIDENCE_GRID = 31  # eyes per axis (distance, elevation) over which each image's evidence sums
MIN_OBJECTS = 20  # fewer read objects than this say too little about a bias
REFERENCE_SCENES = 200  # our renders the reference is measured on: its bias to about 0.15%
REFERENCE_SEED = 20_000  # of the reference's prior scenes, apart from training's seeds
# Calibrating to the images at hand (infer, evaluate: --calibrate-scales auto): on at most
# SAMPLE_IMAGES of them, spread over the set, and only on sets of MIN_IMAGES or more.
SAMPLE_IMAGES = 200
MIN_IMAGES = 32


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

    def as_reference(self, refiner: CentreRefiner) -> dict[str, float]:
        """This calibration, measured on our renders, as the refiner's `scale_evidence`:
        what later calibrations to other images are relative to (with the noise that the
        refiner's labelled scale_noise corresponds to)."""
        return {"bias": self.bias, "noise": self.noise, "labelled_noise": refiner.scale_noise}

    def apply(self, refiner: CentreRefiner) -> tuple[float, float]:
        """The refiner reads its scales less the bias, and the camera fit expects the noise,
        both relative to the refiner's `scale_evidence` (the same measure on our renders,
        where the refiner's scale_reference and scale_noise were measured with labels), so
        that the measure's own small offsets (the prior's shape, q's misreadings) cancel.
        Returns (the bias removed, the noise's factor). Applying it again on images the
        refiner already reads as calibrated removes nothing more."""
        reference = refiner.scale_evidence
        if reference is None:
            raise ValueError(
                "the refiner has no reference measure on our renders: run "
                "`air3d calibrate-scales --checkpoint C` without --images first"
            )
        shift = self.bias - reference["bias"]
        factor = self.noise / reference["noise"]
        refiner.scale_reference -= shift
        refiner.scale_noise = reference["labelled_noise"] * factor
        return shift, factor


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


def measure_scales(predictor: Predictor, batches: Iterable[torch.Tensor]) -> ScaleCalibration:
    """The predictor's scales calibrated on batches of images (B, 3, S, S) on its canvas;
    ValueError if it reads no scales (no refiner that reads them, or a world whose camera
    does not jitter) or too few objects."""
    parts: list[ScaleReadings] = []
    for images in batches:
        part = predictor.scale_readings(images)
        if part is None:
            raise ValueError(
                "this model reads no scales (it has no centre refiner that reads them, or "
                "its world's camera does not jitter): there is nothing to calibrate"
            )
        parts.append(part)
    if not parts:
        raise ValueError("no images to calibrate the scales on")
    assert predictor.centres is not None
    readings = ScaleReadings.cat(parts)
    return calibrate_scales(readings, predictor.world, predictor.centres.scale_noise)


def reference_batches(
    predictor: Predictor, n: int = REFERENCE_SCENES, batch: int = 20
) -> Iterator[torch.Tensor]:
    """n prior scenes of the predictor's world, drawn by our renderer on its canvas, each
    from its own camera, in batches: the images the reference is measured on."""
    world, shapes = predictor.world, predictor.shapes
    renderer = SceneRenderer(fine_world(world, predictor.canvas.size), shapes)
    scenes = sample_scenes(world, shapes, n, REFERENCE_SEED)
    for start in range(0, n, batch):
        with torch.no_grad():
            yield renderer.render_scenes(scenes[start : start + batch])


def can_calibrate(predictor: Predictor) -> bool:
    """Whether the predictor reads scales and holds the reference to calibrate them by."""
    centres = predictor.centres
    return (
        centres is not None
        and centres.reads_scale
        and centres.scale_evidence is not None
        and predictor.world.camera.jitter > 0
    )


def calibration_sample(predictor: Predictor, n: int) -> list[int]:
    """Which of a set of n images `--calibrate-scales auto` calibrates on: up to
    SAMPLE_IMAGES spread over them, where the predictor can calibrate and the set holds
    MIN_IMAGES or more; none otherwise."""
    return sample_evenly(n) if can_calibrate(predictor) and n >= MIN_IMAGES else []


def sample_evenly(n: int, k: int = SAMPLE_IMAGES) -> list[int]:
    """At most k of n indices, spread evenly over them (all n where n <= k)."""
    return sorted({i * n // k for i in range(k)}) if n > k else list(range(n))


def calibrate_to(predictor: Predictor, batches: Iterable[torch.Tensor]) -> str:
    """Calibrates the predictor's scales, in memory, to the images in `batches`; a line
    that says what it did, or why it did nothing (too few objects to go by)."""
    assert predictor.centres is not None
    try:
        calibration = measure_scales(predictor, batches)
    except ValueError as error:
        return f"scales not calibrated to these images: {error}"
    shift, factor = calibration.apply(predictor.centres)
    return (
        f"scales calibrated to {calibration.objects} objects in {calibration.images} of these "
        f"images: bias {shift:+.4f} (log scale), noise x{factor:.2f} (relative to our renders)"
    )
