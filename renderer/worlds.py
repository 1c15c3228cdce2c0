"""Finding a world: a shipped one by name, or one of the user's by path.

A world is a folder: `world.yaml` (camera, lights, ground, attributes, prior: world.py)
and `shapes/` (the shape library: shapes.py). Shipped worlds live in the package's
`assets/worlds/NAME/`. `--world` on every command takes a NAME or a PATH.
"""

from __future__ import annotations

from pathlib import Path

from air3d.assets import ASSETS_DIR
from air3d.renderer.shapes import (
    DEFAULT_SHAPES_DIR,
    ShapeLibrary,
    expand_kinds,
    load_shape_library,
)
from air3d.renderer.world import World, load_world

WORLDS_DIR = ASSETS_DIR / "worlds"
DEFAULT_WORLD = "tabletop"
WORLD_HELP = "world: a shipped NAME (tabletop, clevr) or a PATH (folder or world.yaml)"


def shipped_worlds() -> list[str]:
    """Names of the worlds that ship with air3d."""
    return sorted(p.name for p in WORLDS_DIR.iterdir() if (p / "world.yaml").is_file())


def world_files(where: str | Path | None) -> tuple[Path, Path]:
    """(world.yaml, shapes folder) of a world NAME or PATH (None: the default world).

    A PATH is a world folder, or a world.yaml file (its shapes are the `shapes/` folder
    beside it, else the default world's)."""
    where = DEFAULT_WORLD if where is None else where
    path = Path(where)
    if not path.exists() and (WORLDS_DIR / str(where) / "world.yaml").is_file():
        path = WORLDS_DIR / str(where)
    if path.is_dir():
        if not (path / "world.yaml").is_file():
            raise ValueError(f"world {str(where)!r}: {path} holds no world.yaml")
        return path / "world.yaml", path / "shapes"
    if path.is_file():
        beside = path.parent / "shapes"
        return path, beside if (beside / "manifest.yaml").is_file() else DEFAULT_SHAPES_DIR
    known = ", ".join(shipped_worlds())
    raise ValueError(f"world {str(where)!r}: no such world folder or file; shipped: {known}")


def kinds_of(world: World) -> ShapeLibrary:
    """The kinds of a world already read (e.g. from a data set's meta.json): the shapes of
    the shipped world of its name (the default world's for others), expanded by it."""
    where = world.name if world.name in shipped_worlds() else None
    return expand_kinds(load_shape_library(world_files(where)[1]), world)


def open_world(where: str | Path | None = None) -> tuple[World, ShapeLibrary]:
    """The world and its kinds of object (shapes expanded by the world's attributes)."""
    config, shapes_dir = world_files(where)
    world = load_world(config)
    return world, expand_kinds(load_shape_library(shapes_dir), world)
