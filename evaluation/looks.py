"""A test set under other looks: what a camera or another renderer would have written.

Image-space looks (tone curves, exposure, white balance, colour shift, noise, blur, JPEG)
change the data set's images; the anti-aliasing and light looks redraw its scenes: at 4x
the size averaged down (supersampled edges), or under another light. Every look's output
is quantised to 8 bits, as a saved image would be.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from air3d.model.augment import LOOKS, light_looks
from air3d.renderer import Scene, SceneRenderer, ShapeLibrary, World

SUPERSAMPLING = 4  # the anti-aliased look: rendered at 4x the size, averaged 4x4


def look_names(world: World) -> list[str]:
    """Every look, "clean" (the data set as it is) first."""
    return ["clean", *LOOKS, "antialias-4x", *light_looks(world.light)]


def images_under_look(
    name: str,
    images: torch.Tensor,
    scenes: list[Scene],
    world: World,
    shapes: ShapeLibrary,
    batch_size: int = 250,
) -> torch.Tensor:
    """The data set's images (n, 3, S, S) in [0, 1] (rendered from `scenes` in `world`) as
    look `name` shows them."""
    lights = light_looks(world.light)
    if name == "clean":
        return images
    if name in LOOKS:
        return _quantise(LOOKS[name](images))
    if name == "antialias-4x":
        big = replace(world, image_size=world.image_size * SUPERSAMPLING)
        drawn = _render(scenes, big, shapes, batch_size)
        return _quantise(torch.nn.functional.avg_pool2d(drawn, SUPERSAMPLING))
    if name in lights:
        return _quantise(_render(scenes, replace(world, light=lights[name]), shapes, batch_size))
    raise ValueError(f"unknown look {name!r}; known: {', '.join(look_names(world))}")


def _render(scenes: list[Scene], world: World, shapes: ShapeLibrary, batch_size: int):
    renderer = SceneRenderer(world, shapes)
    with torch.no_grad():
        chunks = [
            renderer.render_scenes(scenes[start : start + batch_size], "crisp").cpu()
            for start in range(0, len(scenes), batch_size)
        ]
    return torch.cat(chunks)


def _quantise(images: torch.Tensor) -> torch.Tensor:
    return (images.clamp(0, 1) * 255).round() / 255
