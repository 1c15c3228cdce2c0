"""Objects q missed, found at the input's own resolution.

q reads each CLEVR image on a 96-px canvas, where a small object half hidden behind
another shows a few dozen pixels. On our renders of 500 test scenes it missed 75 objects
(62 of its 86 miscounted images were under-counted), and every missed object showed fewer
than 100 of the 96-px canvas's pixels (1,100 of the 320 x 240 frame's); a third of those
that showed under 20 were missed. The ObjectFinder reads the frame at the fine canvas's
resolution (where the CentreRefiner reads it: model/centre_refiner.py) and answers, for
each cell of a grid of STRIDE x STRIDE pixels, the probability that an object's 3D centre
projects into it: a heatmap of centres (CenterNet, Zhou et al. 2019), trained by its
focal loss on our renderer's images under random looks, where the truth is known (as q's
sleep stage). Its peaks are the objects it sees.

The Predictor keeps q's answer and adds each peak that none of q's objects explains: an
object that q missed. The centre refiner then reads it as it reads q's objects (centre,
apparent scale, kind), and the camera fit uses it. q stays AIR; the finder is a second look
at a resolution q cannot afford.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

CHECKPOINT_KEY = "object_finder"  # where a checkpoint keeps it (optional)
STRIDE = 4  # the heatmap's cells, in fine pixels
PEAK_SIGMA = 1.0  # the training target's Gaussian around each centre's cell, in cells
PRIOR_PROBABILITY = 0.01  # the heatmap before training (CenterNet's start: few centres)


class ObjectFinder(nn.Module):
    """Frames (B, 3, H, W) in [0, 1] -> centre logits (B, H / STRIDE, W / STRIDE).

    A small encoder to 1/8 of the frame, two dilated layers for context (an object half
    hidden is told from its neighbour's edge by what surrounds it), and one step back up
    to 1/4 joined with the 1/4 features (a U-Net's skip), so that two centres a few cells
    apart stay two peaks."""

    def __init__(
        self,
        channels: tuple[int, int, int] = (16, 32, 64),
        threshold: float = 0.5,
        support: float | None = None,
    ):
        super().__init__()
        self.channels = tuple(channels)
        self.threshold = threshold  # a peak at or above it is an object (chosen on held-out)
        # An object of q's answer with no peak at or above this near it is not there (the
        # Predictor drops it); None: q's objects are never dropped.
        self.support = support
        c1, c2, c3 = channels
        self.down = nn.Sequential(_block(3, c1, stride=2), _block(c1, c2, stride=2))
        self.context = nn.Sequential(
            _block(c2, c3, stride=2), _block(c3, c3, dilation=2), _block(c3, c3, dilation=4)
        )
        self.up = _block(c3 + c2, c2)
        self.head = nn.Conv2d(c2, 1, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.constant_(self.head.bias, _logit(PRIOR_PROBABILITY))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        H, W = frames.shape[-2:]
        pad_h, pad_w = -H % (2 * STRIDE), -W % (2 * STRIDE)  # to whole cells at 1/8
        x = F.pad(frames - 0.5, (0, pad_w, 0, pad_h), mode="replicate")
        quarter = self.down(x)
        coarse = F.interpolate(self.context(quarter), size=quarter.shape[-2:], mode="nearest")
        logits = self.head(self.up(torch.cat([coarse, quarter], 1)))[:, 0]
        return logits[:, : -(-H // STRIDE), : -(-W // STRIDE)]

    def peaks(
        self, frames: torch.Tensor, threshold: float | None = None
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per frame, the pixel points (k, 2) (column, row; pixel i spans [i, i + 1)) of
        its peaks at or above `threshold` (None: the finder's own, its objects), at their
        cells' middles, and their probabilities (k,)."""
        threshold = self.threshold if threshold is None else threshold
        with torch.no_grad():
            probs = torch.sigmoid(self(frames))
        return [local_peaks(one, threshold) for one in probs]

    def config(self) -> dict:
        return {
            "channels": list(self.channels),
            "threshold": self.threshold,
            "support": self.support,
        }

    def state(self) -> dict:
        return {"config": self.config(), "weights": self.state_dict()}

    @classmethod
    def from_state(cls, state: dict) -> ObjectFinder:
        config = state["config"]
        support = config.get("support")
        finder = cls(
            tuple(config["channels"]),
            float(config["threshold"]),
            None if support is None else float(support),
        )
        finder.load_state_dict(state["weights"])
        return finder.eval()

    @classmethod
    def from_checkpoint(cls, checkpoint: dict, path: str | Path) -> ObjectFinder | None:
        """The checkpoint's finder; None where it has none; ValueError if it is broken."""
        state = checkpoint.get(CHECKPOINT_KEY)
        if state is None:
            return None
        try:
            return cls.from_state(state)
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise ValueError(f"checkpoint {path}: its object finder is broken: {error}") from None


def local_peaks(probs: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The cells of a heatmap (h, w) that are the largest of their 3 x 3 neighbourhood and
    at least `threshold`: their middles as pixel points (k, 2) and their values (k,),
    most probable first."""
    largest = F.max_pool2d(probs[None, None], 3, stride=1, padding=1)[0, 0]
    row, col = ((probs == largest) & (probs >= threshold)).nonzero(as_tuple=True)
    values = probs[row, col]
    order = values.argsort(descending=True)
    points = torch.stack([col, row], 1)[order].to(probs.dtype) * STRIDE + STRIDE / 2
    return points, values[order]


def centre_heatmap(points: torch.Tensor, image_of: torch.Tensor, batch: int, size: tuple[int, int]):
    """The training target (batch, h, w): for each object (its frame's index image_of (m,)
    and pixel point (m, 2)) 1 at the cell of its centre, falling off as a Gaussian of
    PEAK_SIGMA cells around it; overlapping objects take the larger."""
    h, w = size
    target = torch.zeros(batch, h, w)
    if not len(points):
        return target
    cell = (points / STRIDE).floor()  # (m, 2) column, row
    cols = torch.arange(w, dtype=points.dtype)
    rows = torch.arange(h, dtype=points.dtype)
    dx2 = (cols[None] - cell[:, :1]).pow(2)  # (m, w)
    dy2 = (rows[None] - cell[:, 1:]).pow(2)  # (m, h)
    blobs = torch.exp(-(dy2[:, :, None] + dx2[:, None, :]) / (2 * PEAK_SIGMA**2))  # (m, h, w)
    inside = (cell[:, 0] >= 0) & (cell[:, 0] < w) & (cell[:, 1] >= 0) & (cell[:, 1] < h)
    for one in inside.nonzero()[:, 0].tolist():
        target[image_of[one]] = torch.maximum(target[image_of[one]], blobs[one])
    return target


def focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss (Zhou et al. 2019, eq. 1), per object: cells
    where the target is 1 are centres; the others count less the nearer they are to one."""
    log_p, log_not_p = F.logsigmoid(logits), F.logsigmoid(-logits)
    p = log_p.exp()
    centre = target >= 1.0
    positive = (1 - p).pow(2) * log_p * centre
    negative = (1 - target).pow(4) * p.pow(2) * log_not_p * ~centre
    return -(positive.sum() + negative.sum()) / centre.sum().clamp(min=1)


def _block(inputs: int, outputs: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inputs, outputs, 3, stride=stride, padding=dilation, dilation=dilation),
        nn.GroupNorm(8, outputs),
        nn.SiLU(),
    )


def _logit(p: float) -> float:
    return float(torch.logit(torch.tensor(p)))
