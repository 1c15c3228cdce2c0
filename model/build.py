"""Builds the network a ModelConfig names."""

from __future__ import annotations

from torch import nn

from air3d.model.air import AIR
from air3d.model.config import ModelConfig
from air3d.model.spatial import SpatialAIR
from air3d.model.supervised import SlotBaseline
from air3d.renderer import ShapeLibrary, World

NETWORKS = {"air": AIR, "supervised": SlotBaseline}
WHERE = {"regress": AIR, "spatial": SpatialAIR}  # kind "air": how a step finds its object


def build_model(config: ModelConfig, world: World, shapes: ShapeLibrary) -> nn.Module:
    if config.kind not in NETWORKS:
        raise ValueError(f"unknown model kind {config.kind!r}; known: {', '.join(NETWORKS)}")
    if config.kind == "air":
        if config.where not in WHERE:
            raise ValueError(f"unknown where {config.where!r}; known: {', '.join(WHERE)}")
        return WHERE[config.where](config, world, shapes)
    return NETWORKS[config.kind](config, world, shapes)
