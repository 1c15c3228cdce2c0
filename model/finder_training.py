"""Training the ObjectFinder (model/object_finder.py) on our renderer's images.

The scenes are the centre refiner's (model/centre_training.py: prior scenes rendered once
on the fine canvas under random looks, each object's centre point known), so one rendered
cache serves both. Each step takes random frames, mirrors half of them left to right (a
mirrored scene is a scene of the world), applies model/augment.py's random image chains,
and fits the heatmap of the objects' centres by CenterNet's focal loss. Held-out frames
choose the threshold at which a peak counts as an object: the one that counts most of
them right. With q, they then choose how the Predictor uses the finder (choose_use): the
peak at which an object q missed is added and the peak below which one of q's objects is
not there, the pair that counts most of them right together.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import torch

from air3d.images import Canvas
from air3d.model.augment import AugmentConfig, augment
from air3d.model.centre_training import CentreData
from air3d.model.object_finder import ObjectFinder, centre_heatmap, focal_loss, local_peaks
from air3d.model.predictor import Predictor, match_peaks

log = logging.getLogger(__name__)

THRESHOLDS = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7)  # tried on held-out
SUPPORTS = (None, 0.1, 0.2, 0.3)  # tried with q (None: q's objects are never dropped)
HIT_PIXELS = 12.0  # a peak this near a true centre (fine pixels) found that object


@dataclasses.dataclass
class FinderTrainConfig:
    steps: int = 2000
    batch_size: int = 16
    lr: float = 2e-3
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)
    seed: int = 0
    held_out_every: int = 250


def train_object_finder(
    finder: ObjectFinder, train: CentreData, held_out: CentreData, config: FinderTrainConfig
) -> list[dict[str, float]]:
    """Trains in place; every `held_out_every` steps records the held-out count accuracy
    (held_out_counts) and, at the end, sets the finder's threshold to the best one."""
    objects = objects_by_frame(train)
    g = torch.Generator().manual_seed(config.seed)
    optimiser = torch.optim.AdamW(finder.parameters(), lr=config.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, config.lr, config.steps)
    curve, started = [], time.time()
    for step in range(1, config.steps + 1):
        finder.train()
        frames, points, image_of = training_batch(train, objects, config, g)
        logits = finder(frames)
        loss = focal_loss(logits, centre_heatmap(points, image_of, len(frames), logits.shape[-2:]))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if step % config.held_out_every == 0 or step == config.steps:
            scores = held_out_counts(finder, held_out)
            best = max(THRESHOLDS, key=lambda t: scores[f"count_{t}"])
            entry = {"step": step, "loss": loss.item(), "threshold": best, **scores}
            curve.append({**entry, "s": time.time() - started})
            log.info(
                "step %d loss %.3f held-out count %.1f%% at %.2f, recall %.1f%%",
                step, loss.item(), 100 * scores[f"count_{best}"], best,
                100 * scores[f"recall_{best}"],
            )  # fmt: skip
    finder.threshold = curve[-1]["threshold"]
    return curve


def objects_by_frame(data: CentreData) -> list[torch.Tensor]:
    """Each frame's objects' indices into data's per-object tensors."""
    order = data.image_of.argsort(stable=True)
    counts = torch.bincount(data.image_of, minlength=len(data.images)).tolist()
    return list(order.split(counts))


def training_batch(
    data: CentreData, objects: list[torch.Tensor], config: FinderTrainConfig, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random frames (b, 3, H, W) in [0, 1], half of them mirrored, under random looks, and
    their objects' pixel points (m, 2) with each one's frame in the batch (m,)."""
    frames = torch.randint(len(data.images), (config.batch_size,), generator=g)
    mirrored = torch.rand(config.batch_size, generator=g) < 0.5
    images = data.images[frames].float() / 255.0
    images[mirrored] = images[mirrored].flip(-1)
    width = images.shape[-1]
    points, image_of = [], []
    for b, frame in enumerate(frames.tolist()):
        mine = data.points[objects[frame]].clone()
        if mirrored[b]:
            mine[:, 0] = width - mine[:, 0]
        points.append(mine)
        image_of.append(torch.full((len(mine),), b))
    return augment(images, config.augment, g), torch.cat(points), torch.cat(image_of)


def held_out_counts(finder: ObjectFinder, data: CentreData, batch: int = 32) -> dict[str, float]:
    """At each of THRESHOLDS: the share of held-out frames whose peaks number their objects
    (`count_<t>`) and the share of objects with a peak within HIT_PIXELS (`recall_<t>`,
    one peak per object)."""
    finder.eval()
    objects = objects_by_frame(data)
    right = dict.fromkeys(THRESHOLDS, 0)
    found = dict.fromkeys(THRESHOLDS, 0)
    with torch.no_grad():
        for start in range(0, len(data.images), batch):
            probs = torch.sigmoid(finder(data.images[start : start + batch].float() / 255.0))
            for i, heatmap in enumerate(probs):
                truth = data.points[objects[start + i]]
                for t in THRESHOLDS:
                    peaks, _ = local_peaks(heatmap, t)
                    right[t] += int(len(peaks) == len(truth))
                    found[t] += int((match_peaks(peaks, truth, HIT_PIXELS) >= 0).sum())
    total = max(1, len(data))
    scores = {f"count_{t}": right[t] / len(data.images) for t in THRESHOLDS}
    scores.update({f"recall_{t}": found[t] / total for t in THRESHOLDS})
    return scores


def choose_use(
    predictor: Predictor, data: CentreData, batch: int = 50
) -> tuple[float, float | None, float]:
    """The predictor's finder's (threshold, support) that count most of data's frames right
    with q (every other one of THRESHOLDS from its finder's own upward, to keep the runs few,
    each with every one of SUPPORTS; the first best), set on the finder, and that count
    accuracy."""
    finder = predictor.finder
    assert finder is not None, "the predictor has no object finder"
    images = on_canvas(data.images, predictor.canvas)
    truth = torch.bincount(data.image_of, minlength=len(data.images))
    scores = {}
    for threshold in [t for t in THRESHOLDS if t >= finder.threshold][::2]:
        for support in SUPPORTS:
            finder.threshold, finder.support = threshold, support
            counts = [
                len(answer.objects)
                for start in range(0, len(images), batch)
                for answer in predictor.infer(images[start : start + batch], refine=0)
            ]
            right = (torch.tensor(counts) == truth).float().mean()
            scores[threshold, support] = float(right)
            log.info(
                "threshold %.2f support %s: %.1f%% counted right", threshold, support, 100 * right
            )
    (threshold, support), best = max(scores.items(), key=lambda item: item[1])
    finder.threshold, finder.support = threshold, support
    return threshold, support, best


def on_canvas(frames: torch.Tensor, canvas: Canvas) -> torch.Tensor:
    """uint8 frames (n, 3, rows, S) as float images on their canvas (n, 3, S, S): the
    frame's rows, the canvas's fill in the others."""
    first, last = canvas.image_rows
    fill = torch.tensor(canvas.fill).view(1, 3, 1, 1)
    images = fill.repeat(len(frames), 1, canvas.size, canvas.size)
    images[:, :, first:last] = frames.float() / 255.0
    return images
