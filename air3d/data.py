"""Synthetic data sets: scenes drawn from the prior, rendered crisp, with ground truth.

Layout of a data set directory:
    images/000000.png ...      the rendered scenes
    scenes.jsonl               one line per image: {"image": "images/000000.png", "objects": [...]}
    meta.json                  how it was made: n, seed, count override, world, shape names
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from tqdm import tqdm

from air3d.images import read_image, to_pil
from air3d.renderer import Scene, SceneRenderer, ShapeLibrary, World
from air3d.renderer.prior import sample_scenes

SCENES_FILE = "scenes.jsonl"
META_FILE = "meta.json"


def make_dataset(
    out: str | Path,
    n: int,
    seed: int,
    world: World,
    shapes: ShapeLibrary,
    count: int | None = None,
    batch_size: int = 64,
    device: str = "cpu",
    progress: bool = True,
) -> None:
    """Writes n scenes sampled with `seed` (same seed, same files) to `out`."""
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    scenes = sample_scenes(world, shapes, n, seed, count)
    renderer = SceneRenderer(world, shapes, device)
    lines = []
    with tqdm(total=n, desc="make-data", unit="img", disable=not progress) as bar:
        for start in range(0, n, batch_size):
            chunk = scenes[start : start + batch_size]
            with torch.no_grad():
                images = renderer.render_scenes(chunk, "crisp")
            for offset, (scene, image) in enumerate(zip(chunk, images, strict=True)):
                name = f"images/{start + offset:06d}.png"
                to_pil(image).save(out / name)
                lines.append(json.dumps({"image": name, **scene.to_json()}))
            bar.update(len(chunk))
    _write_atomic(out / SCENES_FILE, "\n".join(lines) + ("\n" if lines else ""))
    meta = {
        "n": n,
        "seed": seed,
        "count": count,
        "world": world.to_dict(),
        "shapes": list(shapes.names),
    }
    _write_atomic(out / META_FILE, json.dumps(meta, indent=2))


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@dataclass(frozen=True)
class Dataset:
    images: torch.Tensor  # (n, 3, H, W) float in [0, 1]
    scenes: list[Scene]
    paths: list[Path]


def load_dataset(
    directory: str | Path, world: World, shapes: ShapeLibrary, limit: int | None = None
) -> Dataset:
    """Reads a data set made by make_dataset; scenes are validated against world and shapes.

    Scenes may hold more objects than world.max_objects (generalisation sets), so the
    object count is checked against the data set's own count instead.
    """
    directory = Path(directory)
    scenes_path = directory / SCENES_FILE
    if not scenes_path.exists():
        raise ValueError(f"{directory}: not a data set (no {SCENES_FILE}); make one with make-data")
    records = [json.loads(line) for line in scenes_path.read_text().splitlines() if line.strip()]
    records = records[:limit] if limit is not None else records
    most = max([len(r["objects"]) for r in records] + [world.max_objects])
    permissive = _with_max_objects(world, most)
    scenes = [Scene.from_json(r, permissive, shapes) for r in records]
    paths = [directory / r["image"] for r in records]
    if not paths:
        images = torch.zeros(0, 3, world.image_size, world.image_size)
    else:
        images = torch.stack([read_image(p, world.image_size) for p in paths])
    return Dataset(images, scenes, paths)


def _with_max_objects(world: World, max_objects: int) -> World:
    probs = tuple(world.prior.count_probs) + (0.0,) * (max_objects - world.max_objects)
    return replace(world, max_objects=max_objects, prior=replace(world.prior, count_probs=probs))
