"""The sleep stage's data: prior samples rendered once (crisp), cached on disk, sliced by step.

With a light probability (AugmentConfig.light_probability) chunks of the pool are rendered
each under its own random light (model/augment.py): the same cost as one light, since every
scene is rendered once either way. With a scene look probability
(AugmentConfig.scene_look_probability) small chunks are each drawn under a whole random
render look (augment.random_look: lamps, shadows, gloss, floor, background, tone)."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from air3d.model.augment import AugmentConfig, random_light, random_look
from air3d.renderer import Scene, SceneBatch, SceneRenderer, ShapeLibrary, World
from air3d.renderer.visibility import sample_visible_scenes


@dataclass
class ScenePool:
    """Prior samples rendered once: images (n, 3, S, S) uint8 and their latents (with each
    scene's eye in a world with camera jitter: the camera latent's sleep target)."""

    images: torch.Tensor
    latents: SceneBatch

    @classmethod
    def cached(
        cls,
        n: int,
        seed: int,
        world: World,
        shapes: ShapeLibrary,
        renderer: SceneRenderer,
        cache_dir: str | None,
        looks: AugmentConfig | None = None,
    ) -> ScenePool:
        """Like sample(), but kept in cache_dir keyed by everything that shapes the pool, so
        that resumed and repeated runs skip the rendering (minutes for 60k scenes on CPU)."""
        if cache_dir is None:
            return cls.sample(n, seed, world, shapes, renderer, looks)
        parts: list = [n, seed, world.to_dict(), shapes.to_dict()]
        if looks is not None and looks.light_probability > 0:
            parts.append([looks.light_probability, looks.strength, looks.light_chunk])
        if looks is not None and looks.scene_look_probability > 0:
            parts.append(
                [looks.scene_look_probability, looks.scene_look_chunk, looks.scene_look_strength]
            )
        key = json.dumps(parts, sort_keys=True)
        path = Path(cache_dir) / f"pool-{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"
        if path.exists():
            data = torch.load(path, weights_only=True)
            return cls(data["images"], SceneBatch(*data["latents"]))
        pool = cls.sample(n, seed, world, shapes, renderer, looks)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        torch.save({"images": pool.images, "latents": list(batch_tensors(pool.latents))}, tmp)
        os.replace(tmp, path)
        return pool

    @classmethod
    def sample(
        cls,
        n: int,
        seed: int,
        world: World,
        shapes: ShapeLibrary,
        renderer: SceneRenderer,
        looks: AugmentConfig | None = None,
    ) -> ScenePool:
        scenes = sample_visible_scenes(renderer, n, seed)  # sample_scenes' unless min_visible
        images = render_under_looks(renderer, scenes, seed, looks)
        return cls(images, SceneBatch.from_scenes(scenes, shapes, world.max_objects))

    @classmethod
    def zeros(cls, n: int, like: ScenePool) -> ScenePool:
        """n empty entries shaped as `like`'s (to be written over)."""
        images = like.images.new_zeros((n, *like.images.shape[1:]))
        tensors = (t.new_zeros((n, *t.shape[1:])) for t in batch_tensors(like.latents))
        return cls(images, SceneBatch(*tensors))

    def batch(self, index: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, SceneBatch]:
        images = self.images[index].to(device, torch.float32) / 255.0
        latents = SceneBatch(*(t[index] for t in batch_tensors(self.latents)))
        return images, latents.to(device)


def render_under_looks(
    renderer: SceneRenderer, scenes: list[Scene], seed: int, looks: AugmentConfig | None
) -> torch.Tensor:
    """Scenes rendered crisp to uint8 images (n, 3, S, S) at the renderer's size, chunks of
    them under random lights or whole random looks as `looks` says (seeded)."""
    world, shapes = renderer.world, renderer.shapes
    lit = looks is not None and looks.light_probability > 0
    looked = looks is not None and looks.scene_look_probability > 0
    chunk = looks.scene_look_chunk if looked else looks.light_chunk if lit else 256
    generator = torch.Generator().manual_seed(seed + 104_729)
    looker = torch.Generator().manual_seed(seed + 7_919)  # the looks' own draws
    chunks = []
    with torch.no_grad():
        for start in range(0, len(scenes), chunk):
            draw = renderer
            if looked and float(torch.rand(1, generator=looker)) < looks.scene_look_probability:
                look = random_look(world, shapes, looker, looks.scene_look_strength)
                draw = SceneRenderer(*look, renderer.device)
            elif lit and float(torch.rand(1, generator=generator)) < looks.light_probability:
                light = random_light(world.light, generator, looks.strength)
                draw = SceneRenderer(replace(world, light=light), shapes, renderer.device)
            rendered = draw.render_scenes(scenes[start : start + chunk], "crisp")
            chunks.append((rendered * 255).round().to(torch.uint8).cpu())
    return torch.cat(chunks) if chunks else torch.zeros(0, 3, 1, 1, dtype=torch.uint8)


def batch_tensors(batch: SceneBatch) -> tuple[torch.Tensor, ...]:
    """A SceneBatch's fields in constructor order (for slicing and saving); the eye (each
    scene's camera) last, only where the batch has one. A pool saved before the eye was kept
    holds four tensors and loads with eye None."""
    fields = (batch.shape, batch.present, batch.xz, batch.yaw)
    return fields if batch.eye is None else (*fields, batch.eye)
