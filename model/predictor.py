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
from air3d.model.frozen import ANSWER_FIELDS, FrozenQ
from air3d.model.refine import Refiner, check_refine_steps
from air3d.renderer import Scene, SceneBatch, SceneObject, ShapeLibrary, World

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
        refine: int = 0,
        frozen: bool = False,
    ):
        self.model = model.eval()
        # q as a frozen graph (model/frozen.py): 1.6x the eager model at batch 1 on CPU,
        # made on first use (under a second); off for a model still in training.
        self.frozen = frozen and FrozenQ.applies(model)
        self._frozen_q: FrozenQ | None = None
        self.max_objects = max_objects  # None: as trained; more lets AIR run extra steps
        check_refine_steps(refine)
        self.refine = refine  # render-and-compare steps after q (model/refine.py); 0: plain AIR
        self._refiner: Refiner | None = None  # built on first use
        self.world, self.shapes = world, shapes
        self.name, self.checkpoint_hash = name, checkpoint_hash
        self.device = next(model.parameters()).device
        self.image_size = world.image_size

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str | torch.device = "cpu",
        max_objects: int | None = None,
        refine: int = 0,
        frozen: bool = True,
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
        model, checkpoint_hash = model.to(device), file_hash(path)
        return cls(model, world, shapes, name, checkpoint_hash, max_objects, refine, frozen)

    def warmup(self) -> None:
        """Makes the frozen graphs (one image, a batch) and runs each twice: TorchScript
        profiles a graph's first run and optimises it on the second (1-2 s in all)."""
        for batch in (1, 1, 2, 2):
            self.infer(torch.zeros(batch, 3, self.image_size, self.image_size))

    def infer(self, images: torch.Tensor, refine: int | None = None) -> list[Inference]:
        """refine: render-and-compare steps for this call (None: the Predictor's own)."""
        expected = (3, self.image_size, self.image_size)
        if images.dim() != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(f"images must be (B, {expected}) floats; got {tuple(images.shape)}")
        steps = self.refine if refine is None else refine
        check_refine_steps(steps)
        answer, presence, shape_probs = self._ask_q(images)
        if steps:
            answer = self.refiner().refine(images, answer, steps).to("cpu")
        # Python lists once, not a tensor index per number: 64 answers in 0.4 ms, not 1.5.
        columns = (answer.present, answer.shape, answer.xz, answer.yaw, presence, shape_probs)
        scenes = zip(*(column.tolist() for column in columns), strict=True)
        return [self._inference(*scene) for scene in scenes]

    def refiner(self) -> Refiner:
        if self._refiner is None:
            steps = self.world.max_objects if self.max_objects is None else self.max_objects
            self._refiner = Refiner(self.world, self.shapes, steps, device=self.device)
        return self._refiner

    @torch.inference_mode()
    def _ask_q(self, images: torch.Tensor) -> tuple[SceneBatch, torch.Tensor, torch.Tensor]:
        """q's answer, one slot per step, and its presence (B, N) and shape probabilities
        (B, N, S) per step."""
        out = self._q_answer(images.to(self.device, torch.float32))
        presence = torch.sigmoid(out["pres_logit"]).cpu()  # (B, N)
        shape_probs = torch.softmax(out["shape_logits"], -1).cpu()  # (B, N, S)
        xz = self.model.latents.squash(out["xz_loc"]).cpu()  # (B, N, 2)
        present = presence > 0.5
        if self.model.config.kind == "air":  # AIR stops at the first absent step
            present = present.cumprod(1).bool()
        answer = SceneBatch(out["shape"].cpu(), present, xz, out["yaw"].cpu())
        return answer, presence, shape_probs

    def _q_answer(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """q's mean-mode answer: ANSWER_FIELDS stacked over steps (B, N, ...)."""
        if not self.frozen:
            out = self.model(images, "mean", self.max_objects)
            return {name: out.stack(name) for name in ANSWER_FIELDS}
        if self._frozen_q is None or not self._frozen_q.fits(self.max_objects):
            self._frozen_q = FrozenQ(self.model, self.max_objects, self.image_size)
        return self._frozen_q(images)

    def _inference(
        self,
        present: list[bool],
        shape: list[int],
        xz: list[list[float]],
        yaw: list[float],
        presence: list[float],
        shape_probs: list[list[float]],
    ) -> Inference:
        """One scene of the answer, each argument per step (N, ...); each object carries
        q's presence and shape probabilities at its step (an object that refinement added
        holds q's presence below 0.5)."""
        objects = []
        for n in (n for n, on in enumerate(present) if on):
            spec = self.shapes.specs[shape[n]]
            x, z = xz[n]
            objects.append(
                InferredObject(
                    shape=spec.name,
                    position=(x, spec.height / 2, z),
                    yaw_deg=math.degrees(yaw[n]) % 360.0,
                    presence=presence[n],
                    shape_probs=dict(zip(self.shapes.names, shape_probs[n], strict=True)),
                )
            )
        return Inference(tuple(objects))
