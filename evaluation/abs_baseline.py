"""Analysis by synthesis without q: what a user would run without the inference network.

For each image and each object count k = 0..max_count, search for the scene that best
explains the image under the same generative model AIR is trained against:

1. Proposals: the best scenes found with k - 1 objects, each extended by one new object
   at a position and yaw drawn from the prior, `proposals` times, in every shape; the
   extensions are screened by crisp rendering and the best `restarts` of them kept.
   (A departure from independent prior restarts of all k objects at once: a random
   3-object scene almost never overlaps the truth well enough for gradients to find it;
   growing the scene one object at a time does, at a similar cost.)
2. Gradient ascent: Adam on every object's (x, z) and yaw, all restarts as one batch,
   through the soft renderer's `gaussian_log_likelihood`. To widen the basin of
   attraction it runs on renders `render_size` pixels wide and, early on, on blurred
   images (coarse to fine: the blur is annealed to none).
3. Shapes: during and after the ascent each object tries every shape in turn, keeping the
   one that scores best (the renderer has no gradient with respect to the shape).
4. Choice: the final scenes are scored at full size with crisp renders by log p(x | z) +
   log p(z) (a MAP choice), and the best over all counts and restarts wins.

The prior's minimum separation between objects is part of log p(z) (scenes that break
it score -inf): without it a second object hidden inside the first one can buy a few
pixels of likelihood.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from air3d.renderer import Scene, SceneBatch, SceneRenderer, ShapeLibrary, World
from air3d.renderer.prior_density import PriorDensity
from air3d.renderer.search import SceneSearch, cat_objects, empty_scene, take


@dataclass(frozen=True)
class AbsConfig:
    restarts: int = 3  # scenes per object count carried into gradient ascent
    proposals: int = 32  # prior draws screened for each new object, per carried scene
    steps: int = 24  # Adam steps per object count, at render_size
    refine_steps: int = 6  # then Adam steps at full size on the best scene of the count
    lr: float = 0.04  # Adam step size: world units for x and z, radians for yaw
    render_size: int = 32  # the ascent renders images this many pixels wide (cheaper)
    faces_per_pixel: int = 3  # soft rendering in the ascent (the scene config's is for training)
    blur_px: float = 1.5  # Gaussian blur (pixels at render_size) at the first step ...
    blur_until: float = 0.6  # ... annealed linearly to none at this fraction of the steps
    shape_sweeps: int = 1  # shape sweeps during the ascent (one more always follows it)
    max_count: int | None = None  # largest count tried; None: the world's max_objects
    greedy_stop: bool = True  # stop adding objects once one more lowers the best score
    seed: int = 0  # for the prior draws

    def __post_init__(self) -> None:
        for name in ("restarts", "proposals", "render_size", "faces_per_pixel"):
            if getattr(self, name) < 1:
                raise ValueError(f"AbsConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("steps", "refine_steps", "shape_sweeps"):
            if getattr(self, name) < 0:
                raise ValueError(f"AbsConfig.{name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class AbsInference:
    """The best scene found for one image, and the score of the best scene of each count."""

    best: Scene
    log_joint: float  # log p(x | z) + log p(z) of `best`
    log_joint_by_count: tuple[float | None, ...]  # index k: best with k objects (None: not tried)

    def scene(self) -> Scene:
        return self.best

    def to_json(self) -> dict[str, Any]:
        return {**self.best.to_json(), "count": len(self.best.objects)}


class AbsPredictor:
    """Analysis by synthesis with the Predictor interface, so that `evaluate` can score it.

    Images are fitted one at a time (each fit is batched over its restarts).
    """

    name = "analysis-by-synthesis"
    checkpoint_hash = None

    def __init__(
        self,
        world: World,
        shapes: ShapeLibrary,
        config: AbsConfig | None = None,
        device: torch.device | str = "cpu",
    ):
        self.world, self.shapes = world, shapes
        self.config = config or AbsConfig()
        self.device = torch.device(device)
        self.image_size = world.image_size
        self.max_count = (
            world.max_objects if self.config.max_count is None else self.config.max_count
        )
        self._rng = np.random.default_rng(self.config.seed)
        self._prior = PriorDensity(world, shapes, self.max_count)
        self._full = SceneSearch(SceneRenderer(world, shapes, self.device), self._prior)
        rendering = replace(world.rendering, soft_faces_per_pixel=self.config.faces_per_pixel)
        low = replace(world, image_size=self.config.render_size, rendering=rendering)
        self._low = SceneSearch(SceneRenderer(low, shapes, self.device), self._prior)

    def warmup(self) -> None:
        with torch.no_grad():
            self._full.renderer(SceneBatch.from_scenes([Scene()], self.shapes), "crisp")

    def infer(self, images: torch.Tensor) -> list[AbsInference]:
        expected = (3, self.image_size, self.image_size)
        if images.dim() != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(f"images must be (B, {expected}) floats; got {tuple(images.shape)}")
        return [self.fit(image) for image in images]

    def fit(self, image: torch.Tensor) -> AbsInference:
        """Takes one image (3, S, S) to the best scene found for it."""
        target = image[None].to(self.device, torch.float32)  # (1, 3, S, S)
        target_low = F.interpolate(target, size=self.config.render_size, mode="area")
        carried = empty_scene(self.device)
        best: list[tuple[float, SceneBatch]] = [(self._score(carried, target)[0].item(), carried)]
        for _ in range(self.max_count):
            carried, score, scene = self._fit_count(carried, target, target_low)
            best.append((score, scene))
            if self.config.greedy_stop and score < best[-2][0]:
                break
        scores = [score for score, _ in best]
        k = int(np.argmax(scores))
        scene = best[k][1].to("cpu").to_scenes(self.shapes)[0]
        by_count = tuple(scores) + (None,) * (self.max_count + 1 - len(scores))
        return AbsInference(scene, scores[k], by_count)

    def _fit_count(
        self, carried: SceneBatch, target: torch.Tensor, target_low: torch.Tensor
    ) -> tuple[SceneBatch, float, SceneBatch]:
        """One object more than the `carried` scenes: the candidates to carry on (best
        first), and the best scene refined at full size with its score."""
        cfg = self.config
        candidates = self._propose(carried, target_low)
        candidates = self._low.ascend(
            candidates, target_low, cfg.steps, cfg.lr, cfg.blur_px, cfg.blur_until, cfg.shape_sweeps
        )
        candidates = self._full.sweep_shapes(candidates, target)
        scores = self._score(candidates, target)
        candidates = take(candidates, scores.argsort(descending=True))
        best, best_score = take(candidates, [0]), scores.max().item()
        refined = self._full.ascend(
            best, target, cfg.refine_steps, cfg.lr, shape_sweeps=cfg.shape_sweeps
        )
        refined = self._full.sweep_shapes(refined, target)
        refined_score = self._score(refined, target)[0].item()
        if refined_score >= best_score:  # Adam may overshoot: keep whichever is better
            best, best_score = refined, refined_score
        return candidates, best_score, best

    def _score(self, batch: SceneBatch, target: torch.Tensor) -> torch.Tensor:
        """log p(x | z) + log p(z) at full size, (B,)."""
        return self._full.score(batch, target)

    def _propose(self, carried: SceneBatch, target_low: torch.Tensor) -> SceneBatch:
        """Each carried scene plus one new object drawn from the prior, `proposals` times in
        every shape; the best `restarts` of them by crisp low-resolution score."""
        P, S = self.config.proposals, len(self.shapes)
        rows = torch.arange(len(carried), device=self.device).repeat_interleave(P * S)
        new = self._prior.sample_objects(len(carried) * P, self._rng, self.device)
        new = take(new, torch.arange(len(new), device=self.device).repeat_interleave(S))
        new.shape[:, 0] = torch.arange(S, device=self.device).repeat(len(carried) * P)
        grown = cat_objects(take(carried, rows), new)
        scores = self._low.score(grown, target_low)
        keep = scores.argsort(descending=True)[: self.config.restarts]
        return take(grown, keep)
