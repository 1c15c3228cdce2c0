"""Offline batch inference: folders of images in, one JSON line per image out.

Each line is {"source": path, "objects": [...], "count": n, "model": {...}} (the object
fields of `POST /infer`), or {"source": path, "error": "..."} for an image that cannot be
read. Runs are resumable: sources already in the output (or in shards of an earlier
torchrun run) are skipped and new lines appended, a batch at a time (see jsonl.py), so a
crash loses at most the batch in flight. Under torchrun each rank writes its own shard and
rank 0 merges them after a barrier (see sharding.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tqdm import tqdm

from air3d.batch.jsonl import JsonlWriter, read_jsonl, write_jsonl_atomic
from air3d.batch.sharding import Shard, barrier, existing_shards, shard_path
from air3d.clevr_format import clevr_document, scene_to_clevr, write_clevr
from air3d.images import Canvas, ImageError, read_image
from air3d.renderer import Scene
from air3d.renderer.world import with_max_objects

if TYPE_CHECKING:
    from air3d.model import Predictor

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")  # what folders are searched for (any case)
DEFAULT_BATCH_SIZE = 32  # images per forward pass


def find_images(paths: Sequence[str | Path]) -> list[str]:
    """Takes files and folders to the sorted, de-duplicated list of image paths to infer.

    Files are taken as named (a file that is not an image becomes an error line); folders
    are searched recursively, without following symbolic links, for IMAGE_SUFFIXES.
    """
    found: set[str] = set()
    for path in map(Path, paths):
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs.sort()
                found.update(
                    os.path.join(root, name)
                    for name in files
                    if os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES
                )
        elif path.exists():
            found.add(str(path))
        else:
            raise ValueError(f"{path}: no such file or directory")
    return sorted(os.path.normpath(p) for p in found)


@dataclass(frozen=True)
class InferSummary:
    """What one process did: of its `assigned` images, `skipped` were already in the output."""

    assigned: int
    skipped: int
    inferred: int
    errors: int  # images written as error lines (unreadable)
    output: Path  # the file this process appended to (OUT, or its shard)
    merged_shards: int = 0  # shard files folded into OUT by this process
    not_scenes: int = 0  # inferred images whose fit flags them not a scene


def run_inference(
    predictor: Predictor,
    sources: Sequence[str],
    out: str | Path,
    batch_size: int = DEFAULT_BATCH_SIZE,
    shard: Shard | None = None,
    progress: bool = True,
) -> InferSummary:
    """Infers this process's share of `sources` that is not yet in `out`, appending lines.

    Single process: appends to `out`, then folds in shards left by an earlier torchrun run.
    Under torchrun: appends to this rank's shard; after a barrier rank 0 merges all shards
    into `out` (the caller must be inside sharding.process_group).
    """
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    shard = shard or Shard()
    out = Path(out)
    model = {"name": predictor.name, "checkpoint_hash": predictor.checkpoint_hash}
    done = _done_sources([out, *existing_shards(out)], model)
    mine = shard.take(sources)
    todo = [source for source in mine if source not in done]
    target = shard_path(out, shard) if shard.distributed else out

    inferred = errors = not_scenes = 0
    batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    desc = f"infer (rank 0 of {shard.world_size})" if shard.distributed else "infer"
    canvas = predictor.canvas  # q's, or the centre refiner's finer one
    with (
        JsonlWriter(target) as writer,
        ThreadPoolExecutor(1) as reader,  # reads the next batch while this one is inferred
        tqdm(
            total=len(todo), desc=desc, unit="img", disable=not progress or shard.rank != 0
        ) as bar,
    ):
        pending: Future | None = None
        for i, batch in enumerate(batches):
            if pending is None:
                pending = reader.submit(_read_batch, batch, canvas)
            loaded = pending.result()
            pending = None
            if i + 1 < len(batches):
                pending = reader.submit(_read_batch, batches[i + 1], canvas)
            records = _infer_batch(predictor, loaded, model)
            writer.write(records)
            errors += sum("error" in record for record in records)
            inferred += sum("error" not in record for record in records)
            not_scenes += sum(record.get("fit", {}).get("not_a_scene", False) for record in records)
            bar.update(len(batch))

    merged = 0
    if shard.distributed:
        barrier(shard)
        if shard.rank == 0:
            merged = merge_shards(out)
        barrier(shard)  # nobody returns (and reruns) before the merge is on disk
    elif existing_shards(out):
        merged = merge_shards(out)
    return InferSummary(
        len(mine), len(mine) - len(todo), inferred, errors, target, merged, not_scenes
    )


def _done_sources(paths: Sequence[Path], model: dict[str, Any]) -> set[str]:
    """Sources already answered in any of `paths`; ValueError if another model answered them."""
    done: set[str] = set()
    for path in paths:
        if not path.exists():
            continue
        for line in read_jsonl(path):
            value = line.value
            if not isinstance(value, dict) or not isinstance(value.get("source"), str):
                continue
            theirs = value.get("model")
            if (
                isinstance(theirs, dict)
                and theirs.get("checkpoint_hash") != model["checkpoint_hash"]
            ):
                raise ValueError(
                    f"{path}:{line.number}: made by checkpoint {theirs.get('checkpoint_hash')}, "
                    f"but this run uses {model['checkpoint_hash']}; "
                    "write to another --out or delete the old output"
                )
            done.add(value["source"])
    return done


def _read_batch(sources: Sequence[str], canvas: Canvas) -> list[tuple[str, torch.Tensor | str]]:
    """Takes sources to (source, image on the model's canvas (3, S, S)) or (source, error
    message)."""
    loaded: list[tuple[str, torch.Tensor | str]] = []
    for source in sources:
        try:
            loaded.append((source, read_image(source, canvas)))
        except ImageError as error:  # the message names the file
            loaded.append((source, str(error)))
    return loaded


def read_image_batches(
    sources: Sequence[str],
    canvas: Canvas,
    batch_size: int,
    on_error: Callable[[str], object] | None = None,
) -> Iterator[torch.Tensor]:
    """The readable images among `sources` on the canvas, in batches (B, 3, S, S); each
    unreadable one's message goes to `on_error` (None: skipped quietly)."""
    for start in range(0, len(sources), batch_size):
        loaded = _read_batch(sources[start : start + batch_size], canvas)
        images = []
        for _, image in loaded:
            if isinstance(image, torch.Tensor):
                images.append(image)
            elif on_error is not None:
                on_error(image)
        if images:
            yield torch.stack(images)


def _infer_batch(
    predictor: Predictor, loaded: list[tuple[str, torch.Tensor | str]], model: dict[str, Any]
) -> list[dict[str, Any]]:
    """One line per source, in order: the readable images are inferred in one call."""
    images = [image for _, image in loaded if isinstance(image, torch.Tensor)]
    results = iter(predictor.infer(torch.stack(images).to(predictor.device)) if images else [])
    records = []
    for source, image in loaded:
        if isinstance(image, str):
            records.append({"source": source, "error": image})
        else:
            records.append({"source": source, **next(results).to_json(), "model": model})
    return records


def merge_shards(out: str | Path) -> int:
    """Folds every shard of `out` into `out` (one line per source, sorted by source), written
    atomically, then deletes the shards. Returns how many shards were merged."""
    out = Path(out)
    shards = existing_shards(out)
    if not shards:
        return 0
    records: dict[str, dict[str, Any]] = {}
    for path in [out, *shards] if out.exists() else shards:
        for line in read_jsonl(path):
            value = line.value
            if isinstance(value, dict) and isinstance(value.get("source"), str):
                records.setdefault(value["source"], value)
    write_jsonl_atomic(out, (records[source] for source in sorted(records)))
    for path in shards:
        path.unlink()
    return len(shards)


def write_clevr_scenes(lines: str | Path, out: str | Path, predictor: Predictor) -> int:
    """Writes the inferences of the JSONL file `lines` as a CLEVR scenes JSON (see
    air3d/clevr_format.py) to `out`, atomically: one scene per inferred image, sorted by
    source, `image_filename` the source as given, each object with its `presence` and
    `confidence` too (and its `position_sd` where the answer gives one).
    Error lines are left out (the JSONL keeps them). Returns the number of scenes."""
    records = {}
    for line in read_jsonl(lines):
        value = line.value
        if isinstance(value, dict) and "objects" in value and isinstance(value.get("source"), str):
            records.setdefault(value["source"], value)
    scenes = []
    for index, source in enumerate(sorted(records)):
        record = records[source]
        world = with_max_objects(predictor.world, len(record["objects"]))  # --max-objects
        scene = Scene.from_json(record, world, predictor.shapes)
        extra = [
            {key: obj[key] for key in ("presence", "confidence", "position_sd") if key in obj}
            for obj in record["objects"]
        ]
        scenes.append(scene_to_clevr(scene, source, index, predictor.world, "inferred", extra))
    model = {"name": predictor.name, "checkpoint_hash": predictor.checkpoint_hash}
    write_clevr(out, clevr_document(scenes, model=model, inferences=str(lines)))
    return len(scenes)
