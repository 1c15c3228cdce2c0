"""Our renderer's look against Blender's in a world with attributes (the clevr world).

    .venv/bin/python benchmarks/blender_look.py [--world clevr] [--samples 32]
        [--candidate PATH ...]

One large object of every kind (shape x colour x material) alone at the centre, and the
bare floor, drawn by Blender (renderer/blender.py, at the frame's size, averaged in linear
light down to our canvas's frame rows) and by our renderer (crisp) in the world and in
each --candidate world (a folder or world.yaml with other look values: light, ground,
background, materials). Prints a Markdown table of mean absolute sRGB differences: the
floor (below the frame's top quarter), each material's mean colour over the object's
pixels, and whole images. The scenes are the same for every column; only the look varies.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import torch
import torch.nn.functional as F

from air3d.renderer import WORLD_HELP, Scene, SceneObject, SceneRenderer, open_world
from air3d.renderer.blender import BlenderConfig, BlenderRenderer


def kinds_alone(world, shapes) -> dict[str, Scene]:
    """The bare floor, and each large kind alone at the centre (30 degrees of yaw)."""
    scenes = {"floor": Scene()}
    for spec in shapes.specs:
        values = dict(spec.attributes)
        if values.get("size", "large") != "large" and "large" in dict(shapes.factors)["size"]:
            continue
        position = (0.0, spec.height / 2, 0.0)
        scenes[spec.label] = Scene((SceneObject(spec.name, position, 30.0, spec.attributes),))
    return scenes


def blender_frames(world, shapes, scenes, samples: int) -> dict[str, torch.Tensor]:
    renderer = BlenderRenderer(world, shapes, BlenderConfig(samples=samples))
    first, last = world.frame_rows
    frames = {}
    for label, scene in scenes.items():
        linear = renderer.render_one(scene)[None] ** world.tone.gamma
        pooled = F.interpolate(linear, size=(last - first, world.image_size), mode="area")
        frames[label] = pooled[0] ** (1 / world.tone.gamma)
    return frames


def differences(world, shapes, scenes, reference) -> dict[str, float]:
    """Mean absolute sRGB differences of our crisp renders from the reference frames."""
    first, last = world.frame_rows
    with torch.no_grad():
        drawn = SceneRenderer(world, shapes).render_scenes(list(scenes.values()), "crisp")
    ours = dict(zip(scenes, drawn[:, :, first:last], strict=True))
    # object pixels: where our unshadowed render differs from the bare floor, eroded by one
    unshadowed = replace(world, light=replace(world.light, shadow=0.0))
    with torch.no_grad():
        plain = SceneRenderer(unshadowed, shapes).render_scenes(list(scenes.values()), "crisp")
    plain = dict(zip(scenes, plain[:, :, first:last], strict=True))
    top = (last - first) // 4
    out = {"floor": (ours["floor"][:, top:] - reference["floor"][:, top:]).abs().mean().item()}
    per_material: dict[str, list[float]] = {}
    for label, scene in scenes.items():
        if not scene.objects:
            continue
        mask = ((plain[label] - plain["floor"]).abs().amax(0) > 0.02).float()[None, None]
        mask = (-F.max_pool2d(-mask, 3, 1, 1))[0, 0] > 0.5
        gap = (ours[label][:, mask].mean(1) - reference[label][:, mask].mean(1)).abs().mean()
        material = dict(scene.objects[0].attributes).get("material", "all")
        per_material.setdefault(material, []).append(gap.item())
    out |= {f"{m} colour": sum(v) / len(v) for m, v in per_material.items()}
    out["whole image"] = sum((ours[k] - reference[k]).abs().mean().item() for k in scenes) / len(
        scenes
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", default="clevr", help=WORLD_HELP)
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--candidate", nargs="*", default=[], help="worlds with other looks")
    args = parser.parse_args()
    torch.set_num_threads(1)
    world, shapes = open_world(args.world)
    scenes = kinds_alone(world, shapes)
    reference = blender_frames(world, shapes, scenes, args.samples)
    columns = {args.world: differences(world, shapes, scenes, reference)}
    for candidate in args.candidate:
        other, other_shapes = open_world(candidate)
        columns[candidate] = differences(other, other_shapes, scenes, reference)
    rows = list(next(iter(columns.values())))
    print(f"{len(scenes) - 1} kinds alone + the bare floor; Blender {args.samples} samples\n")
    print("| mean abs sRGB difference from Blender | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for row in rows:
        print(f"| {row} | " + " | ".join(f"{c[row]:.3f}" for c in columns.values()) + " |")


if __name__ == "__main__":
    main()
