"""Our renderer's look against Blender's in a world with attributes (the clevr world).

    .venv/bin/python benchmarks/blender_look.py [--world clevr] [--samples 32]
        [--candidate PATH ...] [--scenes 8 --seed 0] [--iou] [--cache DIR]

One large object of every kind (shape x colour x material) alone at the centre, and the
bare floor, drawn by Blender (renderer/blender.py, at the frame's size, averaged in linear
light down to our canvas's frame rows) and by our renderer (crisp) in the world and in
each --candidate world (a folder or world.yaml with other look values: light, ground,
background, materials). Prints a Markdown table of mean absolute sRGB differences: the
floor (below the frame's top quarter), each material's mean colour over the object's
pixels, and whole images. The scenes are the same for every column; only the look varies.

`--scenes N` adds a row: whole-image difference on N prior scenes (drawn with --seed, each
object visible as the prior requires). `--iou` adds a table of silhouette IoU per object:
each shape at each size alone at three places and yaws, Blender's coverage (a mask render,
8 samples) against our crisp coverage at Blender's 320x240 and at our canvas's frame,
IoU = sum(min) / sum(max) of the two coverages; and the masks' IoU at 320x240 (Blender's
coverage cut at 0.5: its anti-aliased edge pixels no longer count against a crisp mask).
`--cache DIR` keeps Blender's renders (keyed by the scene, the samples, the mask and what
Blender reads of the world: `blender_reads`), so that a second run renders nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

from air3d.renderer import WORLD_HELP, Scene, SceneBatch, SceneObject, SceneRenderer, open_world
from air3d.renderer.blender import BlenderConfig, BlenderRenderer
from air3d.renderer.visibility import sample_visible_scenes
from air3d.renderer.world import PBR_KEYS

# Where each shape and size stands for the silhouette IoU: ground (x, z) and yaw (degrees)
IOU_PLACES = (((0.0, 0.0), 30.0), ((-2.0, -1.5), 65.0), ((2.0, 2.0), 10.0))
MASK_SAMPLES = 8  # a coverage render needs few samples


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


def prior_scenes(world, shapes, n: int, seed: int) -> dict[str, Scene]:
    """n prior scenes (seeded), each object visible as the world's prior requires."""
    scenes = sample_visible_scenes(SceneRenderer(world, shapes), n, seed)
    return {f"prior-{seed}-{i}": scene for i, scene in enumerate(scenes)}


def silhouette_scenes(world, shapes) -> dict[str, Scene]:
    """Each shape at each size alone at IOU_PLACES (the first colour and material)."""
    scenes = {}
    for spec in shapes.specs:
        values = dict(spec.attributes)
        firsts = {name: names[0] for name, names in shapes.factors[1:] if name != "size"}
        if any(values.get(name) != first for name, first in firsts.items()):
            continue
        for i, ((x, z), yaw) in enumerate(IOU_PLACES):
            obj = SceneObject(spec.name, (x, spec.height / 2, z), yaw, spec.attributes)
            scenes[f"{values.get('size', '')} {spec.name} @{i}".strip()] = Scene((obj,))
    return scenes


def blender_reads(world) -> dict:
    """What Blender's image depends on in a world lit by lamps (the cache's key): not our
    light, ground, shading, nor our materials' albedo, highlight and mirror."""
    data = world.to_dict()
    if not world.lamps:
        return data
    keep = ("camera", "lamps", "tone", "frame", "image_size")
    out = {name: data[name] for name in keep}
    for name, values in data["attributes"].items():
        if name == "material":
            values = {v: {k: x for k, x in m.items() if k in PBR_KEYS} for v, m in values.items()}
        out[name] = values
    return out


class BlenderCache:
    """Blender's renders of scenes (full frame, as render_one gives them), kept on disk."""

    def __init__(self, world, shapes, samples: int, cache: str | None):
        self.world, self.shapes, self.samples = world, shapes, samples
        self.dir = Path(cache) if cache else None
        self._renderers: dict[int, BlenderRenderer] = {}

    def __call__(self, scene: Scene, mask: bool = False) -> torch.Tensor:
        samples = MASK_SAMPLES if mask else self.samples
        key = json.dumps(
            [scene.to_json(), samples, mask, blender_reads(self.world)], sort_keys=True
        )
        path = None
        if self.dir is not None:
            path = self.dir / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.pt"
            if path.exists():
                return torch.load(path, weights_only=True)
        if samples not in self._renderers:
            config = BlenderConfig(samples=samples, threads=1)
            self._renderers[samples] = BlenderRenderer(self.world, self.shapes, config)
        image = self._renderers[samples].render_one(scene, mask=mask)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(image, path)
        return image


def blender_frames(world, scenes, blender: BlenderCache) -> dict[str, torch.Tensor]:
    """Blender's sRGB renders averaged in linear light down to our frame rows (3, h, S)."""
    first, last = world.frame_rows
    frames = {}
    for label, scene in scenes.items():
        linear = blender(scene)[None] ** world.tone.gamma
        pooled = F.interpolate(linear, size=(last - first, world.image_size), mode="area")
        frames[label] = pooled[0] ** (1 / world.tone.gamma)
    return frames


def our_frames(world, shapes, scenes) -> dict[str, torch.Tensor]:
    """Our crisp renders' frame rows (3, h, S)."""
    first, last = world.frame_rows
    with torch.no_grad():
        drawn = SceneRenderer(world, shapes).render_scenes(list(scenes.values()), "crisp")
    return dict(zip(scenes, drawn[:, :, first:last], strict=True))


def differences(world, shapes, scenes, reference) -> dict[str, float]:
    """Mean absolute sRGB differences of our crisp renders from the reference frames."""
    ours = our_frames(world, shapes, scenes)
    # object pixels: where our unshadowed render differs from the bare floor, eroded by one
    plain = our_frames(world.unshadowed(), shapes, scenes)
    first, last = world.frame_rows
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
    out["whole image"] = whole_image(ours, reference)
    return out


def whole_image(ours: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> float:
    """Mean over scenes of the mean absolute sRGB difference of the frame rows."""
    return sum((ours[k] - reference[k]).abs().mean().item() for k in ours) / len(ours)


def our_coverage(world, shapes, scene: Scene, size: int) -> torch.Tensor:
    """Our crisp coverage (h, size) of the scene's objects in the frame rows, at image_size
    `size` (the frame's width: Blender's own pixels)."""
    renderer = SceneRenderer(replace(world, image_size=size), shapes)
    batch = SceneBatch.from_scenes([scene], shapes)
    with torch.no_grad():
        meshes = renderer.meshes(batch, ground=False)
        faces = renderer.rasterize(renderer.project(meshes), renderer.object_faces(batch), "crisp")
    first, last = renderer.world.frame_rows
    return (faces[0, first:last, :, 0] >= 0).float()


def iou(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.minimum(a, b).sum() / torch.maximum(a, b).sum().clamp(min=1e-9))


def silhouettes(world, shapes, blender: BlenderCache) -> dict[str, tuple[float, ...]]:
    """Silhouette IoU of each shape and size (mean over IOU_PLACES): at Blender's frame
    (its coverage as it is, and cut at 0.5: the masks' IoU) and at our canvas's frame rows
    (Blender's coverage averaged down)."""
    first, last = world.frame_rows
    width = (world.frame or (world.image_size,))[0]
    out: dict[str, list[tuple[float, ...]]] = {}
    for label, scene in silhouette_scenes(world, shapes).items():
        theirs = blender(scene, mask=True)[0]  # (H, W)
        ours = our_coverage(world, shapes, scene, width)
        full, masks = iou(ours, theirs), iou(ours, (theirs > 0.5).float())
        size = (last - first, world.image_size)
        small = F.interpolate(theirs[None, None], size=size, mode="area")[0, 0]
        canvas = iou(our_coverage(world, shapes, scene, world.image_size), small)
        out.setdefault(label.split(" @")[0], []).append((full, masks, canvas))
    return {k: tuple(sum(c) / len(c) for c in zip(*v, strict=True)) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", default="clevr", help=WORLD_HELP)
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--candidate", nargs="*", default=[], help="worlds with other looks")
    parser.add_argument("--scenes", type=int, default=0, help="also N prior scenes")
    parser.add_argument("--seed", type=int, default=0, help="the prior scenes' seed")
    parser.add_argument("--iou", action="store_true", help="also silhouette IoU per object")
    parser.add_argument("--cache", default=None, help="folder that keeps Blender's renders")
    args = parser.parse_args()
    torch.set_num_threads(1)
    world, shapes = open_world(args.world)
    blender = BlenderCache(world, shapes, args.samples, args.cache)
    scenes = kinds_alone(world, shapes)
    reference = blender_frames(world, scenes, blender)
    worlds = {args.world: (world, shapes)}
    worlds |= {candidate: open_world(candidate) for candidate in args.candidate}
    columns = {name: differences(w, s, scenes, reference) for name, (w, s) in worlds.items()}
    if args.scenes:
        prior = prior_scenes(world, shapes, args.scenes, args.seed)
        prior_reference = blender_frames(world, prior, blender)
        for name, (w, s) in worlds.items():
            columns[name][f"{args.scenes} prior scenes (seed {args.seed})"] = whole_image(
                our_frames(w, s, prior), prior_reference
            )
    rows = list(next(iter(columns.values())))
    print(f"{len(scenes) - 1} kinds alone + the bare floor; Blender {args.samples} samples\n")
    print("| mean abs sRGB difference from Blender | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for row in rows:
        print(f"| {row} | " + " | ".join(f"{c[row]:.3f}" for c in columns.values()) + " |")
    if args.iou:
        print("\n| silhouette IoU (mean of 3 places) | 320x240 | 320x240, masks | our frame |")
        print("|---|---:|---:|---:|")
        for label, values in silhouettes(world, shapes, blender).items():
            print(f"| {label} | " + " | ".join(f"{v:.3f}" for v in values) + " |")


if __name__ == "__main__":
    main()
