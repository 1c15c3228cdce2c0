"""Test-time refinement: render-and-compare from q's answer.

q's answer is a good guess made in one pass; the renderer can check it. `Refiner.refine`
takes the answer (a SceneBatch with one slot per AIR step) and
0. undoes the image's tone curve (the gamma that best explains q's answer, `linearise`);
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
from air3d.renderer.camera import projection_matrices, projection_matrix, unproject_to_plane
from air3d.renderer.prior_density import PriorDensity
from air3d.renderer.search import SceneSearch, blur, take

MAX_REFINE_STEPS = 50  # largest K the CLI and the service accept (about 0.1 s per image each)


@dataclass(frozen=True)
class RefineConfig:
    lr: float = 0.01  # Adam step: world units for x, z (~0.2 px), radians for yaw (~0.6 deg)
    faces_per_pixel: int = 3  # soft rendering in the ascent (the world's 8 are for training)
    residual_blur_px: float = 3.0  # blur (px) of |x - render|: peaks at blob centres, not edges
    add_yaws: int = 4  # yaws tried for a proposed object, evenly over 90 degrees
    add_min_residual: float = 0.15  # no proposal where the blurred residual peaks below this
    tone_gammas: tuple[float, ...] = (1.0, 1.8, 2.2, 2.4)  # tone curves tried per image
    add_grid_step: float = 0.1  # world units (~2 px) between the 3 x 3 positions tried for it

    def __post_init__(self) -> None:
        for name in ("lr", "faces_per_pixel", "add_yaws", "add_grid_step"):
            if getattr(self, name) <= 0:
                raise ValueError(f"RefineConfig.{name} must be > 0, got {getattr(self, name)}")
        if not self.tone_gammas or min(self.tone_gammas) <= 0:
            raise ValueError(f"RefineConfig.tone_gammas must be positive, got {self.tone_gammas}")
        for name in ("residual_blur_px", "add_min_residual"):
            if getattr(self, name) < 0:
                raise ValueError(f"RefineConfig.{name} must be >= 0, got {getattr(self, name)}")


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
        self.world = world
        self._projection = projection_matrix(world)  # scenes without a camera of their own
        # An added object tries every shape with each attribute at its first value; a
        # sweep then picks its attributes (every kind would be 96 trials in CLEVR's world).
        index = shapes.factor_index()
        self._add_kinds = torch.tensor([k for k, row in enumerate(index) if not row[1:].any()])
        self._heights = [shapes.specs[k].height for k in self._add_kinds.tolist()]
        self._has_attributes = index.shape[1] > 1
        step = self.config.add_grid_step
        offsets = torch.tensor([-step, 0.0, step])
        self._grid = torch.cartesian_prod(offsets, offsets)  # (9, 2) around the peak, x and z

    def refine(self, images: torch.Tensor, batch: SceneBatch, steps: int) -> SceneBatch:
        check_refine_steps(steps)
        if steps == 0:
            return batch
        # Clones: q's answer may be made of inference-mode tensors, which autograd refuses.
        batch = SceneBatch(*(t.to(self.device).clone() for t in _fields(batch)))
        target = self.linearise(images.to(self.device, torch.float32), batch)
        batch = self.sweep(batch, target)
        batch = self._better(
            self.search.ascend(batch, target, steps, self.config.lr), batch, target
        )
        return self.sweep(batch, target)

    def linearise(self, images: torch.Tensor, batch: SceneBatch) -> torch.Tensor:
        """The images through the inverse of the tone curve x = render^(1 / gamma) that best
        explains q's answer `batch`, gamma from `tone_gammas` per image.

        The pixel likelihood compares absolute values: an image saved with a tone curve
        (sRGB, as most cameras and renderers write) is worse explained by the true scene
        than by a wrong one, and refinement on it would chase the look. Estimating this one
        appearance parameter per image by maximum likelihood keeps it honest; gamma 1 (the
        renderer's linear look) wins on images like the renderer's own.
        """
        gammas = torch.tensor(self.config.tone_gammas, device=images.device)
        if (gammas == 1.0).all():
            return images
        with torch.no_grad():
            rendered = self.search.renderer(batch, "crisp")
        clamped = images.clamp(min=0.0)
        errors = torch.stack(
            [(clamped**g - rendered).pow(2).flatten(1).sum(1) for g in gammas.tolist()], 1
        )  # (B, G), in the renderer's linear space
        return clamped ** gammas[errors.argmin(1)].view(-1, 1, 1, 1)

    def sweep(self, batch: SceneBatch, target: torch.Tensor) -> SceneBatch:
        """Swap shapes, drop objects, add one: each kept only where it raises log p(x, z)."""
        batch = self.search.sweep_shapes(batch, target)
        batch = self._add(self._drop(batch, target), target)
        return self.search.sweep_shapes(batch, target) if self._has_attributes else batch

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
            trial = batch.repeat_scenes(N).with_present(present)
            log_lik = self.search.log_likelihood(trial, target.repeat_interleave(N, 0))
            log_lik, scores = log_lik.view(B, N), (log_lik + self.prior.log_prob(trial)).view(B, N)
            # A scene that breaks the minimum separation (q stacked two steps on one object)
            # scores -inf, and so may every single drop: it drops the object that the
            # likelihood misses least, one a round, until it is a valid scene.
            infeasible = score == -math.inf
            key = torch.where(infeasible[:, None], log_lik, scores)
            best = key.masked_fill(~batch.present, -math.inf).argmax(1)
            best_score = scores.gather(1, best[:, None])[:, 0]
            better = (best_score > score) | infeasible  # dropping an empty slot changes nothing
            if not better.any():
                break
            batch = _where(better, take(trial, torch.arange(B) * N + best), batch)
            score = torch.where(better, best_score, score)
        return batch

    def _add(self, batch: SceneBatch, target: torch.Tensor) -> SceneBatch:
        """A new object in the first empty slot, where it scores higher: placed at the peak
        of what the scene leaves unexplained, its shape and yaw the likeliest there of every
        shape and `add_yaws` yaws, then its position the best of a small grid around the
        peak (the peak of a blurred blob sits off the object's centre, and a guess too near
        another object breaks the prior's minimum separation)."""
        S, Y, cfg = len(self._heights), self.config.add_yaws, self.config
        with torch.no_grad():
            rendered = self.search.renderer(batch, "crisp")
        unexplained = (target - rendered).abs().sum(1, keepdim=True)  # (B, 1, S, S)
        residual = blur(unexplained, cfg.residual_blur_px)
        free = ~batch.present  # (B, N)
        tried = free.any(1) & (residual.flatten(1).amax(1) >= cfg.add_min_residual)
        if not tried.any():
            return batch
        kept, batch, target, residual = batch, take(batch, tried), target[tried], residual[tried]
        free = free[tried]
        size = residual.shape[-1]
        peak = residual.flatten(1).argmax(1)  # (B,)
        pixel = torch.stack([peak % size, peak // size], -1).float() + 0.5  # (column, row)
        uv = pixel * 2.0 / size - 1.0  # (B, 2) image coordinates of the pixel's centre
        matrix = self._projection  # each scene's own camera where q estimated one
        if batch.eye is not None:
            matrix = projection_matrices(self.world, batch.eye)
        xz = torch.stack(  # (B, S, 2): where each shape would stand to appear there
            [unproject_to_plane(uv, matrix, h / 2) for h in self._heights], 1
        )
        slot = free.float().argmax(1)  # (B,) first empty slot
        # 1. Shape and yaw: candidates (B, S * Y), shape-major.
        shapes = torch.arange(S, device=self.device).repeat_interleave(Y).expand(len(batch), -1)
        yaws = (torch.arange(Y, device=self.device) * (math.pi / 2 / Y)).repeat(S)
        kinds = self._add_kinds.to(self.device)
        trial = self._with_object(
            batch, slot, kinds[shapes], xz.repeat_interleave(Y, 1), yaws.expand(len(batch), -1)
        )
        log_lik = self.search.log_likelihood(trial, target.repeat_interleave(S * Y, 0))
        best = log_lik.view(len(batch), S * Y).argmax(1)  # (B,)
        chosen_shape, yaw = shapes[0][best], yaws[best]
        shape = kinds[chosen_shape]
        # 2. Position: the chosen shape and yaw on a grid around the peak, scored in full.
        at = xz[torch.arange(len(batch)), chosen_shape]  # (B, 2)
        grid = self._grid.to(at)  # (G, 2)
        G = len(grid)
        positions = at[:, None] + grid[None]  # (B, G, 2)
        self.prior.clamp_to_workspace(positions)
        trial = self._with_object(
            batch, slot, shape[:, None].expand(-1, G), positions, yaw[:, None].expand(-1, G)
        )
        scores = self.search.score(trial, target.repeat_interleave(G, 0)).view(len(batch), G)
        best_score, best = scores.max(1)
        chosen = take(trial, torch.arange(len(batch), device=self.device) * G + best)
        better = best_score > self.search.score(batch, target)
        added = _where(better, chosen, batch)
        return _scatter(kept, tried, added)

    @staticmethod
    def _with_object(
        batch: SceneBatch, slot: torch.Tensor, shape: torch.Tensor, xz: torch.Tensor, yaw
    ) -> SceneBatch:
        """Scene b with one object in `slot[b]`, for each of T candidates: shape (B, T),
        xz (B, T, 2), yaw (B, T) -> B * T scenes, scene-major."""
        B, T = shape.shape
        rows, slots = torch.arange(B * T), slot.repeat_interleave(T)
        out = [t.repeat_interleave(T, 0) for t in _fields(batch)]
        out[0][rows, slots] = shape.flatten()
        out[1][rows, slots] = True
        out[2][rows, slots] = xz.flatten(0, 1)
        out[3][rows, slots] = yaw.flatten()
        return SceneBatch(*out)


def _fields(batch: SceneBatch) -> tuple[torch.Tensor, ...]:
    """The batch's tensors in constructor order, its cameras (eye) last where it has them."""
    fields = (batch.shape, batch.present, batch.xz, batch.yaw)
    return fields if batch.eye is None else (*fields, batch.eye)


def _scatter(batch: SceneBatch, mask: torch.Tensor, some: SceneBatch) -> SceneBatch:
    """batch with its scenes where mask (B,) holds replaced by `some`, in order."""
    out = [t.clone() for t in _fields(batch)]
    for field, new in zip(out, _fields(some), strict=True):
        field[mask] = new
    return SceneBatch(*out)


def _where(condition: torch.Tensor, a: SceneBatch, b: SceneBatch) -> SceneBatch:
    """Scene by scene: a where condition (B,) holds, else b."""
    return SceneBatch(
        *(
            torch.where(condition.view(-1, *[1] * (x.dim() - 1)), x, y)
            for x, y in zip(_fields(a), _fields(b), strict=True)
        )
    )
