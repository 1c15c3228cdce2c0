"""Training the CentreRefiner (model/centre_refiner.py) on our renderer's images.

Prior scenes are rendered once on the fine canvas under random looks (scene_pool's
render_under_looks, the same looks as q's sleep pool); only the frame's rows are kept.
Each step takes random objects, centres a window on each near its true image point (moved
by Gaussian noise about as large as q's misses), applies the random image chains of
model/augment.py, and regresses the way back to the true point (smooth L1, in pixels) and,
where the refiner reads it, the object's log apparent scale log(h / z) (smooth L1, in
percent: one percent weighs as one pixel).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from air3d.model.augment import AugmentConfig, augment
from air3d.model.centre_refiner import (
    CentreRefiner,
    Neighbours,
    apparent_disc_radii,
    centre_heights,
    fine_world,
    neighbour_maps,
    scene_cameras,
    scene_eyes,
    to_pixel_points,
    window_pixels,
)
from air3d.model.scene_pool import render_under_looks
from air3d.renderer import SceneBatch, SceneRenderer, ShapeLibrary, World
from air3d.renderer.camera import ground_centres, project, view_depths
from air3d.renderer.visibility import hidden_shares, sample_visible_scenes

log = logging.getLogger(__name__)

HIDDEN_SHARE = 0.2  # held_out_miss's partly hidden objects: at least this share out of sight
CACHE_FORMAT = 4  # of the cached chunks: 2 added the log scales, 3 the kinds, 4 the hidden shares


@dataclass
class CentreData:
    """Rendered scenes for the refiner: the frame's rows of the fine canvas as uint8
    (n, 3, rows, S), and every present object's image index (m,), the pixel point
    (column, row within those rows) (m, 2) where its 3D centre projects, its log
    apparent scale log(h / z) (m,): centre height over depth in front of the camera, its
    kind (m,): index into the shape library, and the share of its pixels that objects in
    front of it hide (m,) (renderer/visibility.py's hidden_shares, on the world's canvas)."""

    images: torch.Tensor
    image_of: torch.Tensor
    points: torch.Tensor
    log_scales: torch.Tensor
    kinds: torch.Tensor
    hidden: torch.Tensor

    def __len__(self) -> int:
        return len(self.image_of)

    def split(self, share: float) -> tuple[CentreData, CentreData]:
        """(the first images' objects, the last `share` of the images' objects)."""
        cut = len(self.images) - max(1, round(share * len(self.images)))
        first, last = self.image_of < cut, self.image_of >= cut
        return self._objects(first, self.images[:cut], 0), self._objects(
            last, self.images[cut:], cut
        )

    def _objects(self, chosen: torch.Tensor, images: torch.Tensor, first: int) -> CentreData:
        """The chosen objects (m,) bool, over `images`, which start at image `first`."""
        return CentreData(
            images,
            self.image_of[chosen] - first,
            self.points[chosen],
            self.log_scales[chosen],
            self.kinds[chosen],
            self.hidden[chosen],
        )

    @classmethod
    def join(cls, parts: list[CentreData]) -> CentreData:
        offsets = torch.tensor([0] + [len(p.images) for p in parts[:-1]]).cumsum(0)
        return cls(
            torch.cat([p.images for p in parts]),
            torch.cat([p.image_of + o for p, o in zip(parts, offsets, strict=True)]),
            torch.cat([p.points for p in parts]),
            torch.cat([p.log_scales for p in parts]),
            torch.cat([p.kinds for p in parts]),
            torch.cat([p.hidden for p in parts]),
        )


def object_targets(world: World, shapes: ShapeLibrary, latents: SceneBatch, fine_size: int):
    """Each present object's image index (m,), the fine-canvas pixel point (m, 2) of its
    3D centre seen from its scene's eye, its log apparent scale (m,) and its kind (m,)."""
    eyes = scene_eyes(world, latents.eye, len(latents))
    matrices = scene_cameras(world, eyes, len(latents))
    scene, slot = latents.present.nonzero(as_tuple=True)
    heights = centre_heights(shapes)[latents.shape[scene, slot]]
    centres = ground_centres(latents.xz[scene, slot], heights)
    points = to_pixel_points(project(centres, matrices[scene]), fine_size)
    log_scales = torch.log(heights / view_depths(world, centres, eyes[scene]))
    return scene, points, log_scales, latents.shape[scene, slot]


def render_centre_data(
    world: World,
    shapes: ShapeLibrary,
    n: int,
    seed: int,
    fine_size: int,
    looks: AugmentConfig | None,
    chunk: int = 200,
    cache_dir: str | Path | None = None,
) -> CentreData:
    """n visible prior scenes (drawn as q's pool draws them) rendered on the fine canvas,
    `chunk` scenes at a time; with cache_dir each chunk is kept there, so that a run that
    stops resumes where its rendering was (CLEVR at 320 px: about 3 scenes/s a core)."""
    coarse = SceneRenderer(world, shapes)  # the visibility test at the world's own size
    fine = SceneRenderer(fine_world(world, fine_size), shapes)
    parts = []
    for start in range(0, n, chunk):
        size = min(chunk, n - start)
        path = (
            None if cache_dir is None else _chunk_path(cache_dir, fine, seed + start, size, looks)
        )
        if path is not None and path.exists():
            parts.append(CentreData(**torch.load(path, weights_only=True)))
            continue
        parts.append(_render_chunk(coarse, fine, size, seed + start, looks))
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            torch.save(dataclasses.asdict(parts[-1]), tmp)
            os.replace(tmp, path)
        log.info("rendered %d of %d scenes", start + size, n)
    return CentreData.join(parts)


def training_looks(checkpoint: dict) -> AugmentConfig | None:
    """The random looks q was trained under (its training config's), if any: the looks the
    fine readers (the centre refiner, the object finder) are trained under too."""
    augment = (checkpoint.get("train_config") or {}).get("augment")
    return None if augment is None else AugmentConfig.from_dict(augment)


def _render_chunk(
    coarse: SceneRenderer, fine: SceneRenderer, n: int, seed: int, looks: AugmentConfig | None
) -> CentreData:
    world, shapes = coarse.world, coarse.shapes
    first, last = fine.world.frame_rows
    scenes = sample_visible_scenes(coarse, n, seed)
    images = render_under_looks(fine, scenes, seed, looks)[:, :, first:last].clone()
    latents = SceneBatch.from_scenes(scenes, shapes, world.max_objects)
    image_of, points, log_scales, kinds = object_targets(
        world, shapes, latents, fine.world.image_size
    )
    points[:, 1] -= first  # rows of the kept frame
    hidden = hidden_shares(coarse, latents)[latents.present.to(coarse.device)].cpu()
    return CentreData(images, image_of, points, log_scales, kinds, hidden)


def _chunk_path(
    cache_dir: str | Path, fine: SceneRenderer, seed: int, n: int, looks: AugmentConfig | None
) -> Path:
    """A chunk's file, keyed by everything that shapes it."""
    parts = [CACHE_FORMAT, n, seed, fine.world.to_dict(), fine.shapes.to_dict()]
    parts.append(None if looks is None else looks.to_dict())
    key = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]
    return Path(cache_dir) / f"centres-{key}.pt"


@dataclass
class CentreTrainConfig:
    steps: int = 3000
    batch_size: int = 128
    lr: float = 1e-3
    noise_px: float = 5.0  # std of the window's miss, in fine pixels (q misses ~3-6)
    max_noise_px: float = 16.0
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)
    # chance that a window's object gets a dark contact shadow at its foot (contact_shadows),
    # for the kinds marked True in contact_shadow_kinds (K,) (None: every kind)
    contact_shadow_probability: float = 0.0
    contact_shadow_kinds: torch.Tensor | None = None
    focal_px: float = 0.0  # the fine canvas's focal length in pixels (contact_shadows' sizes)
    # objects are drawn with weight 1 + favour_hidden * (the share of them hidden): partly
    # hidden objects are few in prior scenes, yet they hold most of the misread shapes and
    # the centres that miss by far
    favour_hidden: float = 0.0
    # where set, half of each batch's windows miss by this std (pixels) instead, and only
    # those train the scale and the factors (the offsets train on all): the second pass,
    # which reads them, starts within a pixel or two, and a reading trained on windows that
    # miss by up to max_noise_px must guess which of two near objects is meant
    read_noise_px: float | None = None
    # A refiner that reads neighbours is shown the other objects where the truth has them,
    # missed as the window is, their sizes off by neighbour_size_noise (relative std), and
    # each left out with chance neighbour_drop (q misses some): it needs each kind's
    # centre height and apparent radius (K,) (ShapeLibrary.apparent_radii).
    kind_heights: torch.Tensor | None = None
    kind_radii: torch.Tensor | None = None
    neighbour_size_noise: float = 0.1
    neighbour_drop: float = 0.05
    seed: int = 0


def draw_objects(data: CentreData, config: CentreTrainConfig, g: torch.Generator) -> torch.Tensor:
    """A batch of object indices (batch_size,), drawn with replacement: uniformly, or where
    config.favour_hidden > 0, with weight 1 + favour_hidden * the share of each hidden."""
    if config.favour_hidden <= 0:
        return torch.randint(len(data), (config.batch_size,), generator=g)
    weights = 1.0 + config.favour_hidden * data.hidden
    return torch.multinomial(weights, config.batch_size, replacement=True, generator=g)


def read_windows(n: int, config: CentreTrainConfig) -> slice:
    """Which of a batch's n windows train the scale and the factors: with read_noise_px,
    the second half (those that miss by it); otherwise all."""
    return slice(None) if config.read_noise_px is None else slice(n // 2, None)


def noisy_windows(
    data: CentreData,
    index: torch.Tensor,
    config: CentreTrainConfig,
    window: int,
    g: torch.Generator,
    neighbours: Neighbours | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Windows (k, 3, w, w) near the objects `index` and their targets (k, 2) in pixels;
    with read_noise_px, the second half of them miss by that std. With neighbours, also
    the maps of each window's other objects (k, 2, w, w) (noisy_neighbours); else None."""
    noise = torch.full((len(index), 1), config.noise_px)
    if config.read_noise_px is not None:
        noise[read_windows(len(index), config)] = config.read_noise_px
    miss = torch.randn(len(index), 2, generator=g) * noise
    miss = miss.clamp(-config.max_noise_px, config.max_noise_px)
    centres = data.points[index] + miss
    windows = window_pixels(data.images, data.image_of[index], centres, window)
    maps = None
    if neighbours is not None:
        seen = noisy_neighbours(data, neighbours, index, noise, config, g)
        maps = neighbour_maps(centres, *seen, window)
    return windows, -miss, maps


def data_neighbours(data: CentreData, config: CentreTrainConfig) -> Neighbours:
    """The Neighbours of the data's objects, as the truth has them."""
    if config.kind_heights is None or config.kind_radii is None:
        raise ValueError("a refiner that reads neighbours trains with kind_heights and kind_radii")
    depths = config.kind_heights[data.kinds] / data.log_scales.exp()  # log scale: log(h / z)
    radii = apparent_disc_radii(config.kind_radii, data.kinds, depths, config.focal_px)
    return Neighbours.of_objects(data.image_of, radii, depths)


def noisy_neighbours(
    data: CentreData,
    neighbours: Neighbours,
    index: torch.Tensor,
    noise: torch.Tensor,
    config: CentreTrainConfig,
    g: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Where the objects `index` (k,) see their neighbours (Neighbours.discs): each missed
    by the std of its window's miss (noise (k, 1)), as large as it is within the size noise,
    and left out with chance neighbour_drop, as an answer shows them."""
    points, radii, nearer = neighbours.discs(index, data.points)
    miss = torch.randn(points.shape, generator=g) * noise[:, :, None]
    points = points + miss.clamp(-config.max_noise_px, config.max_noise_px)
    size = 1.0 + config.neighbour_size_noise * torch.randn(radii.shape, generator=g)
    kept = torch.rand(radii.shape, generator=g) >= config.neighbour_drop
    return points, radii * size.clamp(min=0.5) * kept, nearer


def contact_shadows(
    windows: torch.Tensor,
    targets: torch.Tensor,
    log_scales: torch.Tensor,
    focal_px: float,
    probability: float | torch.Tensor,
    g: torch.Generator,
) -> torch.Tensor:
    """Windows (k, 3, w, w) with, at random, a soft dark ellipse at the foot of the object
    whose centre lies `targets` (k, 2) pixels from the window's middle: the contact shadow
    that a renderer with global illumination draws where an object meets the floor (Blender:
    a dark crescent under each sphere) and ours does not. Its size follows the object's
    apparent size (exp(log scale) * focal_px pixels from centre to foot), so a refiner
    trained with it learns that the crescent is floor, not object. `probability`: one for
    all windows, or each window's (k,)."""
    k, _, w, _ = windows.shape
    chosen = torch.rand(k, generator=g) < torch.as_tensor(probability)
    if not chosen.any() or focal_px <= 0:
        return windows
    radius = log_scales.exp() * focal_px  # (k,) pixels from centre to foot
    below = radius * (0.85 + 0.2 * torch.rand(k, generator=g))
    half_width = radius * (0.6 + 0.4 * torch.rand(k, generator=g))
    half_height = radius * (0.15 + 0.2 * torch.rand(k, generator=g))
    darkness = 0.2 + 0.5 * torch.rand(k, generator=g)
    grid = torch.arange(w, dtype=windows.dtype) - (w - 1) / 2
    u = grid[None, None, :] - targets[:, 0, None, None]  # (k, 1, w)
    v = grid[None, :, None] - (targets[:, 1] + below)[:, None, None]  # (k, w, 1)
    d2 = (u / half_width[:, None, None]) ** 2 + (v / half_height[:, None, None]) ** 2
    shade = 1 - (darkness * chosen)[:, None, None] * torch.exp(-(d2**2))
    return windows * shade[:, None]


def training_loss(
    refiner: CentreRefiner,
    windows: torch.Tensor,
    offsets: torch.Tensor,
    log_scales: torch.Tensor,
    factor_values: torch.Tensor,
    reads: slice = slice(None),
) -> torch.Tensor:
    """Smooth L1 of the offset in pixels, plus that of the log scale in percent (if read),
    plus each factor's cross-entropy (if read; factor_values (k, A): the true values); the
    scale and the factors only on the windows `reads` (all by default)."""
    reading = refiner(windows)
    loss = nn.functional.smooth_l1_loss(reading.offsets * (refiner.window / 2.0), offsets)
    if reading.log_scale is not None:
        scale = 100.0 * reading.log_scale[reads]
        loss = loss + nn.functional.smooth_l1_loss(scale, 100.0 * log_scales[reads])
    for a, logits in enumerate(reading.factor_logits):
        loss = loss + nn.functional.cross_entropy(logits[reads], factor_values[reads, a])
    return loss


def train_centre_refiner(
    refiner: CentreRefiner,
    train: CentreData,
    held_out: CentreData,
    config: CentreTrainConfig,
    factor_index: torch.Tensor | None = None,
) -> list[dict[str, float]]:
    """Trains in place; returns the held-out misses (held_out_miss) every 250 steps, and
    sets the refiner's scale noise to its last held-out error. A refiner that reads factors
    needs the library's factor_index (K, A) (ShapeLibrary.factor_index): each kind's values."""
    values = _factor_values(refiner, factor_index)
    g = torch.Generator().manual_seed(config.seed)
    optimiser = torch.optim.AdamW(refiner.parameters(), lr=config.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, config.lr, config.steps)
    curve, started = [], time.time()
    neighbours = data_neighbours(train, config) if refiner.neighbours else None
    for step in range(1, config.steps + 1):
        refiner.train()
        index = draw_objects(train, config, g)
        windows, target, maps = noisy_windows(train, index, config, refiner.span, g, neighbours)
        shadowed = config.contact_shadow_probability
        if config.contact_shadow_kinds is not None:
            shadowed = shadowed * config.contact_shadow_kinds[train.kinds[index]].float()
        windows = contact_shadows(
            windows, target, train.log_scales[index], config.focal_px, shadowed, g
        )
        windows = augment(windows, config.augment, g)  # the looks: the colours only
        if maps is not None:
            windows = torch.cat([windows, maps], dim=1)
        kinds = values[train.kinds[index]]
        reads = read_windows(len(index), config)
        loss = training_loss(refiner, windows, target, train.log_scales[index], kinds, reads)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if step % 250 == 0 or step == config.steps:
            miss = held_out_miss(refiner, held_out, config, values)
            curve.append({"step": step, "loss": loss.item(), **miss, "s": time.time() - started})
            log.info("step %d loss %.3f held-out %s", step, loss.item(), miss)
    if refiner.reads_scale and curve:
        refiner.scale_noise = curve[-1]["scale_std"]
    return curve


def _factor_values(refiner: CentreRefiner, factor_index: torch.Tensor | None) -> torch.Tensor:
    """Each kind's factor values (K, A) for the refiner's factors; (K, 0) where it reads none."""
    if not refiner.factors:
        return torch.zeros(0 if factor_index is None else len(factor_index), 0, dtype=torch.long)
    if factor_index is None:
        raise ValueError("a refiner that reads factors needs the library's factor_index")
    return torch.as_tensor(factor_index, dtype=torch.long)


def held_out_miss(
    refiner: CentreRefiner,
    data: CentreData,
    config: CentreTrainConfig,
    factor_values: torch.Tensor | None = None,
    n: int = 2000,
) -> dict[str, float]:
    """Median distance (pixels) to the true point: of the noisy window centres, and after
    one and two passes of the refiner (fixed draws: comparable across calls); where the
    refiner reads scales, the robust std (1.4826 median absolute error) of the log scale
    after two passes; where it reads factors (factor_values (K, A): each kind's values),
    each factor's accuracy after two passes (`<factor index>_accuracy`). The same again,
    prefixed `hidden_`, over the objects at least HIDDEN_SHARE hidden (where there are any)."""
    g = torch.Generator().manual_seed(12345)
    index = torch.randperm(len(data), generator=g)[:n]
    refiner.eval()
    # every window misses as q's do (read_noise_px is training's): comparable across runs
    start = dataclasses.replace(config, read_noise_px=None)
    windows, target, _ = noisy_windows(data, index, start, refiner.span, g)
    truth = data.points[index]
    point = truth - target
    seen = None
    if refiner.neighbours:  # both passes see them where q's answer would have them
        noise = torch.full((len(index), 1), config.noise_px)
        seen = noisy_neighbours(data, data_neighbours(data, config), index, noise, start, g)
    out = {"before": float(target.norm(dim=1).median())}
    with torch.no_grad():
        for name in ("pass1", "pass2"):
            if name != "pass1":  # the next window is centred on the last answer
                windows = window_pixels(data.images, data.image_of[index], point, refiner.span)
            if seen is not None:
                windows = torch.cat([windows, neighbour_maps(point, *seen, refiner.span)], 1)
            reading = refiner(windows)
            point = point + reading.offsets * (refiner.window / 2.0)
            out[name] = float((point - truth).norm(dim=1).median())
    hidden = data.hidden[index] >= HIDDEN_SHARE
    if hidden.any():
        out["hidden_pass2"] = float((point - truth)[hidden].norm(dim=1).median())
    if reading.log_scale is not None:
        error = (reading.log_scale - data.log_scales[index]).abs().median()
        out["scale_std"] = float(1.4826 * error)
    for a, logits in enumerate(reading.factor_logits):
        assert factor_values is not None
        right = logits.argmax(-1) == factor_values[data.kinds[index], a]
        out[f"factor{a}_accuracy"] = float(right.float().mean())
        if hidden.any():
            out[f"hidden_factor{a}_accuracy"] = float(right[hidden].float().mean())
    return out
