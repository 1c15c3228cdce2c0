"""log p(z): the density of the world's prior over scenes, for scoring scenes (the
analysis-by-synthesis baseline; test-time refinement), beside prior.py's sampling."""

from __future__ import annotations

import math

import numpy as np
import torch

from air3d.renderer.prior import shape_probabilities
from air3d.renderer.scene import SceneBatch
from air3d.renderer.shapes import ShapeLibrary
from air3d.renderer.world import World


class PriorDensity:
    """log p(z) of the scene config's prior: count, then per object a shape, a position
    uniform over the workspace and a yaw uniform over the circle.

    Searching beyond the prior's counts (max_count > max_objects, for scenes with more
    objects than the prior allows) replaces the count prior by a uniform one over
    0..max_count: the prior's own gives such scenes probability zero.
    """

    def __init__(self, world: World, shapes: ShapeLibrary, max_count: int | None = None):
        ws, prior = world.workspace, world.prior
        self.low = torch.tensor([ws.x[0], ws.z[0]])
        self.high = torch.tensor([ws.x[1], ws.z[1]])
        count_probs = list(prior.count_probs)
        if max_count is not None and max_count >= len(count_probs):
            count_probs = [1.0 / (max_count + 1)] * (max_count + 1)
        self.log_count = [math.log(p) if p > 0 else -math.inf for p in count_probs]
        self.min_separation = prior.min_separation
        shape_p = shape_probabilities(world, shapes)
        self.shape_p = np.asarray(shape_p, dtype=np.float64)
        self.log_shape = torch.tensor(shape_p, dtype=torch.float32).log()
        # Density of one object's position and yaw (uniform), per object.
        self.log_place = -math.log(ws.width * (ws.z[1] - ws.z[0])) - math.log(2 * math.pi)

    def log_prob(self, batch: SceneBatch) -> torch.Tensor:
        """(B,) log p(z) of the present objects of each scene (empty slots hold nothing);
        -inf where two objects are closer than the minimum separation."""
        device = batch.shape.device
        log_count = torch.tensor([*self.log_count, -math.inf], device=device)
        count = batch.present.sum(1).clamp(max=len(self.log_count))  # beyond: the -inf entry
        log_object = self.log_shape.to(device)[batch.shape] + self.log_place  # (B, N)
        log_p = log_count[count] + torch.where(batch.present, log_object, 0.0).sum(1)
        return log_p.masked_fill(self.too_close(batch.xz, batch.present), -math.inf)

    def too_close(self, xz: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
        """(B,) whether any two of the (B, N, 2) positions are under min_separation apart;
        only slots where `present` (B, N) holds count (default: all)."""
        N = xz.shape[1]
        if N < 2:
            return torch.zeros(xz.shape[0], dtype=torch.bool, device=xz.device)
        distance = torch.cdist(xz, xz)  # (B, N, N)
        distance = distance + torch.eye(N, device=xz.device) * self.min_separation
        close = distance < self.min_separation
        if present is not None:
            close = close & present[:, :, None] & present[:, None, :]
        return close.flatten(1).any(1)

    def sample_objects(self, n: int, rng: np.random.Generator, device: torch.device) -> SceneBatch:
        """n single-object scenes drawn from the prior."""
        xz = rng.uniform(self.low.numpy(), self.high.numpy(), size=(n, 2))
        shape = rng.choice(len(self.shape_p), size=n, p=self.shape_p)
        yaw = rng.uniform(0.0, 2 * math.pi, size=n)
        return SceneBatch(
            torch.as_tensor(shape, device=device)[:, None],
            torch.ones(n, 1, dtype=torch.bool, device=device),
            torch.as_tensor(xz, dtype=torch.float32, device=device)[:, None],
            torch.as_tensor(yaw, dtype=torch.float32, device=device)[:, None],
        )

    def clamp_to_workspace(self, xz: torch.Tensor) -> None:
        """Projects positions (..., 2) back into the workspace, in place."""
        xz.copy_(torch.maximum(torch.minimum(xz, self.high.to(xz)), self.low.to(xz)))
