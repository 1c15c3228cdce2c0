"""Batch re-rendering of inferences: each JSONL line's objects drawn back into a picture.

For a line {"source": "data/images/000042.png", "objects": [...], ...} it writes
    OUT/renders/000042-<hash>.png   the objects rendered crisp (paths.py explains the name)
and with compare=True also
    OUT/sheets/000042-<hash>.png    input | reconstruction | absolute difference
    OUT/index.html                  every sheet beside its object list
Bad lines (invalid JSON, error lines from `air3d infer`, invalid scenes, repeated sources)
are reported and skipped. Resumable: lines whose outputs exist are not rendered again.
Under torchrun each rank renders lines[rank::world_size] (the files are disjoint, so they
need no merging) and rank 0 writes index.html after a barrier.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from air3d.batch.jsonl import read_jsonl
from air3d.batch.paths import assign_stems, confined
from air3d.batch.sharding import Shard, barrier
from air3d.batch.sheets import IndexEntry, compare_sheet, index_html, save_png
from air3d.images import Canvas, ImageError, read_image, to_pil
from air3d.renderer import Scene, SceneRenderer, ShapeLibrary, World

RENDERS_DIR = "renders"
SHEETS_DIR = "sheets"
INDEX_FILE = "index.html"
DEFAULT_BATCH_SIZE = 64  # scenes per render call


@dataclass(frozen=True)
class Item:
    """A line that can be rendered."""

    line: int
    source: str
    scene: Scene
    objects: list[dict[str, Any]]  # the line's objects as written (with presence etc.)
    stem: str = ""  # output file stem, unique within the file


@dataclass
class RerenderSummary:
    """What one process did. `skipped` lists one message per bad line (the same on every
    rank); `missing_inputs` one per line whose input could not be read for its sheet."""

    assigned: int = 0
    already_done: int = 0
    rendered: int = 0
    skipped: list[str] = field(default_factory=list)
    missing_inputs: list[str] = field(default_factory=list)
    index: Path | None = None


def load_items(
    path: str | Path, world: World, shapes: ShapeLibrary
) -> tuple[list[Item], list[str]]:
    """Reads an inferences JSONL; returns the renderable items (with their output stems) and
    one message per bad line, "line N: why"."""
    items: list[Item] = []
    skipped: list[str] = []
    first_line: dict[str, int] = {}
    for line in read_jsonl(path):
        where = f"line {line.number}"
        value = line.value
        if line.error is not None:
            skipped.append(f"{where}: {line.error}")
        elif not isinstance(value, dict) or not isinstance(value.get("source"), str):
            skipped.append(f'{where}: not an inference (no "source" string)')
        elif "error" in value:
            skipped.append(f"{where}: error line from infer: {value['error']}")
        elif value["source"] in first_line:
            first = first_line[value["source"]]
            skipped.append(f"{where}: {value['source']}: repeats line {first}; rendered once")
        else:
            try:
                scene = Scene.from_json(value, world, shapes)
            except ValueError as error:
                skipped.append(f"{where}: {value['source']}: invalid scene: {error}")
                continue
            first_line[value["source"]] = line.number
            items.append(Item(line.number, value["source"], scene, value["objects"]))
    stems = assign_stems([item.source for item in items])
    items = [replace(item, stem=stem) for item, stem in zip(items, stems, strict=True)]
    return items, skipped


def run_rerender(
    inferences: str | Path,
    out: str | Path,
    world: World,
    shapes: ShapeLibrary,
    compare: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: torch.device | str = "cpu",
    scale: int = 4,
    root: str | Path | None = None,
    shard: Shard | None = None,
    progress: bool = True,
) -> RerenderSummary:
    """Renders this process's share of the lines of `inferences` into `out` (see the module
    docstring). Relative sources are read from `root` (default: the current directory)."""
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    if scale < 1:
        raise ValueError(f"--scale must be >= 1, got {scale}")
    shard = shard or Shard()
    out, root = Path(out), Path(root or ".")
    out.mkdir(parents=True, exist_ok=True)
    items, skipped = load_items(inferences, world, shapes)
    mine = shard.take(items)
    todo = [item for item in mine if not _done(out, item, compare)]
    summary = RerenderSummary(len(mine), len(mine) - len(todo), skipped=skipped)

    renderer = SceneRenderer(world, shapes, device)
    canvas = Canvas.of(world)  # inputs as the model saw them, beside the renderings
    desc = f"rerender (rank 0 of {shard.world_size})" if shard.distributed else "rerender"
    with tqdm(
        total=len(todo), desc=desc, unit="img", disable=not progress or shard.rank != 0
    ) as bar:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            with torch.no_grad():
                images = renderer.render_scenes([item.scene for item in batch], "crisp").cpu()
            for item, reconstruction in zip(batch, images, strict=True):
                save_png(to_pil(reconstruction), confined(out, _render_path(item)))
                if compare:
                    try:
                        source = read_image(root / item.source, canvas)
                    except ImageError as error:
                        summary.missing_inputs.append(f"line {item.line}: {error}")
                    else:
                        sheet = compare_sheet(source, reconstruction, scale)
                        save_png(sheet, confined(out, _sheet_path(item)))
                summary.rendered += 1
            bar.update(len(batch))

    if compare:
        barrier(shard)
        if shard.rank == 0:
            summary.index = _write_index(out, Path(inferences), items, skipped)
    return summary


def _render_path(item: Item) -> str:
    return f"{RENDERS_DIR}/{item.stem}.png"


def _sheet_path(item: Item) -> str:
    return f"{SHEETS_DIR}/{item.stem}.png"


def _done(out: Path, item: Item, compare: bool) -> bool:
    paths = [_render_path(item)] + ([_sheet_path(item)] if compare else [])
    return all(confined(out, path).exists() for path in paths)


def _write_index(out: Path, inferences: Path, items: Sequence[Item], skipped: list[str]) -> Path:
    entries = [
        IndexEntry(
            item.line,
            item.source,
            item.objects,
            _render_path(item),
            _sheet_path(item) if confined(out, _sheet_path(item)).exists() else None,
        )
        for item in items
    ]
    path = confined(out, INDEX_FILE)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(index_html(f"air3d rerender: {inferences.name}", entries, skipped))
    tmp.replace(path)
    return path
