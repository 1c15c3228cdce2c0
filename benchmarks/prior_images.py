"""Images of prior scenes for the benchmarks that time q and the Predictor on them."""

from __future__ import annotations

import torch

from air3d.model import Predictor
from air3d.renderer import SceneBatch, SceneRenderer
from air3d.renderer.prior import sample_scenes


def prior_images(predictor: Predictor, n: int, seed: int = 0) -> torch.Tensor:
    """n scenes drawn from the predictor's world prior, rendered crisp: (n, 3, S, S)."""
    world, shapes = predictor.world, predictor.shapes
    scenes = sample_scenes(world, shapes, n, seed)
    with torch.no_grad():
        return SceneRenderer(world, shapes)(SceneBatch.from_scenes(scenes, shapes))
