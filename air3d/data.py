"""Synthetic data sets: scenes drawn from the prior, rendered, with ground truth.

Layout of a data set directory:
    images/000000.png ...      the rendered scenes; in a world with a frame (CLEVR's 320 x
                               240) the frame: a renderer's own frame-sized image, or the
                               frame's rows of our square canvas
    scenes.jsonl               one line per image: {"image": "images/000000.png", "objects": [...]}
                               (and "camera" where the scene has its own: a jittered world)
    clevr_scenes.json          the same scenes in CLEVR's format (air3d/clevr_format.py), with
                               image_filename relative to the directory
    meta.json                  how it was made: n, seed, count override, renderer, world, shapes
                               (written first: `resume` checks it before keeping any image)

Images come from our PyTorch3D renderer (crisp mode) unless another `ImageSource` is given,
e.g. Blender's Cycles (renderer/blender.py): the same scenes drawn by a renderer we did not
write.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Protocol

import torch
from tqdm import tqdm

from air3d.clevr_format import (
    clevr_document,
    read_clevr,
    scene_to_clevr,
    write_clevr,
)
from air3d.images import Canvas, read_image, to_pil
from air3d.renderer import Scene, SceneRenderer, ShapeLibrary, World
from air3d.renderer.visibility import sample_visible_scenes
from air3d.renderer.world import with_max_objects

SCENES_FILE = "scenes.jsonl"
META_FILE = "meta.json"
CLEVR_FILE = "clevr_scenes.json"


class ImageSource(Protocol):
    """Draws scenes: a list of Scenes to images (B, 3, H, W) in [0, 1], the world's square
    canvas (S, S) or its frame (height, width), each from the scene's camera (Scene.camera)
    where it has one, else the world's."""

    name: str  # recorded in meta.json ("pytorch3d", "blender", "mujoco")

    def render(self, scenes: list[Scene]) -> torch.Tensor: ...


class CrispRenderer:
    """Our PyTorch3D renderer in crisp mode: the default ImageSource."""

    name = "pytorch3d"

    def __init__(self, world: World, shapes: ShapeLibrary, device: str = "cpu"):
        self.renderer = SceneRenderer(world, shapes, device)

    def render(self, scenes: list[Scene]) -> torch.Tensor:
        with torch.no_grad():
            return self.renderer.render_scenes(scenes, "crisp").cpu()


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
    source: ImageSource | None = None,
    resume: bool = False,
) -> None:
    """Writes n scenes sampled with `seed` (same seed, same scenes) to `out`, drawn by
    `source` (default: our renderer, crisp). resume: keep the images an interrupted run
    with the same settings left in `out` (meta.json must match) and draw only the others."""
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    # Our crisp renderer decides which scenes hide an object (the world's min_visible),
    # whatever renderer then draws them.
    crisp = CrispRenderer(world, shapes, device)
    scenes = sample_visible_scenes(crisp.renderer, n, seed, count)
    source = source or crisp
    _start(out, _meta(n, seed, count, world, shapes, source), resume)
    names = [f"images/{i:06d}.png" for i in range(n)]
    todo = [i for i in range(n) if not (resume and (out / names[i]).is_file())]
    with tqdm(total=len(todo), desc="make-data", unit="img", disable=not progress) as bar:
        for start in range(0, len(todo), batch_size):
            rows = todo[start : start + batch_size]
            images = source.render([scenes[i] for i in rows])
            for i, image in zip(rows, images, strict=True):
                _save_atomic(out / names[i], stored_image(image, world))
            bar.update(len(rows))
    named = list(zip(scenes, names, strict=True))
    lines = [json.dumps({"image": name, **scene.to_json()}) for scene, name in named]
    clevr = [scene_to_clevr(scene, name, i, world) for i, (scene, name) in enumerate(named)]
    _write_atomic(out / SCENES_FILE, "\n".join(lines) + ("\n" if lines else ""))
    write_clevr(out / CLEVR_FILE, clevr_document(clevr, renderer=source.name, seed=seed))


def _meta(n, seed, count, world: World, shapes: ShapeLibrary, source: ImageSource) -> dict:
    """meta.json: how the data set is made, as plain JSON data."""
    config = getattr(source, "config", None)
    meta = {
        "n": n,
        "seed": seed,
        "count": count,
        "renderer": source.name,
        "world": world.to_dict(),  # the geometry; a source with its own look records it:
        **({"look": source.look.to_dict()} if hasattr(source, "look") else {}),
        **({"renderer_config": asdict(config)} if is_dataclass(config) else {}),
        "shapes": list(shapes.names),
    }
    return json.loads(json.dumps(meta))


def _start(out: Path, meta: dict, resume: bool) -> None:
    """Writes meta.json; with resume, first checks that an existing one says the same."""
    path = out / META_FILE
    if resume and path.is_file() and json.loads(path.read_text()) != meta:
        raise ValueError(
            f"{out}: made with other settings than these (see its {META_FILE}): resume it "
            "with the same --n, --seed, --count, --world and renderer, or use a new --out"
        )
    _write_atomic(path, json.dumps(meta, indent=2))


def _save_atomic(path: Path, image: torch.Tensor) -> None:
    """A PNG that is whole or absent: what a resumed run may keep."""
    tmp = path.with_name(path.name + ".tmp")
    to_pil(image).save(tmp, format="PNG")
    os.replace(tmp, path)


def stored_image(image: torch.Tensor, world: World) -> torch.Tensor:
    """What a data set stores of a drawn image (3, H, W): in a world with a frame, a canvas
    (S x S) is cut to the frame's rows, as a real image of that world would be; an image a
    source drew at the frame's own shape (e.g. Blender at 320 x 240) is kept as it is."""
    size = world.image_size
    if world.frame is None or tuple(image.shape[-2:]) != (size, size):
        return image
    first, last = world.frame_rows
    return image[:, first:last]


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
    directory: str | Path,
    world: World,
    shapes: ShapeLibrary,
    limit: int | None = None,
    canvas: Canvas | None = None,
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
    permissive = with_max_objects(world, most)
    scenes = [Scene.from_json(r, permissive, shapes) for r in records]
    return _with_images(scenes, [directory / r["image"] for r in records], world, canvas)


def load_clevr_dataset(
    scenes_json: str | Path,
    image_root: str | Path,
    world: World,
    shapes: ShapeLibrary,
    limit: int | None = None,
    canvas: Canvas | None = None,
) -> Dataset:
    """Reads images and their ground truth from a CLEVR scenes JSON (clevr_format.py), each
    `image_filename` relative to `image_root` (CLEVR's own files: its images/SPLIT folder;
    ours: the data set directory)."""
    items = read_clevr(scenes_json, world, shapes)
    items = items[:limit] if limit is not None else items
    paths = [Path(image_root) / name for name, _ in items]
    return _with_images([scene for _, scene in items], paths, world, canvas)


def _with_images(
    scenes: list[Scene], paths: list[Path], world: World, canvas: Canvas | None
) -> Dataset:
    """The images on `canvas` (None: the world's; a model with a finer canvas: its)."""
    canvas = canvas or Canvas.of(world)
    if not paths:
        images = torch.zeros(0, 3, canvas.size, canvas.size)
    else:
        images = torch.stack([read_image(p, canvas) for p in paths])
    return Dataset(images, scenes, paths)
