"""Test-time refinement: render-and-compare from q's answer.

q's answer is a good guess made in one pass; the renderer can check it. `Refiner.refine`
takes the answer (a SceneBatch with one slot per AIR step) and
1. sweeps the discrete latents: each object tries every shape; each object is dropped;
   an object is added where the image is least explained (the peak of the blurred
   |x - render(z)|, back-projected onto the ground, in every shape and a few yaws);
2. takes K Adam steps on the continuous latents (x, z, yaw) through the soft renderer,
   on log p(x | z) + log p(z) (scene search's `ascend`);
3. sweeps again.
Every change is kept only for the scenes whose crisp log p(x, z) it raises, so a refined
answer never scores below q's. K = 0 is plain AIR (nothing runs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from air3d.renderer import SceneBatch, SceneRenderer, ShapeLibrary, World
from air3d.renderer.camera import projection_matrix, unproject_to_plane
from air3d.renderer.prior_density import PriorDensity
from air3d.renderer.search import SceneSearch, blur, take

MAX_REFINE_STEPS = 50  # largest K the CLI and the service accept (about 0.1 s per image each)


@dataclass(frozen=True)
class RefineConfig:
    lr: float = 0.01  # Adam step: world units for x, z (~0.2 px), radians for yaw (~0.6 deg)
    faces_per_pixel: int = 3  # soft rendering in the ascent (the world's 8 are for training)
    residual_blur_px: float = 3.0  # blur (px) of |x - render|: peaks at blob centres, not edges
    add_yaws: int = 4  # yaws tried for a proposed object, evenly over 90 degrees

    def __post_init__(self) -> None:
        for name in ("lr", "faces_per_pixel", "add_yaws"):
            if getattr(self, name) <= 0:
                raise ValueError(f"RefineConfig.{name} must be > 0, got {getattr(self, name)}")
        if self.residual_blur_px < 0:
            raise ValueError(
                f"RefineConfig.residual_blur_px must be >= 0, got {self.residual_blur_px}"
            )


def check_refine_steps(steps: int) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or not 0 <= steps <= MAX_REFINE_STEPS:
        raise ValueError(f"refine: {steps!r} steps; must be an integer in 0..{MAX_REFINE_STEPS}")


class Refiner:
    """Takes images (B, 3, S, S) and answers (SceneBatch, B scenes) to better answers."""

    def __init__(
        self,
        world: World,
        shapes: ShapeLibrary,
        max_count: int,
        config: RefineConfig | None = None,
        device: torch.device | str = "cpu",
    ):
        self.config = config or RefineConfig()
        self.device = torch.device(device)
        rendering = replace(world.rendering, soft_faces_per_pixel=self.config.faces_per_pixel)
        renderer = SceneRenderer(replace(world, rendering=rendering), shapes, self.device)
        self.prior = PriorDensity(world, shapes, max_count)
        self.search = SceneSearch(renderer, self.prior)
        self._projection = projection_matrix(world)
        self._heights = [spec.height for spec in shapes.specs]

    def refine(self, images: torch.Tensor, batch: SceneBatch, steps: int) -> SceneBatch:
        check_refine_steps(steps)
        if steps == 0:
            return batch
        # Clones: q's answer may be made of inference-mode tensors, which autograd refuses.
        batch = SceneBatch(*(t.to(self.device).clone() for t in _fields(batch)))
        target = images.to(self.device, torch.float32)
        batch = self.sweep(batch, target)
        batch = self._better(
            self.search.ascend(batch, target, steps, self.config.lr), batch, target
        )
        return self.sweep(batch, target)

    def sweep(self, batch: SceneBatch, target: torch.Tensor) -> SceneBatch:
        """Swap shapes, drop objects, add one: each kept only where it raises log p(x, z)."""
        batch = self.search.sweep_shapes(batch, target)
        return self._add(self._drop(batch, target), target)

    def _better(self, a: SceneBatch, b: SceneBatch, target: torch.Tensor) -> SceneBatch:
        """Scene by scene, a where it scores higher than b, else b."""
        return _where(self.search.score(a, target) > self.search.score(b, target), a, b)

    def _drop(self, batch: SceneBatch, target: torch.Tensor) -> SceneBatch:
        """Drops the object whose absence raises the score most, while one does."""
        B, N = batch.present.shape
        score = self.search.score(batch, target)
        for _ in range(N):
            # Trials (B * N), scene-major: scene b without slot n.
            present = batch.present.repeat_interleave(N, 0)
            present[torch.arange(B * N), torch.arange(N).repeat(B)] = False
            trial = SceneBatch(
                batch.shape.repeat_interleave(N, 0),
                present,
                batch.xz.repeat_interleave(N, 0),
                batch.yaw.repeat_interleave(N, 0),
            )
            log_lik = self.search.log_likelihood(trial, target.repeat_interleave(N, 0))
            log_lik, scores = log_lik.view(B, N), (log_lik + self.prior.log_prob(trial)).view(B, N)
            # A scene that breaks the minimum separation (q stacked two steps on one object)
            # scores -inf, and so may every single drop: it drops the object that the
            # likelihood misses least, one a round, until it is a valid scene.
            infeasible = score == -math.inf
            best = torch.where(infeasible[:, None], log_lik, scores).argmax(1)
            best_score = scores.gather(1, best[:, None])[:, 0]
            better = (best_score > score) | infeasible  # dropping an empty slot changes nothing
            if not better.any():
                break
            batch = _where(better, take(trial, torch.arange(B) * N + best), batch)
            score = torch.where(better, best_score, score)
        return batch

    def _add(self, batch: SceneBatch, target: torch.Tensor) -> SceneBatch:
        """A new object in the first empty slot, at the peak of what the scene leaves
        unexplained, in every shape and `add_yaws` yaws: the best, where it scores higher."""
        free = ~batch.present  # (B, N)
        if not free.any():
            return batch
        B, N = batch.present.shape
        S, Y = len(self._heights), self.config.add_yaws
        with torch.no_grad():
            rendered = self.search.renderer(batch, "crisp")
        residual = blur(
            (target - rendered).abs().sum(1, keepdim=True), self.config.residual_blur_px
        )
        size = residual.shape[-1]
        peak = residual.flatten(1).argmax(1)  # (B,)
        pixel = torch.stack([peak % size, peak // size], -1).float() + 0.5  # (column, row)
        uv = pixel * 2.0 / size - 1.0  # (B, 2) image coordinates of the pixel's centre
        xz = torch.stack(  # (B, S, 2): where each shape would stand to appear there
            [unproject_to_plane(uv, self._projection, h / 2) for h in self._heights], 1
        )
        self.prior.clamp_to_workspace(xz)
        # Trials (B * S * Y), scene-major: scene b, shape s, yaw y.
        rows = torch.arange(B * S * Y, device=self.device)
        slot = free.float().argmax(1).repeat_interleave(S * Y)  # first empty slot
        shape = batch.shape.repeat_interleave(S * Y, 0)
        shape[rows, slot] = torch.arange(S, device=self.device).repeat_interleave(Y).repeat(B)
        present = batch.present.repeat_interleave(S * Y, 0)
        present[rows, slot] = True
        new_xz = batch.xz.repeat_interleave(S * Y, 0)
        new_xz[rows, slot] = xz.repeat_interleave(Y, 1).flatten(0, 1)
        yaw = batch.yaw.repeat_interleave(S * Y, 0)
        yaws = torch.arange(Y, device=self.device) * (math.pi / 2 / Y)
        yaw[rows, slot] = yaws.repeat(B * S)
        trial = SceneBatch(shape, present, new_xz, yaw)
        scores = self.search.score(trial, target.repeat_interleave(S * Y, 0)).view(B, S * Y)
        best_score, best = scores.max(1)
        chosen = take(trial, torch.arange(B, device=self.device) * S * Y + best)
        better = free.any(1) & (best_score > self.search.score(batch, target))
        return _where(better, chosen, batch)


def _fields(batch: SceneBatch) -> tuple[torch.Tensor, ...]:
    return batch.shape, batch.present, batch.xz, batch.yaw


def _where(condition: torch.Tensor, a: SceneBatch, b: SceneBatch) -> SceneBatch:
    """Scene by scene: a where condition (B,) holds, else b."""
    return SceneBatch(
        *(
            torch.where(condition.view(-1, *[1] * (x.dim() - 1)), x, y)
            for x, y in zip(_fields(a), _fields(b), strict=True)
        )
    )
