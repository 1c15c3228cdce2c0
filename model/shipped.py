"""The shipped models: one per shipped world, `assets/model/NAME.pt` (tabletop's is
`default.pt`). `--world NAME` on infer, evaluate and serve picks the world's model;
`--checkpoint` overrides it, and must then be a model of that world."""

from __future__ import annotations

from pathlib import Path

from air3d.assets import ASSETS_DIR
from air3d.renderer.world import World, load_world
from air3d.renderer.worlds import DEFAULT_WORLD, shipped_worlds, world_files

MODELS_DIR = ASSETS_DIR / "model"
DEFAULT_CHECKPOINT = MODELS_DIR / "default.pt"  # the tabletop world's model
UNNAMED = "custom"  # World.name of checkpoints made before worlds had names


def shipped_checkpoint(world: str | None) -> Path:
    """The shipped model of a world NAME (None: the default world); ValueError for a world
    that ships no model (a PATH: train one, then pass --checkpoint)."""
    name = DEFAULT_WORLD if world is None else str(world)
    if name == DEFAULT_WORLD:
        return DEFAULT_CHECKPOINT
    if name not in shipped_worlds():
        raise ValueError(
            f"world {name!r} ships no model; train one (air3d train --world {name}) "
            "and pass it with --checkpoint PATH"
        )
    return MODELS_DIR / f"{name}.pt"


def choose_checkpoint(checkpoint: Path | None, world: str | None) -> Path:
    """--checkpoint if given, else the shipped model of --world (default: tabletop's)."""
    return checkpoint if checkpoint is not None else shipped_checkpoint(world)


def check_world(model_world: World, world: str | None, checkpoint: Path) -> None:
    """ValueError when --world names another world than the one the checkpoint was trained
    in (checkpoints from before worlds had names are not checked)."""
    if world is None or model_world.name == UNNAMED:
        return
    wanted = load_world(world_files(world)[0]).name
    if model_world.name != wanted:
        raise ValueError(
            f"{checkpoint} is a model of world {model_world.name!r}, not {wanted!r}: "
            f"drop --world, or pass a checkpoint trained in {wanted!r}"
        )
