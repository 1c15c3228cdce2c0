"""The goals a report is checked against: each a dotted key into the report, an op, a threshold.

Targets are data of a world: the optional `targets:` section of its world.yaml (the renderer
and the prior ignore it; a checkpoint does not store it, so a model is always held to its
world's current goals). A world without the section has none, and its report says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from air3d.renderer.world import World
from air3d.renderer.worlds import DEFAULT_WORLD, shipped_worlds, world_files

OPS = (">=", "<=")
UNITS = ("fraction", "%", "deg", "ms", "")
# World.name of checkpoints made before worlds had names: all were the tabletop's.
UNNAMED = "custom"


@dataclass(frozen=True)
class Target:
    """One goal of a world's model, checked against a report."""

    key: str  # where the value lives: "metrics.<name>", "timing.<name>", "ap.values.<d>"
    label: str
    op: str  # ">=" or "<="
    threshold: float
    unit: str  # how to print the value: "fraction" (as %; AP too), "%", "deg", "ms"
    # Only for data drawn by this renderer (meta.json's "renderer": pytorch3d, blender,
    # mujoco); None: for any data.
    renderer: str | None = None

    def passed(self, value: float | None) -> bool | None:
        if value is None:
            return None
        return value >= self.threshold if self.op == ">=" else value <= self.threshold

    def applies_to(self, renderer: str | None) -> bool:
        """Whether the target holds for data drawn by `renderer` (None: unknown, e.g. CLEVR's
        own images: only the targets for any data)."""
        return self.renderer is None or self.renderer == renderer


def parse_targets(section: Any, where: str = "targets") -> tuple[Target, ...]:
    """A world.yaml `targets:` list, each {key, label, op, threshold, unit[, renderer]}."""
    if section is None:
        return ()
    if not isinstance(section, list):
        raise ValueError(f"{where}: must be a list of {{key, label, op, threshold, unit}}")
    targets = []
    for i, entry in enumerate(section):
        if not isinstance(entry, dict):
            raise ValueError(f"{where}[{i}]: must be a mapping {{key, label, op, threshold, unit}}")
        try:
            target = Target(**{**entry, "threshold": float(entry["threshold"])})
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(
                f"{where}[{i}]: {error}; a target is {{key, label, op, threshold, unit"
                "[, renderer]}"
            ) from None
        if target.op not in OPS:
            raise ValueError(f"{where}[{i}].op: {target.op!r}; known: {', '.join(OPS)}")
        if target.unit not in UNITS:
            raise ValueError(f"{where}[{i}].unit: {target.unit!r}; known: {', '.join(UNITS)}")
        targets.append(target)
    return tuple(targets)


def load_targets(config: str | Path) -> tuple[Target, ...]:
    """The targets of a world.yaml file (() where it has no `targets:` section)."""
    data = yaml.safe_load(Path(config).read_text())
    section = data.get("targets") if isinstance(data, dict) else None
    return parse_targets(section, f"{config}: targets")


def world_targets(world: World, where: str | Path | None = None) -> tuple[Target, ...]:
    """The targets of `world`, read from its folder: `where` (a --world NAME or PATH) if
    given, else the shipped world of its name; a world found neither way has none."""
    if where is None:
        name = DEFAULT_WORLD if world.name == UNNAMED else world.name
        if name not in shipped_worlds():
            return ()
        where = name
    return load_targets(world_files(where)[0])


def lookup(report: dict[str, Any], key: str) -> Any:
    """The value at a dotted key ("metrics.count_accuracy", "ap.values.0.125": a part may
    hold dots, the longest key present wins); None where it is missing."""
    value: Any = report
    parts = key.split(".")
    while parts:
        if not isinstance(value, dict):
            return None
        for end in range(len(parts), 0, -1):
            part = ".".join(parts[:end])
            if part in value:
                value, parts = value[part], parts[end:]
                break
        else:
            return None
    return value


def check_targets(report: dict[str, Any], targets: Sequence[Target]) -> list[dict[str, Any]]:
    """Each target that applies to the report's data (its `renderer`), with the report's
    value and whether it is met (None: no data)."""
    renderer = report.get("renderer")
    return [
        {**asdict(t), "value": lookup(report, t.key), "passed": t.passed(lookup(report, t.key))}
        for t in targets
        if t.applies_to(renderer)
    ]
