"""Inference: one forward pass of q gives the scene and the probabilities behind it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from air3d.images import Canvas, resize_canvas
from air3d.model.build import build_model
from air3d.model.calibration import Calibration, read_calibration
from air3d.model.camera_fit import fit_eyes, position_spreads
from air3d.model.centre_refiner import (
    CentreRefiner,
    answer_neighbours,
    centre_heights,
    centre_points,
    fine_world,
    kind_posterior,
    scene_cameras,
    scene_eyes,
    sharpen_image_points,
    to_image_coordinates,
    to_pixel_points,
)
from air3d.model.checkpoint import file_hash, load_checkpoint
from air3d.model.config import ModelConfig
from air3d.model.erasure import distinct, erase_found, new_objects, supported
from air3d.model.fit import Fit, FitScorer
from air3d.model.frozen import ANSWER_FIELDS, FrozenQ
from air3d.model.object_finder import ObjectFinder
from air3d.model.refine import Refiner, check_refine_steps
from air3d.model.scale_calibration import ScaleReadings
from air3d.renderer import Scene, SceneBatch, SceneObject, SceneRenderer, ShapeLibrary, World
from air3d.renderer.camera import ground_centres, unproject_to_plane
from air3d.renderer.prior import min_centre_distance
from air3d.renderer.scene import append_rows
from air3d.renderer.visibility import out_of_sight
from air3d.renderer.world import with_max_objects

# By default an answer may hold twice as many objects as q was trained on: the passes after
# the first cost nothing on scenes where q stopped by itself (model/erasure.py).
LOOK_AGAIN_FACTOR = 2
# A candidate nearer than this fraction of the prior's least distance between two objects'
# centres to an object already found is that object again (its rim, or a second step of q
# on it), not a new one.
MIN_DISTANCE_FACTOR = 0.5
# A peak of the object finder this near (fine pixels) to where one of q's objects' centres
# projects is that object (q's centres miss by 3-6 fine pixels, rarely 16), not a missed one.
EXPLAINED_PIXELS = 16.0
# An answered object that the answer's other objects hide this much of, in its own drawing,
# is not what the image shows: nothing in the image can show it (renderer/visibility.py
# out_of_sight). On CLEVR it is mostly the top face of a large near cube read as a small
# object behind it. Objects the image does show stay below it: on the 120 Blender
# validation images the most hidden one that matched a true object was 0.88 hidden, the
# extra objects 0.98 and more.
OUT_OF_SIGHT = 0.95
# An object's confidence is the probability that it is there with its centre this near the
# truth (world units; InferredObject.confidence).
POSITION_TOLERANCE = 0.125


@dataclass(frozen=True)
class CentreReading:
    """What the CentreRefiner read of an answer's n present objects (Predictor._read_centres):
    their scene and slot (n,), sharpened image points (n, 2), centre heights (n,), the
    answer's kinds (B, N) and kind probabilities (B, N, K) as the refiner leaves them, the
    cameras the points were read through (B, 4, 4), and the scales (None where not read)."""

    scene: torch.Tensor
    slot: torch.Tensor
    uv: torch.Tensor
    heights: torch.Tensor
    kinds: torch.Tensor
    shape_probs: torch.Tensor
    matrices: torch.Tensor
    scales: ScaleReadings | None


@dataclass(frozen=True)
class InferredObject:
    shape: str
    position: tuple[float, float, float]
    yaw_deg: float
    presence: float  # q's probability that this step holds an object
    shape_probs: dict[str, float]  # q's probability of each shape (summed over attributes)
    attributes: tuple[tuple[str, str], ...] = ()  # (("color", "red"), ...): the world's order
    # q's probability of each value of each attribute: {"color": {"red": 0.9, ...}, ...}
    attribute_probs: dict[str, dict[str, float]] = field(default_factory=dict)
    # How far the position may be off, RMS over the ground plane (world units), where the
    # camera was fitted (model/camera_fit.py position_spreads); None: not known.
    position_sd: float | None = None
    # The probability that it is there, of its kind and near where it is said to be
    # (object_confidence); None: not given (an answer built by hand).
    confidence: float | None = None

    def to_json(self) -> dict[str, Any]:
        data = {
            "shape": self.shape,
            **dict(self.attributes),
            "position": list(self.position),
            "yaw_deg": self.yaw_deg,
            "presence": self.presence,
            "confidence": self.presence if self.confidence is None else self.confidence,
            "shape_probs": dict(self.shape_probs),
        }
        if self.position_sd is not None:
            data["position_sd"] = self.position_sd
        if self.attribute_probs:
            data["attribute_probs"] = {k: dict(v) for k, v in self.attribute_probs.items()}
        return data


@dataclass(frozen=True)
class Inference:
    objects: tuple[InferredObject, ...]
    fit: Fit | None = None  # how well the answer explains its image (None: not assessed)
    # q's camera: the eye it sees the scene from (a world with camera jitter; None: the
    # world's camera). JSON "camera": {"position": [x, y, z]}, as Scene's.
    camera: tuple[float, float, float] | None = None

    def to_json(self) -> dict[str, Any]:
        data = {"objects": [obj.to_json() for obj in self.objects], "count": len(self.objects)}
        if self.camera is not None:
            data["camera"] = {"position": list(self.camera)}
        if self.fit is not None:
            data["fit"] = self.fit.to_json()
        return data

    def scene(self) -> Scene:
        return Scene(
            tuple(SceneObject(o.shape, o.position, o.yaw_deg, o.attributes) for o in self.objects),
            self.camera,
        )


@dataclass(frozen=True)
class Drawings:
    """Crisp drawings of an answer's scenes (B, 3, S, S), valid where known (B,) is True."""

    images: torch.Tensor
    known: torch.Tensor

    @classmethod
    def none_like(cls, images: torch.Tensor) -> Drawings:
        return cls(torch.zeros_like(images), torch.zeros(len(images), dtype=torch.bool))

    def update(self, rows: torch.Tensor, drawn: torch.Tensor, changed: torch.Tensor) -> Drawings:
        """The drawings of rows' answers so far; those that changed since (changed, per row)
        are no longer known."""
        images = self.images.clone()
        images[rows] = drawn.to(images)
        known = self.known.clone()
        known[rows] = ~changed.cpu()
        return Drawings(images, known)


class Predictor:
    """A trained q(z | x), ready to answer: images (B, 3, S, S) in [0, 1] -> Inferences.

    An answer is q's (one forward pass), with the objects q missed added where the model
    has an ObjectFinder (model/object_finder.py), its centres sharpened at the input's
    resolution where the model has a CentreRefiner (model/centre_refiner.py; images on
    `canvas`; the finder needs it), then
    refined (`refine` render-and-compare steps, model/refine.py), then assessed (`fit`: how
    well its rendering explains the image, model/fit.py), in that order: the fit is the
    final answer's.
    """

    def __init__(
        self,
        model: nn.Module,
        world: World,
        shapes: ShapeLibrary,
        name: str,
        checkpoint_hash: str,
        max_objects: int | None = None,
        refine: int = 0,
        fit: bool = True,
        calibration: Calibration | None = None,
        frozen: bool = False,
        centres: CentreRefiner | None = None,
        finder: ObjectFinder | None = None,
    ):
        self.model = model.eval()
        # q as a frozen graph (model/frozen.py): 1.6x the eager model at batch 1 on CPU,
        # made on first use (under a second); off for a model still in training.
        self.frozen = frozen and FrozenQ.applies(model)
        self._frozen_q: FrozenQ | None = None
        # The most objects an answer holds; None: LOOK_AGAIN_FACTOR times as many as q was
        # trained on. Beyond the trained count q looks again at what is left (_ask_q).
        if max_objects is not None and max_objects < 1:
            raise ValueError(
                f"max_objects must be at least 1 (or None: the default); got {max_objects}"
            )
        self.max_objects = max_objects or LOOK_AGAIN_FACTOR * world.max_objects
        check_refine_steps(refine)
        self.refine = refine  # render-and-compare steps after q (model/refine.py); 0: plain AIR
        self._refiner: Refiner | None = None  # built on first use
        self.fit = fit  # assess every answer (a crisp render of the batch)
        self.calibration = calibration  # of the fit (model/calibration.py); None: raw fit only
        self._scorer: FitScorer | None = None  # built on first use
        self._renderer: SceneRenderer | None = None  # built on first use
        self.world, self.shapes = world, shapes
        self.name, self.checkpoint_hash = name, checkpoint_hash
        self.device = next(model.parameters()).device
        self.image_size = world.image_size  # q's canvas
        self.centres = None if centres is None else centres.to(self.device).eval()
        # It looks at the refiner's canvas, and what it finds the refiner reads: no finder
        # without one.
        self.finder = None if finder is None or centres is None else finder.to(self.device)
        # What callers load images to: the refiner's finer canvas where there is one (q
        # then reads it resized to its own), else q's.
        self.q_canvas = Canvas.of(world)
        fine = None if centres is None else fine_world(world, centres.fine_size)
        self.canvas = self.q_canvas if fine is None else Canvas.of(fine)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str | torch.device = "cpu",
        max_objects: int | None = None,
        refine: int = 0,
        fit: bool = True,
        frozen: bool = True,
    ) -> Predictor:
        """ValueError if the checkpoint is broken; a checkpoint without a fit calibration
        (or with one made for other weights) answers with uncalibrated fits."""
        checkpoint = load_checkpoint(path, "cpu")
        try:
            world = World.from_dict(checkpoint["world"])
            shapes = ShapeLibrary.from_dict(checkpoint["shapes"])
            config = ModelConfig.from_dict(checkpoint["model_config"])
            model = build_model(config, world, shapes)
            model.load_state_dict(checkpoint["model"])
        except (KeyError, TypeError, RuntimeError) as error:
            raise ValueError(f"checkpoint {path} does not fit its own config: {error}") from None
        calibration = read_calibration(checkpoint, path)
        centres = CentreRefiner.from_checkpoint(checkpoint, path)
        finder = ObjectFinder.from_checkpoint(checkpoint, path)
        name = f"air3d-{config.kind}-{Path(path).stem}"
        return cls(
            model.to(device), world, shapes, name, file_hash(path), max_objects, refine, fit,
            calibration, frozen, centres, finder,
        )  # fmt: skip

    def warmup(self) -> None:
        """Makes the frozen graphs (one image, a batch) and runs each twice: TorchScript
        profiles a graph's first run and optimises it on the second (1-2 s in all)."""
        for batch in (1, 1, 2, 2):
            self.infer(torch.zeros(batch, 3, self.canvas.size, self.canvas.size))

    def infer(self, images: torch.Tensor, refine: int | None = None) -> list[Inference]:
        """images (B, 3, S, S) on `canvas` (or on q's own canvas: then no sharpening);
        refine: render-and-compare steps for this call (None: the Predictor's own)."""
        sizes = {self.canvas.size, self.q_canvas.size}
        square = images.dim() == 4 and images.shape[1] == 3 and images.shape[2] == images.shape[3]
        if not square or images.shape[-1] not in sizes:
            size = self.q_canvas.size
            if len(sizes) == 1:
                expected = f"(B, {(3, size, size)})"
            else:
                finer = self.canvas.size
                expected = f"(B, 3, S, S) with S {finer} (the centre refiner's) or {size}"
            raise ValueError(f"images must be {expected} floats; got {tuple(images.shape)}")
        steps = self.refine if refine is None else refine
        check_refine_steps(steps)
        fine = None
        if images.shape[-1] != self.image_size:
            fine = images.to(self.device, torch.float32)
            images = resize_canvas(fine, self.canvas, self.q_canvas)
        answer, presence, shape_probs, drawings = self._ask_q(images)
        if fine is not None and self.finder is not None:
            answer, presence, shape_probs, added = self._check_with_finder(
                fine, answer, presence, shape_probs
            )
            drawings = None  # objects may have come or gone
        spreads = unknown_spreads(answer.present)
        if fine is not None and answer.present.any():
            answer, shape_probs, spreads = self._sharpen(fine, answer, shape_probs)
            drawings = None  # the objects moved
            if self.finder is not None:  # an added object the refiner led onto another
                answer = self._drop_repeats(answer, added)
        if answer.present.any():
            hidden = out_of_sight(self.renderer(), answer, OUT_OF_SIGHT).cpu()
            if hidden.any():
                answer = answer.with_present(answer.present & ~hidden)
                drawings = None  # objects went
        if steps:
            answer = self.refiner().refine(images, answer, steps).to("cpu")
            drawings = None  # refinement moved the objects
            spreads = unknown_spreads(answer.present)  # and the eye
        fits = self._assess(images, answer, drawings) if self.fit else [None] * len(answer)
        # Python lists once, not a tensor index per number: 64 answers in 0.4 ms, not 1.5.
        columns = (
            answer.present,
            answer.shape,
            answer.xz,
            answer.yaw,
            presence,
            shape_probs,
            spreads,
        )
        eyes = [None] * len(answer) if answer.eye is None else answer.eye.tolist()
        scenes = zip(*(column.tolist() for column in columns), fits, eyes, strict=True)
        return [self._inference(*scene) for scene in scenes]

    @torch.inference_mode()
    def _sharpen(
        self, fine: torch.Tensor, answer: SceneBatch, shape_probs: torch.Tensor
    ) -> tuple[SceneBatch, torch.Tensor, torch.Tensor]:
        """The answer with its centres sharpened on the fine images (_read_centres), kept
        inside q's workspace, its kind probabilities (B, N, K), and how far each object's
        position may be off for want of the true eye (B, N) (NaN: not known). Where the
        refiner reads the objects' apparent scales and the world's camera jitters, each
        image's eye is fitted to them (model/camera_fit.py), the centres are read through it,
        and the spreads are the fit's (position_spreads)."""
        assert self.centres is not None
        read = self._read_centres(fine, answer, shape_probs)
        eye, matrices = answer.eye, read.matrices
        scene, slot = read.scene, read.slot
        spreads = unknown_spreads(answer.present)
        if read.scales is not None:
            scales = read.scales
            readings = (scales.uv, scales.heights, scales.log_scales, scales.image_of)
            noise = self.centres.scale_noise
            eye = fit_eyes(self.world, *readings, scales.eyes, noise)
            spreads[scene, slot] = position_spreads(self.world, *readings, eye, noise).float()
            matrices = scene_cameras(self.world, eye, len(answer))
        xz = unproject_to_plane(read.uv, matrices[scene], read.heights)
        latents = self.model.latents
        low, high = latents.centre - latents.half_width, latents.centre + latents.half_width
        moved = answer.xz.clone()
        moved[scene, slot] = xz.clamp(low.cpu(), high.cpu())
        answer = SceneBatch(read.kinds, answer.present, moved, answer.yaw, eye)
        return answer, read.shape_probs, spreads

    def _read_centres(
        self, fine: torch.Tensor, answer: SceneBatch, shape_probs: torch.Tensor
    ) -> CentreReading:
        """What the CentreRefiner reads of the answer's objects on the fine images: their
        sharpened image points, and where it names the kinds, each object's kind as the most
        probable of q's probabilities weighed by the refiner's (kind_posterior)."""
        assert self.centres is not None
        scene, slot = answer.present.nonzero(as_tuple=True)
        heights = centre_heights(self.shapes)[answer.shape[scene, slot]]
        matrices = scene_cameras(self.world, answer.eye, len(answer))
        uv = centre_points(answer.xz[scene, slot], heights, matrices[scene])
        neighbours = None
        if self.centres.neighbours:
            centres = ground_centres(answer.xz[scene, slot], heights)
            eyes = scene_eyes(self.world, answer.eye, len(answer))[scene]
            kinds = answer.shape[scene, slot]
            size = fine.shape[-1]
            neighbours = answer_neighbours(
                self.world, self.shapes, size, scene, kinds, centres, eyes
            ).to(self.device)
        uv, reading = sharpen_image_points(
            self.centres, fine, scene.to(self.device), uv.to(self.device), neighbours=neighbours
        )
        uv, kinds = uv.cpu(), answer.shape
        if reading.factor_logits:
            logits = tuple(part.cpu() for part in reading.factor_logits)
            posterior = kind_posterior(self.shapes, shape_probs[scene, slot], logits)
            shape_probs = shape_probs.index_put((scene, slot), posterior)
            kinds = kinds.index_put((scene, slot), posterior.argmax(-1))
            heights = centre_heights(self.shapes)[kinds[scene, slot]]  # the size may change
        scales = None
        if reading.log_scale is not None and self.world.camera.jitter > 0:
            start = scene_eyes(self.world, answer.eye, len(answer))
            scales = ScaleReadings(uv, heights, reading.log_scale.cpu(), scene, start)
        return CentreReading(scene, slot, uv, heights, kinds, shape_probs, matrices, scales)

    def scale_readings(self, images: torch.Tensor) -> ScaleReadings | None:
        """What the camera fit reads in images (B, 3, S, S) on the refiner's canvas: the
        objects that q and the finder find, their image points, heights and apparent scales
        (model/scale_calibration.py calibrates those on a set of unlabeled images); None
        where the model reads no scales (no refiner, or one without scales, or a world whose
        camera does not jitter)."""
        if self.centres is None or images.shape[-1] != self.canvas.size:
            return None
        return self.read_objects(images)[1].scales

    def read_objects(self, images: torch.Tensor) -> tuple[SceneBatch, CentreReading]:
        """The objects that q and the finder find in images (B, 3, S, S) on the refiner's
        canvas, before their centres are sharpened, and what the CentreRefiner reads of them
        (their image points, kinds and scales): the camera fit's input."""
        assert self.centres is not None
        fine = images.to(self.device, torch.float32)
        answer, presence, shape_probs, _ = self._ask_q(
            resize_canvas(fine, self.canvas, self.q_canvas)
        )
        if self.finder is not None:
            answer, presence, shape_probs, _ = self._check_with_finder(
                fine, answer, presence, shape_probs
            )
        with torch.inference_mode():
            return answer, self._read_centres(fine, answer, shape_probs)

    @torch.inference_mode()
    def _check_with_finder(
        self,
        fine: torch.Tensor,
        answer: SceneBatch,
        presence: torch.Tensor,
        shape_probs: torch.Tensor,
    ) -> tuple[SceneBatch, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The answer checked against the object finder's peaks (_compare_with_peaks):
        without q's objects that no peak supports (where the finder has a `support`), and
        with one more slot per object that q missed, placed where its peak is seen on the
        plane at the kinds' mean centre height through q's camera, its kind uniform, its
        presence the peak's probability (the refiner then reads its centre and kind); also
        which slots were added (B, N')."""
        matrices = scene_cameras(self.world, answer.eye, len(answer))
        points, probs, unsupported = self._compare_with_peaks(fine, answer, matrices)
        answer = answer.with_present(answer.present & ~unsupported)
        width = max(len(p) for p in points)
        added = torch.arange(width)[None] < torch.tensor([len(p) for p in points])[:, None]
        if width == 0:
            return answer, presence, shape_probs, torch.zeros_like(answer.present)
        image_of = added.nonzero()[:, 0]
        uv = to_image_coordinates(torch.cat(points), self.canvas.size)
        height = centre_heights(self.shapes).mean().expand(len(uv))
        xz = torch.zeros(len(answer), width, 2)
        xz[added] = torch.nan_to_num(unproject_to_plane(uv, matrices[image_of], height))
        none = torch.zeros(len(answer), width)
        more = SceneBatch(none.long(), added, xz, none, answer.eye)
        more_presence = none.index_put((added,), torch.cat(probs))
        uniform = torch.full((len(answer), width, len(self.shapes)), 1.0 / len(self.shapes))
        rows = torch.arange(len(answer))
        return (
            answer.append(rows, more),
            append_rows(presence, rows, more_presence),
            append_rows(shape_probs, rows, uniform),
            torch.cat([torch.zeros_like(answer.present), added], 1),
        )

    def _compare_with_peaks(
        self, fine: torch.Tensor, answer: SceneBatch, matrices: torch.Tensor
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
        """The finder's peaks matched to where the answer's objects' centres project (one
        peak per object, no farther than EXPLAINED_PIXELS; match_peaks). Per image, the
        unmatched peaks that are objects (at or above the finder's threshold) as pixel points
        of the fine canvas (k, 2), no more than the cap leaves room for, and their
        probabilities (k,); and which of the answer's objects (B, N) no peak at or above
        the finder's `support` matches (none where it has no support)."""
        finder = self.finder
        assert finder is not None
        first, last = self.canvas.image_rows
        frame_origin = torch.tensor([0.0, first])  # the frame's rows start at `first`
        heights = centre_heights(self.shapes)
        lowest = (
            finder.threshold if finder.support is None else min(finder.support, finder.threshold)
        )
        unsupported = torch.zeros_like(answer.present)
        points, probs = [], []
        for b, (peaks, peak_probs) in enumerate(finder.peaks(fine[:, :, first:last], lowest)):
            peaks, peak_probs = peaks.cpu(), peak_probs.cpu()
            slots = answer.present[b].nonzero()[:, 0]
            seen = centre_points(
                answer.xz[b, slots],
                heights[answer.shape[b, slots]],
                matrices[b].expand(len(slots), 4, 4),
            )
            seen = to_pixel_points(seen, self.canvas.size) - frame_origin
            match = match_peaks(peaks, seen, EXPLAINED_PIXELS)  # (k,) slot index or -1
            if finder.support is not None:
                supported = match[peak_probs >= finder.support]
                unsupported[b, slots] = ~torch.isin(torch.arange(len(slots)), supported)
            room = self.max_objects - int(answer.present[b].sum() - unsupported[b].sum())
            missed = ((match < 0) & (peak_probs >= finder.threshold)).nonzero()[:, 0][
                : max(room, 0)
            ]
            points.append(peaks[missed] + frame_origin)
            probs.append(peak_probs[missed])
        return points, probs, unsupported

    def _drop_repeats(self, answer: SceneBatch, added: torch.Tensor) -> SceneBatch:
        """The answer without the added slots (B, N) that stand on an object kept before
        them (distinct): q's objects are never dropped here."""
        min_distance = MIN_DISTANCE_FACTOR * min_centre_distance(self.world, self.shapes)
        kept = distinct(answer, min_distance)
        return answer.with_present(answer.present & (kept | ~added))

    def assess(self, images: torch.Tensor, inferences: list[Inference]) -> list[Fit]:
        """The fit of any answers (e.g. edited, or another model's) to their images (B, 3, S, S)."""
        if len(images) != len(inferences):
            raise ValueError(f"{len(images)} images but {len(inferences)} inferences")
        scenes = [i.scene() for i in inferences]
        batch = SceneBatch.from_scenes(scenes, self.shapes, eye=self.world.camera.position)
        return self.scorer().assess(images, batch)

    def _assess(
        self, images: torch.Tensor, answer: SceneBatch, drawings: Drawings | None
    ) -> list[Fit]:
        """The fits of the final answer; its crisp drawing is reused where an erasure pass
        already made it (the pass found nothing new), and made for the other scenes."""
        if drawings is None or not drawings.known.any():
            return self.scorer().assess(images, answer)
        rendered = drawings.images.clone()
        missing = (~drawings.known).nonzero()[:, 0]
        if len(missing):
            rendered[missing] = self.renderer()(answer[missing], "crisp")
        return self.scorer().assess(images, answer, rendered)

    def scorer(self) -> FitScorer:
        if self._scorer is None:
            self._scorer = FitScorer(
                self.world, self.shapes, self.calibration, self.device, renderer=self.renderer()
            )
        return self._scorer

    def refiner(self) -> Refiner:
        if self._refiner is None:
            steps = self.max_objects
            self._refiner = Refiner(self.world, self.shapes, steps, device=self.device)
        return self._refiner

    @torch.inference_mode()
    def _ask_q(
        self, images: torch.Tensor
    ) -> tuple[SceneBatch, torch.Tensor, torch.Tensor, Drawings | None]:
        """q's answer, one slot per step, its presence (B, N) and shape probabilities
        (B, N, S) per step, and the answer's crisp drawings where erasure made them.

        Where max_objects is above the count q was trained on, q then looks again at what
        is left (model/erasure.py): the objects found so far are painted out and q reads the
        rest, pass after pass, while the last pass found nearly as many objects as it had
        steps (all but one) and the cap is not reached. q stops by itself on emptier scenes,
        and those cost nothing more.
        """
        images = images.to(self.device, torch.float32)
        cap = self.max_objects
        # Each pass runs q for as many steps as it was trained with (fewer if capped lower);
        # objects beyond that come from further passes.
        steps = min(cap, self.world.max_objects)
        answer, presence, shape_probs = self._q_pass(images, steps)
        last_found = answer.present.sum(1)
        drawings: Drawings | None = None
        min_distance = MIN_DISTANCE_FACTOR * min_centre_distance(self.world, self.shapes)
        answer = answer.with_present(distinct(answer, min_distance))
        while self.model.config.kind == "air":
            # q stopped by itself short of its steps (less one: it may stop early on crowded
            # scenes) where the pass found fewer: nothing is left there.
            looking = (last_found >= max(steps - 1, 1)) & (answer.present.sum(1) < cap)
            if not looking.any():
                break
            rows = looking.nonzero()[:, 0]
            found = answer[rows]
            erased, ground, drawn = erase_found(images[rows], found, self.renderer())
            more, more_presence, more_shape_probs = self._q_pass(erased, steps)
            new = new_objects(found, more, min_distance)
            new &= supported(erased, ground, more.with_present(new), self.renderer())
            new &= new.cumsum(1) <= cap - found.present.sum(1)[:, None]  # within the cap
            last_found = torch.zeros_like(last_found).index_put((rows,), new.sum(1))
            drawings = (drawings or Drawings.none_like(images)).update(rows, drawn, new.any(1))
            answer = answer.append(rows, more.with_present(new))
            presence = append_rows(presence, rows, more_presence)
            shape_probs = append_rows(shape_probs, rows, more_shape_probs)
        return answer, presence, shape_probs, drawings

    def _q_pass(
        self, images: torch.Tensor, steps: int
    ) -> tuple[SceneBatch, torch.Tensor, torch.Tensor]:
        """One forward pass of q over images already on the device (see _ask_q)."""
        out = self._q_answer(images, steps)
        presence = torch.sigmoid(out["pres_logit"]).cpu()  # (B, N)
        shape_probs = torch.softmax(out["shape_logits"], -1).cpu()  # (B, N, S)
        xz = self.model.latents.squash(out["xz_loc"]).cpu()  # (B, N, 2)
        present = presence > 0.5
        if self.model.config.kind == "air":  # AIR stops at the first absent step
            present = present.cumprod(1).bool()
        eye = out["eye"].cpu() if "eye" in out else None  # q's camera (model/camera.py)
        answer = SceneBatch(out["shape"].cpu(), present, xz, out["yaw"].cpu(), eye)
        return answer, presence, shape_probs

    def _q_answer(self, images: torch.Tensor, steps: int) -> dict[str, torch.Tensor]:
        """q's mean-mode answer: ANSWER_FIELDS stacked over steps (B, N, ...)."""
        if not self.frozen:
            out = self.model(images, "mean", steps)
            answer = {name: out.stack(name) for name in ANSWER_FIELDS}
            if out.camera is not None:
                answer["eye"] = out.camera.mean_eye
            return answer
        if self._frozen_q is None or not self._frozen_q.fits(steps):
            self._frozen_q = FrozenQ(self.model, steps, self.image_size)
        return self._frozen_q(images)

    @property
    def answer_world(self) -> World:
        """The world as answers see it: up to max_objects objects (the JSON that /infer
        returns is valid input for /render and `air3d render`)."""
        return with_max_objects(self.world, max(self.max_objects, self.world.max_objects))

    def renderer(self) -> SceneRenderer:
        """The crisp renderer that erasure and the fit share (built on first use)."""
        if self._renderer is None:
            self._renderer = SceneRenderer(self.world, self.shapes, self.device)
        return self._renderer

    def _inference(
        self,
        present: list[bool],
        shape: list[int],
        xz: list[list[float]],
        yaw: list[float],
        presence: list[float],
        shape_probs: list[list[float]],
        spreads: list[float],
        fit: Fit | None,
        eye: list[float] | None = None,
    ) -> Inference:
        """One scene of the answer, each argument per step (N, ...); each object carries
        q's presence and shape probabilities at its step (an object that refinement added
        holds q's presence below 0.5)."""
        objects = []
        for n in (n for n, on in enumerate(present) if on):
            spec = self.shapes.specs[shape[n]]
            x, z = xz[n]
            position_sd = None if math.isnan(spreads[n]) else spreads[n]
            marginals = factor_marginals(self.shapes, shape_probs[n])
            objects.append(
                InferredObject(
                    shape=spec.name,
                    position=(x, spec.height / 2, z),
                    yaw_deg=math.degrees(yaw[n]) % 360.0,
                    presence=presence[n],
                    position_sd=position_sd,
                    confidence=object_confidence(
                        presence[n], shape_probs[n][shape[n]], position_sd
                    ),
                    shape_probs=marginals.pop("shape"),
                    attributes=spec.attributes,
                    attribute_probs=marginals,
                )
            )
        return Inference(tuple(objects), fit, None if eye is None else tuple(eye))


def object_confidence(presence: float, kind_prob: float, position_sd: float | None) -> float:
    """The probability that an object is there (its presence), of the kind answered (its
    kind's probability), and, where its position_sd is known, with its centre within
    POSITION_TOLERANCE of the truth: the share of an isotropic Gaussian on the ground plane
    of that RMS within it. Set prediction ranks answers by it: on CLEVR most of the centre
    error is the camera's, larger for objects far from the look-at and in images whose
    camera is less sure, and the objects surer to be right rank first."""
    return presence * kind_prob * share_within(POSITION_TOLERANCE, position_sd)


def share_within(tolerance: float, position_sd: float | None) -> float:
    """The share of an isotropic Gaussian on the ground plane of RMS position_sd that lies
    within `tolerance` of its centre (1 where the position_sd is not known)."""
    return 1.0 if position_sd is None else -math.expm1(-((tolerance / position_sd) ** 2))


def unknown_spreads(present: torch.Tensor) -> torch.Tensor:
    """(B, N) position spreads of an answer whose present slots (B, N) have none: NaN."""
    return torch.full(present.shape, math.nan)


def match_peaks(peaks: torch.Tensor, seen: torch.Tensor, within: float) -> torch.Tensor:
    """For each peak (k, 2), the index of the seen point (n, 2) that it matches, or -1: one
    peak per point (Hungarian on pixel distance), a match no farther than `within`."""
    match = torch.full((len(peaks),), -1, dtype=torch.long)
    if not len(peaks) or not len(seen):
        return match
    distance = torch.cdist(peaks, seen.to(peaks)).numpy()
    rows, cols = linear_sum_assignment(distance)
    near = distance[rows, cols] <= within
    match[torch.as_tensor(rows[near])] = torch.as_tensor(cols[near])
    return match


def factor_marginals(shapes: ShapeLibrary, kind_probs: list[float]) -> dict[str, dict[str, float]]:
    """q's probabilities of the kinds (K,) summed into each factor's values:
    {"shape": {"cube": p, ...}, "color": {...}, ...}."""
    index = shapes.factor_index()
    out = {}
    for a, (factor, values) in enumerate(shapes.factors):
        sums = [0.0] * len(values)
        for k, p in enumerate(kind_probs):
            sums[index[k, a]] += p
        out[factor] = dict(zip(values, sums, strict=True))
    return out
