"""Searching scene space under the generative model, without q: score scenes by
log p(x | z) + log p(z), ascend positions and yaws through the soft renderer, sweep shapes.

Shared by the analysis-by-synthesis baseline (evaluation/abs_baseline.py) and test-time
refinement of q's answers (model/refine.py). Targets are (1, 3, H, W) (one image scored
against every scene of the batch) or (B, 3, H, W) (one image per scene).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from air3d.renderer.likelihood import gaussian_log_likelihood
from air3d.renderer.prior_density import PriorDensity
from air3d.renderer.renderer import SceneRenderer
from air3d.renderer.scene import SceneBatch


class SceneSearch:
    """One renderer (its image size is the targets') and the prior, scoring and improving
    SceneBatches. Crisp renders score, soft renders give the gradients."""

    def __init__(self, renderer: SceneRenderer, prior: PriorDensity):
        self.renderer, self.prior = renderer, prior
        self._swaps = [torch.as_tensor(table) for table in renderer.shapes.swaps()]
        self.pixel_sigma = renderer.world.pixel_sigma

    def log_likelihood(self, batch: SceneBatch, target: torch.Tensor) -> torch.Tensor:
        """log p(x | z) of each scene of the batch, (B,), with crisp renders."""
        with torch.no_grad():
            rendered = self.renderer(batch, "crisp")
        return gaussian_log_likelihood(target.expand_as(rendered), rendered, self.pixel_sigma)

    def score(self, batch: SceneBatch, target: torch.Tensor) -> torch.Tensor:
        """log p(x | z) + log p(z), (B,): crisp, so that it ranks what the user is shown."""
        return self.log_likelihood(batch, target) + self.prior.log_prob(batch)

    def ascend(
        self,
        batch: SceneBatch,
        target: torch.Tensor,
        steps: int,
        lr: float,
        blur_px: float = 0.0,
        blur_until: float = 0.6,
        shape_sweeps: int = 0,
    ) -> SceneBatch:
        """Adam on positions and yaws through the soft renderer's log p(x | z), with
        `shape_sweeps` shape sweeps spread over the steps and a blur of the images annealed
        from `blur_px` to none at `blur_until` of the steps (coarse to fine).

        log p(z) is flat in the continuous latents inside its support (uniform position
        and yaw), so it adds no gradient: its support is kept by projecting the positions
        back into the workspace after each step.
        """
        if not batch.present.any():  # nothing to move (and a render without gradient)
            return batch
        xz = batch.xz.clone().requires_grad_(True)
        yaw = batch.yaw.clone().requires_grad_(True)
        optimiser = torch.optim.Adam([xz, yaw], lr=lr)
        sweep_at = {round(steps * (i + 1) / (shape_sweeps + 1)) for i in range(shape_sweeps)}
        shape = batch.shape
        for step in range(steps):
            if step in sweep_at:
                current = batch.with_slots(shape, batch.present, xz.detach(), yaw.detach())
                shape = self.sweep_shapes(current, target).shape
            sigma = blur_px * max(0.0, 1.0 - step / max(blur_until * steps, 1e-9))
            rendered = self.renderer(batch.with_slots(shape, batch.present, xz, yaw), "soft")
            observed = target.expand_as(rendered)
            log_lik = gaussian_log_likelihood(
                blur(observed, sigma), blur(rendered, sigma), self.pixel_sigma
            )
            optimiser.zero_grad()
            (-log_lik.sum()).backward()
            optimiser.step()
            with torch.no_grad():
                self.prior.clamp_to_workspace(xz)
        return batch.with_slots(shape, batch.present, xz.detach(), yaw.detach())

    def sweep_shapes(
        self, batch: SceneBatch, target: torch.Tensor, max_passes: int = 3
    ) -> SceneBatch:
        """Passes over the slots: each object takes, one factor at a time (its shape,
        then each attribute), the value that scores best, everything else fixed. The
        current value is among the candidates, so no scene's score falls. A world without
        attributes tries every shape; CLEVR's tries 3 + 8 + 2 + 2 kinds, not 96.

        A pass that changed something is followed by another (up to `max_passes`): a
        factor chosen while another was still wrong (a shape judged in the wrong colour)
        gets a second look once the others are right."""
        shape = batch.shape.clone()
        for _ in range(max_passes):
            before = shape.clone()
            for table in self._swaps:
                for n in range(shape.shape[1]):
                    if batch.present[:, n].any():
                        shape[:, n] = self._best_value(batch, shape, n, table, target)
            if torch.equal(shape, before):
                break
        return batch.with_slots(shape, batch.present, batch.xz, batch.yaw)

    def _best_value(
        self,
        batch: SceneBatch,
        shape: torch.Tensor,
        n: int,
        table: torch.Tensor,
        target: torch.Tensor,
    ) -> torch.Tensor:
        """Slot n's kind (B,) after trying every value of one factor (`table`: kind ->
        the kinds that differ from it in that factor alone, (K, V))."""
        B, V = shape.shape[0], table.shape[1]
        candidates = table.to(shape.device)[shape[:, n]]  # (B, V) kinds
        variants = shape.repeat_interleave(V, dim=0)  # (B * V, N): scene b, value v
        variants[:, n] = candidates.flatten()
        repeated = batch.repeat_scenes(V)
        trial = repeated.with_slots(variants, repeated.present, repeated.xz, repeated.yaw)
        per_trial = target if len(target) == 1 else target.repeat_interleave(V, 0)
        scores = self.score(trial, per_trial).view(B, V)
        best_score, best = scores.max(1)
        now = (candidates == shape[:, n : n + 1]).float().argmax(1, keepdim=True)
        current = scores.gather(1, now)[:, 0]  # the current kind's score
        # Strictly better only: on ties (e.g. a scene at -inf) the kind stays.
        change = batch.present[:, n] & (best_score > current)
        chosen = candidates.gather(1, best[:, None])[:, 0]
        return torch.where(change, chosen, shape[:, n])


def blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (B, C, H, W) images with std `sigma` pixels (0: none)."""
    if sigma <= 0:
        return images
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    C = images.shape[1]
    padded = F.pad(images, (radius, radius, radius, radius), mode="replicate")
    out = F.conv2d(padded, kernel.view(1, 1, 1, -1).expand(C, 1, 1, -1), groups=C)
    return F.conv2d(out, kernel.view(1, 1, -1, 1).expand(C, 1, -1, 1), groups=C)


def empty_scene(device: torch.device) -> SceneBatch:
    """One scene with no objects (zero slots)."""
    return SceneBatch(
        torch.zeros(1, 0, dtype=torch.long, device=device),
        torch.zeros(1, 0, dtype=torch.bool, device=device),
        torch.zeros(1, 0, 2, device=device),
        torch.zeros(1, 0, device=device),
    )


def take(batch: SceneBatch, index: torch.Tensor | list[int]) -> SceneBatch:
    """The scenes of the batch at `index`, in that order."""
    return batch[index if isinstance(index, torch.Tensor) else torch.tensor(index)]


def cat_objects(a: SceneBatch, b: SceneBatch) -> SceneBatch:
    """Scene-wise concatenation of the object slots of two equally long batches, seen from
    a's cameras."""
    return a.with_slots(
        torch.cat([a.shape, b.shape], 1),
        torch.cat([a.present, b.present], 1),
        torch.cat([a.xz, b.xz], 1),
        torch.cat([a.yaw, b.yaw], 1),
    )
