"""q's object centres, sharpened at the input image's own resolution.

q reads each image on the world's canvas (CLEVR: 96 px that hold the 320 x 240 frame
letterboxed), where one pixel spans about 0.1 world units of the ground, and its centres
miss where the image shows the object by about that (median 0.125 on Blender's CLEVR
images; benchmarks/camera_floor.py). The CentreRefiner looks at each object q found in a
`window`-pixel window of the image at a finer canvas (`fine_size`, CLEVR: 320, the frame's
own width), centred where q's 3D centre projects, and regresses the offset from the
window's centre to the projection of the object's 3D centre. The moved image point is
read back onto the plane at the object's centre height through the same camera (q's
camera latent), so the height, shape and attributes stay q's. Two passes: the second
window is centred on the first answer.

A refiner that `reads_scale` also measures how large each object appears: log(h / z), h its
centre's height above the ground and z its depth in front of the camera. With the objects'
sizes known (q's), those scales give each image's camera distance and elevation
(model/camera_fit.py), and the sharpened points are read through that camera.

A refiner that reads `factors` also names each object's shape and attribute values (one
softmax per factor, the library's ShapeLibrary.factors): at the fine canvas a cube's corners
and a cylinder's round top are several pixels wide where q's canvas has one or two. The
Predictor weighs them with q's kind probabilities (kind_posterior). A refiner with `context`
also sees twice the window's side at half the resolution (a large object near the camera
overflows the window, and only its outline tells a cube from a cylinder): it is handed
windows of `span` = 2 x window pixels and reads their centre and their whole, halved. A
refiner that reads `neighbours` is also told where the image's other objects are (two more
channels per view, `neighbour_maps`): the discs where the answer's other objects are seen,
those nearer the camera than the window's object apart from those farther. Most misread
shapes on Blender's images had a neighbour within 35 px, and half of them took that
neighbour's shape: told which pixels belong to another object, the refiner can name its own
from the rest.

It is trained on our renderer's images of prior scenes at the fine size under random looks
(model/centre_training.py): the truth is known, as in q's sleep stage.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from air3d.model.checkpoint import write_part
from air3d.model.networks import blend_taps
from air3d.renderer import ShapeLibrary, World
from air3d.renderer.camera import ground_centres, project, projection_matrices, view_depths

CHECKPOINT_KEY = "centre_refiner"  # where a checkpoint keeps it (optional)


@dataclasses.dataclass(frozen=True)
class Reading:
    """What the CentreRefiner reads in n windows."""

    # the object's centre from the window's centre (n, 2), x right and y down, in
    # half-windows (1 = the window's edge)
    offsets: torch.Tensor
    log_scale: torch.Tensor | None  # log apparent scale log(h / z) (n,), where read
    factor_logits: tuple[torch.Tensor, ...]  # per factor (n, values), where read; else ()


class CentreRefiner(nn.Module):
    """Windows (n, view_channels, span, span) -> a Reading: offsets of the object's centre, and
    where it `reads_scale`, the log apparent scale, and where it reads `factors` (values
    per factor: shape first, then the world's attributes), each factor's logits."""

    def __init__(
        self,
        fine_size: int,
        window: int = 64,
        channels: tuple[int, ...] = (32, 64, 64, 128),
        hidden: int = 256,
        reads_scale: bool = False,
        scale_reference: float = 0.0,
        scale_noise: float = 0.05,
        factors: tuple[int, ...] = (),
        context: bool = False,
        scale_evidence: dict[str, float] | None = None,
        neighbours: bool = False,
    ):
        super().__init__()
        if window % 2 ** len(channels):
            raise ValueError(f"window {window} must be a multiple of {2 ** len(channels)}")
        self.fine_size, self.window = fine_size, window
        self.channels, self.hidden = tuple(channels), hidden
        self.reads_scale = reads_scale
        self.factors = tuple(factors)
        self.context, self.neighbours = context, neighbours
        # The log scale it answers before training (the world's typical object), and the
        # std of its answers' errors (measured on held-out renders; the camera fit's noise).
        self.scale_reference, self.scale_noise = scale_reference, scale_noise
        # The scales' calibration measured without labels on our renders, where the two
        # above are right (model/scale_calibration.py): what calibrating to another
        # renderer's images is relative to. None: not measured.
        self.scale_evidence = scale_evidence
        layers: list[nn.Module] = []
        previous = self.view_channels * (2 if context else 1)  # the window's, the context's
        for c in channels:  # each halves the side; padding keeps the grid centred
            layers += [
                nn.Conv2d(previous, c, 3, stride=2, padding=1),
                nn.GroupNorm(8, c),
                nn.SiLU(),
            ]
            previous = c
        side = window // 2 ** len(channels)
        # Flattened, not pooled: the answer is a position within the window.
        self.net = nn.Sequential(
            *layers,
            nn.Flatten(),
            nn.Linear(previous * side * side, hidden),
            nn.SiLU(),
            nn.Linear(hidden, 2 + int(reads_scale) + sum(self.factors)),
        )
        nn.init.zeros_(self.net[-1].weight)  # start by keeping q's answer (and uniform kinds)
        nn.init.zeros_(self.net[-1].bias)

    @property
    def view_channels(self) -> int:
        """The channels of the windows it is handed: the colours, and where it reads
        neighbours, their maps (nearer, farther)."""
        return 3 + 2 * int(self.neighbours)

    @property
    def span(self) -> int:
        """The side of the windows it is handed (window_pixels' size), in fine pixels."""
        return 2 * self.window if self.context else self.window

    def forward(self, windows: torch.Tensor) -> Reading:
        """windows: (n, view_channels, span, span), centred where the object is looked for:
        the colours, then (where it reads neighbours) neighbour_maps'."""
        if self.context:
            quarter = self.window // 2
            centre = windows[..., quarter : quarter + self.window, quarter : quarter + self.window]
            windows = torch.cat([centre, nn.functional.avg_pool2d(windows, 2)], dim=1)
        out = self.net(windows - 0.5)  # the maps too: 0.5 inside a disc, -0.5 outside
        scale_end = 2 + int(self.reads_scale)
        log_scale = out[:, 2] + self.scale_reference if self.reads_scale else None
        logits = out[:, scale_end:].split(self.factors, dim=1) if self.factors else ()
        return Reading(out[:, :2], log_scale, tuple(logits))

    def config(self) -> dict:
        return {
            "fine_size": self.fine_size,
            "window": self.window,
            "channels": list(self.channels),
            "hidden": self.hidden,
            "reads_scale": self.reads_scale,
            "scale_reference": self.scale_reference,
            "scale_noise": self.scale_noise,
            "factors": list(self.factors),
            "context": self.context,
            "scale_evidence": self.scale_evidence,
            "neighbours": self.neighbours,
        }

    @classmethod
    def from_state(cls, state: dict) -> CentreRefiner:
        config = state["config"]
        refiner = cls(
            **{
                **config,
                "channels": tuple(config["channels"]),
                "factors": tuple(config.get("factors", ())),  # older refiners read none
            }
        )
        refiner.load_state_dict(state["weights"])
        return refiner.eval()

    @classmethod
    def from_checkpoint(cls, checkpoint: dict[str, Any], path: str | Path) -> CentreRefiner | None:
        """The checkpoint's refiner; None where it has none; ValueError if it is broken or
        names kinds of another shape library than the checkpoint's."""
        state = checkpoint.get(CHECKPOINT_KEY)
        if state is None:
            return None
        try:
            refiner = cls.from_state(state)
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise ValueError(f"checkpoint {path}: its centre refiner is broken: {error}") from None
        if refiner.factors and "shapes" in checkpoint:
            expected = factor_sizes(ShapeLibrary.from_dict(checkpoint["shapes"]))
            if refiner.factors != expected:
                raise ValueError(
                    f"checkpoint {path}: its centre refiner reads factors of "
                    f"{list(refiner.factors)} values, its shape library has {list(expected)}"
                )
        return refiner

    def state(self) -> dict:
        return {"config": self.config(), "weights": self.state_dict()}


def factor_sizes(shapes: ShapeLibrary) -> tuple[int, ...]:
    """How many values each of the library's factors has (shape first): what a refiner
    that names kinds reads."""
    return tuple(len(values) for _, values in shapes.factors)


def kind_posterior(
    shapes: ShapeLibrary, kind_probs: torch.Tensor, factor_logits: tuple[torch.Tensor, ...]
) -> torch.Tensor:
    """q's kind probabilities (n, K) weighed by the refiner's reading of each factor
    ((n, values) logits per factor), as independent evidence: p(k) * prod_f p_f(k's value),
    normalised (n, K). No factors: q's own."""
    if not factor_logits:
        return kind_probs
    index = torch.as_tensor(shapes.factor_index(), device=kind_probs.device)  # (K, A)
    log_post = kind_probs.clamp(min=1e-12).log()
    for a, logits in enumerate(factor_logits):
        log_post = log_post + torch.log_softmax(logits, -1)[:, index[:, a]]
    return torch.softmax(log_post, -1)


def fine_world(world: World, fine_size: int) -> World:
    """The world drawn on the refiner's finer canvas (same frame, same camera)."""
    return dataclasses.replace(world, image_size=fine_size)


def centre_heights(shapes: ShapeLibrary) -> torch.Tensor:
    """Each kind's centre height (K,): a kind's height is its full height, and objects rest
    on the ground."""
    return torch.tensor([spec.height / 2 for spec in shapes.specs])


def scene_eyes(world: World, eye: torch.Tensor | None, n: int) -> torch.Tensor:
    """The (n, 3) eyes of n scenes: their own (n, 3), or the world camera's (eye None)."""
    if eye is None:
        eye = torch.tensor([world.camera.position])
    return eye.float().expand(n, 3)


def scene_cameras(world: World, eye: torch.Tensor | None, n: int) -> torch.Tensor:
    """The (n, 4, 4) camera matrices of n scenes seen from their eyes (scene_eyes)."""
    return projection_matrices(world, scene_eyes(world, eye, n))


def window_pixels(
    images: torch.Tensor, image_of: torch.Tensor, centres: torch.Tensor, size: int
) -> torch.Tensor:
    """Windows (n, C, size, size) of images (B, C, H, W) at one image pixel per window
    pixel, window i from image image_of[i] centred at the pixel point centres[i] (column,
    row; pixel centres at .5), bilinear, clamped at the border. Images may be uint8 (the
    windows come out float in [0, 1]); only the windows' pixels are read."""
    B, C, H, W = images.shape
    start = centres - size / 2  # (n, 2): the first sample's point, less the pixel centre .5
    base = start.floor()
    frac = start - base
    taps = torch.arange(size + 1, device=images.device)
    cols = (base[:, 0].long()[:, None] + taps).clamp(0, W - 1)  # (n, size + 1)
    rows = (base[:, 1].long()[:, None] + taps).clamp(0, H - 1)
    flat = (rows[:, :, None] * W + cols[:, None, :]).view(len(centres), -1)  # (n, taps^2)
    # Advanced indices around a slice put their dimension first: (n, taps^2, C).
    crop = images.view(B, C, H * W)[image_of[:, None], :, flat].permute(0, 2, 1)
    if crop.dtype == torch.uint8:  # a store of uint8 images: only the windows are converted
        crop = crop.float() / 255.0
    return blend_taps(crop.reshape(len(centres), C, size + 1, size + 1), frac)


def to_pixel_points(uv: torch.Tensor, size: int) -> torch.Tensor:
    """Image coordinates in [-1, 1] (grid_sample's) to pixel points (column, row) of a
    square canvas of `size`, where pixel i spans [i, i + 1)."""
    return (uv + 1.0) * (size / 2.0)


def to_image_coordinates(points: torch.Tensor, size: int) -> torch.Tensor:
    return points / (size / 2.0) - 1.0


def sharpen_image_points(
    refiner: CentreRefiner,
    images: torch.Tensor,
    image_of: torch.Tensor,
    uv: torch.Tensor,
    passes: int = 2,
    neighbours: Neighbours | None = None,
) -> tuple[torch.Tensor, Reading]:
    """n objects' image points (n, 2) in [-1, 1] moved onto their centres, and the last
    window's Reading (its scales and factor logits, where the refiner reads them): images
    (B, 3, S, S) on the fine canvas (S = refiner.fine_size), image index image_of (n,). A
    refiner that reads neighbours needs the objects' Neighbours; each pass shows it the
    others where the last pass left them."""
    size = images.shape[-1]
    if size != refiner.fine_size:
        raise ValueError(f"the refiner reads {refiner.fine_size}-px canvases, got {size}")
    if refiner.neighbours and neighbours is None:
        raise ValueError("this refiner reads neighbours: pass the objects' Neighbours")
    point = to_pixel_points(uv, size)
    half = refiner.window / 2.0
    if not len(uv):
        return uv, _empty_reading(refiner, uv)
    every = torch.arange(len(uv), device=uv.device)
    with torch.no_grad():
        for _ in range(passes):
            windows = window_pixels(images, image_of, point, refiner.span)
            if refiner.neighbours:
                assert neighbours is not None
                seen = neighbour_maps(point, *neighbours.discs(every, point), refiner.span)
                windows = torch.cat([windows, seen], dim=1)
            reading = refiner(windows)
            point = point + reading.offsets * half
    return to_image_coordinates(point, size), reading


@dataclasses.dataclass(frozen=True)
class Neighbours:
    """What a refiner that reads neighbours is told of n objects: for each, the indices
    (n, M) of the other objects of its image among the n (-1: none), its apparent radius in
    fine pixels (n,) and its depth in front of the camera (n,)."""

    others: torch.Tensor
    radii: torch.Tensor
    depths: torch.Tensor

    @classmethod
    def of_objects(
        cls, image_of: torch.Tensor, radii: torch.Tensor, depths: torch.Tensor
    ) -> Neighbours:
        return cls(others_in_image(image_of), radii, depths)

    def to(self, device: torch.device | str) -> Neighbours:
        return Neighbours(self.others.to(device), self.radii.to(device), self.depths.to(device))

    def discs(
        self, index: torch.Tensor, points: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For the objects `index` (k,), where their neighbours are seen: at `points` (n, 2),
        every object's pixel point, (k, M, 2); their radii (k, M), 0 for none; and whether
        each stands nearer the camera (k, M) than the object."""
        others = self.others[index]
        safe = others.clamp(min=0)
        radii = torch.where(others >= 0, self.radii[safe], 0.0)
        return points[safe], radii, self.depths[safe] < self.depths[index, None]


def focal_pixels(world: World, size: int) -> float:
    """The focal length, in pixels, of the world's camera on a canvas of `size`."""
    return size / 2 / math.tan(math.radians(world.camera.fov_deg) / 2)


def apparent_disc_radii(
    kind_radii: torch.Tensor, kinds: torch.Tensor, depths: torch.Tensor, focal_px: float
) -> torch.Tensor:
    """(n,) how large, in pixels, objects of `kinds` (n,) look at `depths` (n,): the
    radius of their mean image area (kind_radii (K,): ShapeLibrary.apparent_radii)."""
    return focal_px * kind_radii.to(depths)[kinds] / depths.clamp(min=1e-3)


def answer_neighbours(
    world: World,
    shapes: ShapeLibrary,
    size: int,
    image_of: torch.Tensor,
    kinds: torch.Tensor,
    centres: torch.Tensor,
    eyes: torch.Tensor,
) -> Neighbours:
    """The Neighbours of an answer's n objects, sorted by image (image_of (n,)): their
    kinds (n,), 3D centres (n, 3) and their images' eyes (n, 3), seen on a `size` canvas."""
    depths = view_depths(world, centres, eyes)
    kind_radii = torch.as_tensor(shapes.apparent_radii)
    radii = apparent_disc_radii(kind_radii, kinds, depths, focal_pixels(world, size))
    return Neighbours.of_objects(image_of, radii, depths)


def others_in_image(image_of: torch.Tensor) -> torch.Tensor:
    """(n, M) the indices of the other objects of each object's image, -1 where there are
    fewer (M: the most objects an image has); image_of (n,) sorted, as nonzero() gives."""
    if len(image_of) and not bool((image_of[1:] >= image_of[:-1]).all()):
        raise ValueError("others_in_image: the objects must be sorted by image")
    if not len(image_of):
        return image_of.new_zeros(0, 0)
    counts = torch.bincount(image_of)
    first = counts.cumsum(0) - counts  # each image's first object
    j = torch.arange(int(counts.max()), device=image_of.device)
    candidate = first[image_of][:, None] + j  # (n, M): the image's objects, and beyond
    own = torch.arange(len(image_of), device=image_of.device)[:, None]
    other = (j < counts[image_of][:, None]) & (candidate != own)
    return torch.where(other, candidate, -1)


def neighbour_maps(
    centres: torch.Tensor,
    points: torch.Tensor,
    radii: torch.Tensor,
    nearer: torch.Tensor,
    span: int,
) -> torch.Tensor:
    """(k, 2, span, span) in [0, 1]: for windows centred at pixel points centres (k, 2) (as
    window_pixels'), the union of the discs of radii (k, M) at points (k, M, 2) that stand
    nearer the camera (nearer (k, M) True), and of those that stand farther; edges one
    pixel soft. Drawn in blocks of 2 x 2 pixels (span even), and only the discs that reach
    the window: a fourth of the work, and most of an image's objects lie outside."""
    reach = span / 2 + radii + 1.0
    offset = (points - centres[:, None]).abs()  # (k, M, 2)
    touches = (radii > 0) & (offset < reach[..., None]).all(-1)
    most = int(touches.sum(1).max()) if touches.numel() else 0
    if most == 0:
        return centres.new_zeros(len(centres), 2, span, span)
    chosen = touches.float().topk(most, dim=1).indices  # (k, most): those that reach first
    points, radii = points.gather(1, chosen[..., None].expand(-1, -1, 2)), radii.gather(1, chosen)
    radii = radii * touches.gather(1, chosen)  # 0 for the padding among them
    nearer = nearer.gather(1, chosen)
    grid = torch.arange(span // 2, dtype=centres.dtype, device=centres.device) * 2 + 1 - span / 2
    u = grid + (centres[:, None, 0] - points[..., 0])[..., None]  # (k, most, span / 2)
    v = grid + (centres[:, None, 1] - points[..., 1])[..., None]
    distance = (v[..., :, None] ** 2 + u[..., None, :] ** 2).sqrt()
    inside = (radii[..., None, None] - distance + 0.5).clamp(0.0, 1.0)
    maps = centres.new_zeros(len(centres), 2, span // 2, span // 2)
    for channel, side in enumerate((nearer, ~nearer)):
        maps[:, channel] = (inside * side[..., None, None]).amax(1)
    return maps.repeat_interleave(2, -1).repeat_interleave(2, -2)


def _empty_reading(refiner: CentreRefiner, uv: torch.Tensor) -> Reading:
    return Reading(
        uv.new_zeros(0, 2),
        uv.new_zeros(0) if refiner.reads_scale else None,
        tuple(uv.new_zeros(0, n) for n in refiner.factors),
    )


def centre_points(xz: torch.Tensor, heights: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """Image points (n, 2) of objects' 3D centres: ground positions (n, 2) at their centre
    heights (n,), each through its image's camera matrix (n, 4, 4)."""
    return project(ground_centres(xz, heights), matrices)


def write_centre_refiner(path: str | Path, refiner: CentreRefiner) -> None:
    """Stores the refiner in the checkpoint at `path`, atomically (as its calibration)."""
    write_part(path, CHECKPOINT_KEY, refiner.state())
