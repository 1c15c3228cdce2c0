"""How well an answer explains its image: the fit score and the "not a scene" flag.

An answer is a scene; the renderer draws it (crisp, at the model's input size, the whole
batch in one call) and the pixel likelihood the model was trained against says how well
the drawing explains the image: log N(x; render(z), sigma^2 I), averaged over pixels and
channels (`log_likelihood_per_pixel`; at most -log(sigma) - log(2 pi) / 2, 1.38 at the
shipped sigma 0.1, for a perfect drawing). Like refinement (model/refine.py), the image is
first taken through the tone curve, of `tone_gammas`, that best explains the answer: an
image saved with an sRGB curve is still a scene of this world.

The raw value means little by itself (what is "good" depends on the world and the model),
so a `Calibration` (model/calibration.py), computed on valid scenes drawn from the prior
and stored in the checkpoint, turns it into `score`: the fraction of valid scenes whose
answer fits worse (uniform in [0, 1] over valid scenes; near 0 for images the world cannot
explain), and flags `not_a_scene` below the calibration's threshold. Without a calibration
the answer carries the raw value only, says `calibrated: false`, and flags nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from air3d.renderer import SceneBatch, SceneRenderer, ShapeLibrary, World

if TYPE_CHECKING:
    from air3d.model.calibration import Calibration

DEFAULT_TONE_GAMMAS = (1.0, 1.8, 2.2, 2.4)  # as RefineConfig: linear, then common tone curves


@dataclass(frozen=True)
class Fit:
    """How well one answer explains its image (plain data: pickles, and JSON via to_json)."""

    log_likelihood_per_pixel: float  # mean log N(x; render, sigma^2) over pixels and channels
    score: float | None  # fraction of valid calibration scenes that fit worse; None: uncalibrated
    not_a_scene: bool  # below the calibration's threshold (never set when uncalibrated)

    @property
    def calibrated(self) -> bool:
        return self.score is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "log_likelihood_per_pixel": self.log_likelihood_per_pixel,
            "not_a_scene": self.not_a_scene,
            "calibrated": self.calibrated,
        }


class FitScorer:
    """Takes images (B, 3, S, S) and answers (SceneBatch, B scenes) to their Fits."""

    def __init__(
        self,
        world: World,
        shapes: ShapeLibrary,
        calibration: Calibration | None = None,
        device: torch.device | str = "cpu",
        tone_gammas: tuple[float, ...] = DEFAULT_TONE_GAMMAS,
        renderer: SceneRenderer | None = None,
    ):
        """renderer: a crisp renderer of this world to share (None: one of its own)."""
        self.calibration = calibration
        # A calibration fixes the tone curves it was computed with: the same raw value must
        # mean the same thing when it is looked up.
        self.tone_gammas = calibration.tone_gammas if calibration else tuple(tone_gammas)
        if not self.tone_gammas or min(self.tone_gammas) <= 0:
            raise ValueError(f"tone_gammas must be positive, got {list(self.tone_gammas)}")
        self.renderer = renderer or SceneRenderer(world, shapes, device)
        self.pixel_sigma = world.pixel_sigma

    @torch.no_grad()
    def log_likelihood_per_pixel(
        self, images: torch.Tensor, batch: SceneBatch, rendered: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(B,): max over tone curves of the mean per-value log N(x^gamma; render, sigma^2).
        rendered: the batch's crisp drawing (B, 3, S, S) where the caller has it already."""
        images = images.to(self.renderer.device, torch.float32).clamp(0.0, 1.0)
        if rendered is None:
            rendered = self.renderer(batch.to(self.renderer.device), "crisp")  # (B, 3, S, S)
        rendered = rendered.to(images)
        if images.shape != rendered.shape:
            raise ValueError(
                f"images {tuple(images.shape[1:])} do not match the world's renders "
                f"{tuple(rendered.shape[1:])}"
            )
        # renderer.gaussian_log_likelihood per value, in one vectorised pass over all the tone
        # curves instead of a call per curve: the best curve has the least squared error.
        gammas = torch.tensor(self.tone_gammas, device=images.device).view(-1, 1, 1, 1, 1)
        error = (images**gammas - rendered).square().flatten(2).mean(2).amin(0)  # (B,)
        sigma = self.pixel_sigma
        return (-0.5 * error / sigma**2 - math.log(sigma) - 0.5 * math.log(2 * math.pi)).cpu()

    def assess(
        self, images: torch.Tensor, batch: SceneBatch, rendered: torch.Tensor | None = None
    ) -> list[Fit]:
        values = self.log_likelihood_per_pixel(images, batch, rendered)
        return [self.fit(v) for v in values.tolist()]

    def fit(self, log_likelihood_per_pixel: float) -> Fit:
        if self.calibration is None:
            return Fit(log_likelihood_per_pixel, None, False)
        return Fit(
            log_likelihood_per_pixel,
            self.calibration.score(log_likelihood_per_pixel),
            self.calibration.not_a_scene(log_likelihood_per_pixel),
        )
