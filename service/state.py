"""What the app holds while it runs: the model, its batcher, the decoders, the renderer."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import torch
from PIL import Image

from air3d.images import Canvas
from air3d.model import Inference, Predictor
from air3d.renderer import Scene, SceneRenderer
from air3d.renderer.camera import project, projection_matrices, projection_matrix, to_pixels
from air3d.service.admission import Admission
from air3d.service.batching import MicroBatcher
from air3d.service.decoding import decode
from air3d.service.metrics import Metrics
from air3d.service.settings import Settings


@dataclass
class ServiceState:
    settings: Settings
    predictor: Predictor
    metrics: Metrics
    batcher: MicroBatcher
    admission: Admission
    decoders: ThreadPoolExecutor  # settings.decode_threads: at most that many decodes at once
    ready: bool = False
    _renderer: SceneRenderer | None = None
    _render_lock: threading.Lock = field(default_factory=threading.Lock)
    _projection: torch.Tensor | None = None
    _canvas: Canvas | None = None

    @property
    def canvas(self) -> Canvas:
        """Where uploads go: the model's square input, letterboxed in a world with a frame
        (a model with a centre refiner takes a finer one: model/centre_refiner.py)."""
        if self._canvas is None:
            self._canvas = getattr(self.predictor, "canvas", None) or Canvas.of(
                self.predictor.world
            )
        return self._canvas

    async def decode(self, image: Image.Image) -> torch.Tensor:
        """A probed upload decoded in the decode pool: (3, S, S)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.decoders, self._decode_timed, image)

    def _decode_timed(self, image: Image.Image) -> torch.Tensor:
        started = time.perf_counter()
        try:
            return decode(image, self.canvas)
        finally:
            self.metrics.decode_seconds.observe(time.perf_counter() - started)

    def model_json(self) -> dict:
        p = self.predictor
        return {
            "name": p.name,
            "checkpoint_hash": p.checkpoint_hash,
            "image_size": p.image_size,
            "world": p.world.name,
            "frame_rows": list(p.world.frame_rows),
        }

    def inference_json(self, inference: Inference) -> dict:
        """The Inference's JSON plus `pixel`, where each object's centre appears in the image."""
        data = inference.to_json()
        if data["objects"]:
            if self._projection is None:
                self._projection = projection_matrix(self.predictor.world)
            matrix = self._projection
            if inference.camera is not None:  # q's camera (a world with camera jitter)
                eye = torch.tensor([inference.camera])
                matrix = projection_matrices(self.predictor.world, eye)[0]
            points = torch.tensor([o["position"] for o in data["objects"]])  # (N, 3)
            pixels = to_pixels(project(points, matrix), self.predictor.image_size)
            for obj, pixel in zip(data["objects"], pixels.tolist(), strict=True):
                obj["pixel"] = pixel
        return data

    def render_png(self, scene: Scene) -> torch.Tensor:
        """Draws a scene (crisp) at the model's image size; one render at a time."""
        with self._render_lock, torch.inference_mode():
            if self._renderer is None:
                p = self.predictor
                self._renderer = SceneRenderer(p.world, p.shapes, p.device)
            return self._renderer.render_scenes([scene])[0].cpu()  # (3, S, S)
