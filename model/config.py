"""Configuration of the inference network q(z | x)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class ModelConfig:
    kind: str = "air"  # "air": recurrent attend-infer-repeat; "supervised": one-shot slot baseline
    encoder_channels: tuple[int, ...] = (32, 64, 64, 128)  # strided 3x3 convs over the image
    feature_dim: int = 256  # image code fed to the recurrent core at every step
    hidden_dim: int = 256  # GRU state
    glimpse_size: int = 24  # attention window side, in pixels of the input image
    glimpse_channels: tuple[int, ...] = (32, 64, 64)  # convs over the glimpse
    glimpse_dim: int = 128  # glimpse code
    min_scale: float = 0.01  # floor of q's standard deviations (unconstrained units)
    glimpse_height: float = 0.3  # glimpses centre on the point this high above the ground:
    #                              about half an object's height in the model's world
    # How a step finds its object: "regress" (from the recurrent state, which reads one code
    # of the whole image) or "spatial" (a categorical over the cells of a feature map that
    # stays spatial, beside a map of the objects found so far: model/spatial.py).
    where: str = "regress"
    map_channels: tuple[int, ...] = (32, 64, 64)  # spatial: stride-2 3x3 convs; the map is
    #                                              1/2^n of the image (64 px: 8 x 8 cells)
    map_context: int = 2  # spatial: stride-1 3x3 convs on the map (an object and its neighbours)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        check_keys(cls, data, "model config")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def check_keys(config_class: type, data: dict[str, Any], what: str) -> None:
    """ValueError naming unknown keys (typos) and the known ones."""
    known = {f.name for f in fields(config_class)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown {what} keys {sorted(unknown)}; known: {sorted(known)}")
