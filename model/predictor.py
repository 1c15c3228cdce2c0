"""Inference: one forward pass of q gives the scene and the probabilities behind it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from air3d.assets import ASSETS_DIR
from air3d.model.build import build_model
from air3d.model.checkpoint import file_hash, load_checkpoint
from air3d.model.config import ModelConfig
from air3d.renderer import Scene, SceneObject, ShapeLibrary, World

DEFAULT_CHECKPOINT = ASSETS_DIR / "model" / "default.pt"


@dataclass(frozen=True)
class InferredObject:
    shape: str
    position: tuple[float, float, float]
    yaw_deg: float
    presence: float  # q's probability that this step holds an object
    shape_probs: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        return {
            "shape": self.shape,
            "position": list(self.position),
            "yaw_deg": self.yaw_deg,
            "presence": self.presence,
            "shape_probs": dict(self.shape_probs),
        }


@dataclass(frozen=True)
class Inference:
    objects: tuple[InferredObject, ...]

    def to_json(self) -> dict[str, Any]:
        return {"objects": [obj.to_json() for obj in self.objects], "count": len(self.objects)}

    def scene(self) -> Scene:
        return Scene(tuple(SceneObject(o.shape, o.position, o.yaw_deg) for o in self.objects))


class Predictor:
    """A trained q(z | x), ready to answer: images (B, 3, S, S) in [0, 1] -> Inferences."""

    def __init__(
        self,
        model: nn.Module,
        world: World,
        shapes: ShapeLibrary,
        name: str,
        checkpoint_hash: str,
        max_objects: int | None = None,
    ):
        self.model = model.eval()
        self.max_objects = max_objects  # None: as trained; more lets AIR run extra steps
        self.world, self.shapes = world, shapes
        self.name, self.checkpoint_hash = name, checkpoint_hash
        self.device = next(model.parameters()).device
        self.image_size = world.image_size

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, device: str | torch.device = "cpu", max_objects: int | None = None
    ) -> Predictor:
        checkpoint = load_checkpoint(path, "cpu")
        try:
            world = World.from_dict(checkpoint["world"])
            shapes = ShapeLibrary.from_dict(checkpoint["shapes"])
            config = ModelConfig.from_dict(checkpoint["model_config"])
            model = build_model(config, world, shapes)
            model.load_state_dict(checkpoint["model"])
        except (KeyError, TypeError, RuntimeError) as error:
            raise ValueError(f"checkpoint {path} does not fit its own config: {error}") from None
        name = f"air3d-{config.kind}-{Path(path).stem}"
        return cls(model.to(device), world, shapes, name, file_hash(path), max_objects)

    def warmup(self) -> None:
        self.infer(torch.zeros(1, 3, self.image_size, self.image_size))

    @torch.inference_mode()
    def infer(self, images: torch.Tensor) -> list[Inference]:
        expected = (3, self.image_size, self.image_size)
        if images.dim() != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(f"images must be (B, {expected}) floats; got {tuple(images.shape)}")
        out = self.model(images.to(self.device, torch.float32), "mean", self.max_objects)
        presence = torch.sigmoid(out.stack("pres_logit")).cpu()  # (B, N)
        shape_probs = torch.softmax(out.stack("shape_logits"), -1).cpu()  # (B, N, S)
        xz = self.model.latents.squash(out.stack("xz_loc")).cpu()  # (B, N, 2)
        shape, yaw = out.stack("shape").cpu(), out.stack("yaw").cpu()
        recurrent = self.model.config.kind == "air"
        return [
            self._inference(presence[b], shape_probs[b], xz[b], shape[b], yaw[b], recurrent)
            for b in range(images.shape[0])
        ]

    def _inference(self, presence, shape_probs, xz, shape, yaw, recurrent: bool) -> Inference:
        objects = []
        for n in range(presence.shape[0]):
            if presence[n] <= 0.5:
                if recurrent:
                    break  # AIR stops at the first absent step
                continue
            spec = self.shapes.specs[int(shape[n])]
            objects.append(
                InferredObject(
                    shape=spec.name,
                    position=(float(xz[n, 0]), spec.height / 2, float(xz[n, 1])),
                    yaw_deg=math.degrees(float(yaw[n])) % 360.0,
                    presence=float(presence[n]),
                    shape_probs={
                        name: float(p)
                        for name, p in zip(self.shapes.names, shape_probs[n], strict=True)
                    },
                )
            )
        return Inference(tuple(objects))
