"""Images the world cannot explain, all procedural, and how many of them the fit flags.

`non_scenes(n, size, world, shapes, seed)` draws n images (3, size, size) in [0, 1], about
equally many of each kind, each with the variant that made it:
- blank: one colour (black, white, the ground's, the background's, red, any), some with a
  single pixel of another colour;
- noise: uniform, Gaussian about a colour, salt and pepper, blocky (upsampled coarse noise);
- gradient: linear in any direction or radial, between two colours;
- text: words in Pillow's default font, in any colours, at any scale;
- texture: fractal noise, stripes, checkerboards, wood rings, marble veins;
- other_world: scenes of worlds that are not ours, drawn by our renderer (other ground and
  background, other light, other object colours, other shapes, crowds of more objects than
  the prior allows), or many coloured blobs. Each differs from our world somewhere in the
  picture: an empty scene of a world that changes only the objects' colours would be a
  valid scene of ours, so those worlds always hold objects.

`python -m air3d.evaluation.non_scenes --checkpoint C --valid DIR --out PREFIX` answers
them and the valid data set DIR (`air3d make-data`) with the predictor and writes how many
of each kind are flagged not-a-scene (PREFIX.json, PREFIX.md), and a contact sheet of the
non-scenes (PREFIX.png).
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from air3d.renderer import SceneRenderer, ShapeLibrary, World
from air3d.renderer.prior import sample_scenes
from air3d.renderer.shapes import ShapeMesh
from air3d.renderer.world import GroundConfig, LightConfig, with_max_objects

KINDS = ("blank", "noise", "gradient", "text", "texture", "other_world")
WORDS = ("scene", "air3d", "hello", "not a table", "12345", "lorem ipsum", "CUBE", "?!", "x")

Drawn = tuple[torch.Tensor, str]  # an image (3, S, S) and its variant's name


def non_scenes(
    n: int, size: int, world: World, shapes: ShapeLibrary, seed: int = 0
) -> list[tuple[str, str, torch.Tensor]]:
    """n images (kind, variant, image (3, size, size)), kinds in turn; same seed, same images."""
    rng = np.random.default_rng(seed)
    makers: dict[str, Callable[[np.random.Generator, int], Drawn]] = {
        "blank": _blank,
        "noise": _noise,
        "gradient": _gradient,
        "text": _text,
        "texture": _texture,
        "other_world": _OtherWorlds(world, shapes),
    }
    out = []
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        image, variant = makers[kind](rng, size)
        out.append((kind, variant, image.clamp(0.0, 1.0).float()))
    return out


def _colour(rng: np.random.Generator) -> torch.Tensor:
    return torch.tensor(rng.uniform(0, 1, 3), dtype=torch.float32)


def _fill(colour: torch.Tensor, size: int) -> torch.Tensor:
    return colour.view(3, 1, 1).expand(3, size, size).clone()


def _blank(rng: np.random.Generator, size: int) -> Drawn:
    named = {
        "black": (0.0, 0.0, 0.0), "white": (1.0, 1.0, 1.0), "red": (1.0, 0.0, 0.0),
        "ground": (0.55, 0.55, 0.50), "background": (0.92, 0.92, 0.95),
    }  # fmt: skip
    variant = str(rng.choice([*named, "any"]))
    colour = _colour(rng) if variant == "any" else torch.tensor(named[variant])
    image = _fill(colour, size)
    if rng.random() < 0.3:  # one pixel of another colour (the "single red pixel")
        row, column = rng.integers(0, size, 2)
        image[:, row, column] = torch.tensor([1.0, 0.0, 0.0])
        variant += "+pixel"
    return image, variant


def _noise(rng: np.random.Generator, size: int) -> Drawn:
    variant = str(rng.choice(["uniform", "gaussian", "salt_pepper", "blocky"]))
    if variant == "uniform":
        image = torch.tensor(rng.uniform(0, 1, (3, size, size)))
    elif variant == "gaussian":
        mean = _colour(rng).view(3, 1, 1).double()
        image = mean + torch.tensor(rng.normal(0, rng.uniform(0.05, 0.3), (3, size, size)))
    elif variant == "salt_pepper":
        image = _fill(_colour(rng), size)
        mask = torch.tensor(rng.random((size, size)) < rng.uniform(0.05, 0.5))
        image[:, mask] = torch.tensor(
            rng.integers(0, 2, (int(mask.sum()), 1)), dtype=torch.float32
        ).T
    else:
        cells = int(rng.integers(2, 17))
        coarse = torch.tensor(rng.uniform(0, 1, (1, 3, cells, cells)))
        image = F.interpolate(coarse, size=(size, size), mode="nearest")[0]
    return image, variant


def _gradient(rng: np.random.Generator, size: int) -> Drawn:
    a, b = _colour(rng).view(3, 1, 1), _colour(rng).view(3, 1, 1)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    if rng.random() < 0.5:
        angle = rng.uniform(0, 2 * math.pi)
        t = (xs * math.cos(angle) + ys * math.sin(angle) + 1.5) / 3.0
        variant = "linear"
    else:
        cx, cy = rng.uniform(-1, 1, 2)
        t = ((xs - cx) ** 2 + (ys - cy) ** 2).sqrt() / 2.0
        variant = "radial"
    t = t.clamp(0, 1)[None]
    return a * (1 - t) + b * t, variant


def _text(rng: np.random.Generator, size: int) -> Drawn:
    scale = int(rng.integers(1, 4))  # drawn at size / scale and enlarged: bigger letters
    canvas = Image.new("RGB", (size // scale, size // scale), _rgb(rng))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    lines = int(rng.integers(1, 6))
    for line in range(lines):
        words = " ".join(rng.choice(WORDS, int(rng.integers(1, 4))))
        y = line * (size // scale) // lines + int(rng.integers(0, 4))
        draw.text((int(rng.integers(-4, 8)), y), words, fill=_rgb(rng), font=font)
    canvas = canvas.resize((size, size), Image.NEAREST)
    image = torch.tensor(np.asarray(canvas), dtype=torch.float32).permute(2, 0, 1) / 255
    return image, f"scale{scale}"


def _rgb(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(0, 256, 3))


def _texture(rng: np.random.Generator, size: int) -> Drawn:
    variant = str(rng.choice(["fractal", "stripes", "checkerboard", "wood", "marble"]))
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    a, b = _colour(rng).view(3, 1, 1), _colour(rng).view(3, 1, 1)
    if variant == "fractal":
        t = _fractal(rng, size)
    elif variant == "stripes":
        angle, period = rng.uniform(0, math.pi), rng.uniform(0.1, 0.6)
        t = torch.sin((xs * math.cos(angle) + ys * math.sin(angle)) * 2 * math.pi / period) > 0
        t = t.float()
    elif variant == "checkerboard":
        cells = int(rng.integers(2, 16))
        t = (((xs + 1) * cells / 2).floor() + ((ys + 1) * cells / 2).floor()) % 2
    elif variant == "wood":
        cx, cy = rng.uniform(-1.5, 1.5, 2)
        rings = ((xs - cx) ** 2 + (ys - cy) ** 2).sqrt() * rng.uniform(5, 15)
        t = (rings + 2 * _fractal(rng, size)) % 1.0
    else:  # marble
        t = 0.5 + 0.5 * torch.sin(xs * rng.uniform(3, 10) + 6 * _fractal(rng, size))
    return a * (1 - t[None]) + b * t[None], variant


def _fractal(rng: np.random.Generator, size: int) -> torch.Tensor:
    """Sum of octaves of smoothly upsampled noise, normalised to [0, 1]: (size, size)."""
    total = torch.zeros(size, size)
    for octave in range(5):
        cells = 2 ** (octave + 1)
        coarse = torch.tensor(rng.uniform(0, 1, (1, 1, cells, cells)), dtype=torch.float32)
        up = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=True)[0, 0]
        total += up / 2**octave
    return (total - total.min()) / (total.max() - total.min()).clamp(min=1e-6)


class _OtherWorlds:
    """Scenes of other worlds, drawn by our renderer (renderers built once per world kind)."""

    VARIANTS = ("ground", "light", "colours", "shapes", "crowd", "blobs")

    def __init__(self, world: World, shapes: ShapeLibrary):
        self.world, self.shapes = world, shapes

    def __call__(self, rng: np.random.Generator, size: int) -> Drawn:
        variant = str(rng.choice(self.VARIANTS))
        if variant == "blobs":
            return _blobs(rng, size), variant
        world, shapes = self.world, self.shapes
        count = int(rng.integers(1, world.max_objects + 1))
        if variant == "ground":
            ground = GroundConfig(world.ground.half_extent, tuple(rng.uniform(0, 1, 3)))
            world = replace(world, ground=ground, background=tuple(rng.uniform(0, 1, 3)))
            count = int(rng.integers(0, world.max_objects + 1))
        elif variant == "light":
            direction = (rng.uniform(-1, 1), rng.uniform(0.2, 1), rng.uniform(-1, 1))
            light = LightConfig(direction, rng.uniform(0.1, 0.4), rng.uniform(0.8, 1.2), 0.0)
            world = replace(world, light=light)
            count = int(rng.integers(0, world.max_objects + 1))
        elif variant == "colours":
            specs = tuple(replace(s, color=tuple(rng.uniform(0, 1, 3))) for s in shapes.specs)
            shapes = ShapeLibrary(specs, shapes.meshes)
        elif variant == "shapes":  # ours stretched: slabs, pillars, long bars
            scales = rng.uniform(0.4, 2.5, (len(shapes), 3))
            meshes = tuple(
                ShapeMesh((m.verts * s).astype(np.float32), m.faces)
                for m, s in zip(shapes.meshes, scales, strict=True)
            )
            specs = tuple(
                replace(spec, height=spec.height * s[1])
                for spec, s in zip(shapes.specs, scales, strict=True)
            )
            shapes = ShapeLibrary(specs, meshes)
        else:  # crowd: more objects than the prior's max, closer together
            count = int(rng.integers(world.max_objects + 2, world.max_objects + 6))
            world = with_max_objects(world, count)
            world = replace(world, prior=replace(world.prior, min_separation=0.35))
        scenes = sample_scenes(world, shapes, 1, int(rng.integers(1 << 31)), count)
        with torch.no_grad():
            image = SceneRenderer(world, shapes).render_scenes(scenes, "crisp")[0]
        return F.interpolate(image[None], size=(size, size), mode="area")[0], variant


def _blobs(rng: np.random.Generator, size: int) -> torch.Tensor:
    image = _fill(_colour(rng), size)
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    for _ in range(int(rng.integers(5, 40))):
        cx, cy = rng.uniform(0, size, 2)
        rx, ry = rng.uniform(1, size / 5, 2)
        inside = ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1
        image[:, inside] = _colour(rng)[:, None]
    return image


def srgb(images: torch.Tensor) -> torch.Tensor:
    """Linear images saved with the standard sRGB tone curve (IEC 61966-2-1), as most
    renderers and cameras write them: still valid scenes, another look."""
    return torch.where(images <= 0.0031308, 12.92 * images, 1.055 * images ** (1 / 2.4) - 0.055)


def flag_table(rows: list[tuple[str, str, bool]]) -> dict[str, dict[str, float]]:
    """(set, kind, flagged) per image -> {"set/kind": {"n", "flagged", "rate"}}, plus each
    set's total as "set/all" (not for the `*_variant` sets: their total is their kind's)."""
    table: dict[str, dict[str, float]] = {}
    for group, kind, flagged in rows:
        totals = [] if group.endswith("_variant") else [f"{group}/all"]
        for key in (f"{group}/{kind}", *totals):
            entry = table.setdefault(key, {"n": 0, "flagged": 0})
            entry["n"] += 1
            entry["flagged"] += int(flagged)
    for entry in table.values():
        entry["rate"] = entry["flagged"] / entry["n"]
    return dict(sorted(table.items()))


def _answer(predictor, images: torch.Tensor, batch_size: int) -> list:
    fits = []
    for start in range(0, len(images), batch_size):
        fits += [i.fit for i in predictor.infer(images[start : start + batch_size])]
    return fits


def main(argv: list[str] | None = None) -> int:
    from air3d.data import load_dataset
    from air3d.images import to_pil
    from air3d.model import Predictor

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="a calibrated checkpoint")
    parser.add_argument("--valid", type=Path, required=True, help="a make-data set: valid scenes")
    parser.add_argument("--n", type=int, default=500, help="non-scene images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--refine", type=int, default=0, help="refinement steps in the answers")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", type=Path, required=True, help="PREFIX for .json, .md, .png")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    predictor = Predictor.from_checkpoint(args.checkpoint, refine=args.refine)
    if predictor.calibration is None:
        raise SystemExit(f"{args.checkpoint} is not calibrated: run air3d calibrate on it first")
    drawn = non_scenes(args.n, predictor.image_size, predictor.world, predictor.shapes, args.seed)
    valid = load_dataset(args.valid, predictor.world, predictor.shapes)
    non_fits = _answer(predictor, torch.stack([image for _, _, image in drawn]), args.batch_size)
    valid_fits = _answer(predictor, valid.images, args.batch_size)
    srgb_fits = _answer(predictor, srgb(valid.images), args.batch_size)
    rows = [
        ("non_scene", kind, f.not_a_scene) for (kind, _, _), f in zip(drawn, non_fits, strict=True)
    ]
    rows += [
        ("non_scene_variant", f"{k}/{v}", f.not_a_scene)
        for (k, v, _), f in zip(drawn, non_fits, strict=True)
    ]
    rows += [
        ("valid", f"{len(s.objects)}_objects", f.not_a_scene)
        for s, f in zip(valid.scenes, valid_fits, strict=True)
    ]
    rows += [("valid_srgb", "srgb_tone_curve", f.not_a_scene) for f in srgb_fits]
    table = flag_table(rows)
    lls = {
        "non_scene_max": max(f.log_likelihood_per_pixel for f in non_fits),
        "valid_min": min(f.log_likelihood_per_pixel for f in valid_fits),
        "threshold": predictor.calibration.threshold,
    }
    missed = [
        {"kind": k, "variant": v, "log_likelihood_per_pixel": f.log_likelihood_per_pixel}
        for (k, v, _), f in zip(drawn, non_fits, strict=True) if not f.not_a_scene
    ]  # fmt: skip
    report = {
        "checkpoint": str(args.checkpoint), "checkpoint_hash": predictor.checkpoint_hash,
        "valid": str(args.valid), "n": args.n, "seed": args.seed, "refine": args.refine,
        "flags": table, "log_likelihood_per_pixel": lls, "missed_non_scenes": missed,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(to_markdown(report))
    sheet = [image for _, _, image in drawn[:96]]
    grid = torch.cat([torch.cat(sheet[r : r + 12], 2) for r in range(0, len(sheet) - 11, 12)], 1)
    to_pil(grid).save(args.out.with_suffix(".png"))
    print(to_markdown(report))
    return 0


def to_markdown(report: dict) -> str:
    lines = ["| set | kind | images | flagged not a scene |", "|---|---|---:|---:|"]
    kinds: dict[str, int] = {}
    for key in report["flags"]:
        kinds[key.split("/", 1)[0]] = kinds.get(key.split("/", 1)[0], 0) + 1
    for key, entry in report["flags"].items():
        group, kind = key.split("/", 1)
        if group == "non_scene_variant" or (kind == "all" and kinds[group] == 2):
            continue  # variants: in the JSON; a group of one kind: its total is that kind
        lines.append(
            f"| {group} | {kind} | {entry['n']} | {entry['flagged']} ({entry['rate']:.1%}) |"
        )
    ll = report["log_likelihood_per_pixel"]
    lines.append("")
    lines.append(
        f"Log-likelihood per pixel: threshold {ll['threshold']:.4f}; best non-scene "
        f"{ll['non_scene_max']:.4f}; worst valid scene {ll['valid_min']:.4f}."
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
