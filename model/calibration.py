"""The fit's calibration: what the raw fit of valid scenes looks like, stored in the checkpoint.

`calibrate(predictor, n)` draws n scenes from the world's prior (a seed of their own, none
of training's), renders them, lets the predictor answer them exactly as it answers users
(q, no refinement) and records the sorted per-pixel log-likelihoods of those answers
(model/fit.py). A new answer's `score` is then the fraction of these valid scenes that fit
worse, and an answer is flagged `not_a_scene` below the `flag_rate` quantile: about
`flag_rate` of valid scenes are flagged, by construction.

The calibration belongs to one model in one world: it records a digest of both, and a
checkpoint whose weights or world changed since (fine-tuned, adapted) reads as
uncalibrated until `air3d calibrate` runs on it again. Stored under CHECKPOINT_KEY as plain
data (lists, floats, strings), so checkpoints still load with weights_only=True.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tqdm import tqdm

from air3d.model.checkpoint import write_part
from air3d.model.config import check_keys
from air3d.model.fit import DEFAULT_TONE_GAMMAS, FitScorer
from air3d.renderer import SceneBatch
from air3d.renderer.prior import sample_scenes

if TYPE_CHECKING:
    from air3d.model.predictor import Predictor

CHECKPOINT_KEY = "fit_calibration"
CALIBRATION_SEED = 424_242  # the prior's scenes for calibration; training uses 0, 7919 r, 1e6+3
# Fraction of the calibration's valid scenes below the threshold. The target is at most 1%
# of valid scenes flagged; the quantile of 1000 scenes is uncertain (0.5% flagged 1.3% of
# another 1000, assets/model/REPORT.md), so the threshold sits well below it.
DEFAULT_FLAG_RATE = 0.0025


@dataclass(frozen=True)
class Calibration:
    scores: tuple[float, ...]  # per-pixel log-likelihoods of the valid scenes' answers, sorted
    threshold: float  # not_a_scene below it: the flag_rate quantile of `scores`
    flag_rate: float
    tone_gammas: tuple[float, ...]  # the tone curves the fit tried (FitScorer)
    seed: int  # of the prior's scenes
    model_digest: str  # of the weights and the world it was computed for (`model_digest`)

    def __post_init__(self) -> None:
        _check(self.scores, self.flag_rate)
        if list(self.scores) != sorted(self.scores):
            raise ValueError("calibration scores must be sorted ascending")

    @classmethod
    def from_scores(
        cls,
        scores: Sequence[float],
        flag_rate: float,
        tone_gammas: tuple[float, ...],
        seed: int,
        model_digest: str,
    ) -> Calibration:
        _check(scores, flag_rate)
        ordered = sorted(scores)
        threshold = float(torch.tensor(ordered, dtype=torch.float64).quantile(flag_rate))
        return cls(tuple(ordered), threshold, flag_rate, tuple(tone_gammas), seed, model_digest)

    @property
    def n(self) -> int:
        return len(self.scores)

    def score(self, log_likelihood_per_pixel: float) -> float:
        """Fraction of the calibration's valid scenes that fit strictly worse, in [0, 1]."""
        return bisect.bisect_left(self.scores, log_likelihood_per_pixel) / self.n

    def not_a_scene(self, log_likelihood_per_pixel: float) -> bool:
        return log_likelihood_per_pixel < self.threshold

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["scores"], data["tone_gammas"] = list(self.scores), list(self.tone_gammas)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        if not isinstance(data, dict):
            raise ValueError(f"fit calibration must be a mapping, got {type(data).__name__}")
        check_keys(cls, data, "fit calibration")
        try:
            return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
        except TypeError as error:
            raise ValueError(f"invalid fit calibration: {error}") from None


def _check(scores: Sequence[float], flag_rate: float) -> None:
    if not scores:
        raise ValueError("a calibration needs at least one valid scene's score")
    if not 0 <= flag_rate < 1:
        raise ValueError(f"flag_rate must be in [0, 1), got {flag_rate}")


def model_digest(checkpoint: dict[str, Any]) -> str:
    """First 12 hex digits of SHA-256 over the world and the weights: what a calibration
    holds for. Not the file hash: writing the calibration into the file changes that."""
    digest = hashlib.sha256(json.dumps(checkpoint["world"], sort_keys=True).encode())
    for name, tensor in sorted(checkpoint["model"].items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


def read_calibration(checkpoint: dict[str, Any], path: str | Path) -> Calibration | None:
    """The checkpoint's calibration; None when it has none, or one made for other weights
    or another world (with a warning that says how to recalibrate)."""
    data = checkpoint.get(CHECKPOINT_KEY)
    if data is None:
        return None
    calibration = Calibration.from_dict(data)
    if calibration.model_digest != model_digest(checkpoint):
        warnings.warn(
            f"checkpoint {path}: its fit calibration was made for other weights or another "
            f"world; fits are uncalibrated until `air3d calibrate --checkpoint {path}` runs",
            stacklevel=2,
        )
        return None
    return calibration


def calibrate(
    predictor: Predictor,
    digest: str,
    n: int = 1000,
    seed: int = CALIBRATION_SEED,
    flag_rate: float = DEFAULT_FLAG_RATE,
    batch_size: int = 64,
    progress: bool = False,
    tone_gammas: tuple[float, ...] = DEFAULT_TONE_GAMMAS,
) -> Calibration:
    """Fits of the predictor's answers (plain q, as users get by default) on n valid scenes."""
    if n < 1:
        raise ValueError(f"--n must be >= 1, got {n}")
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    world, shapes = predictor.world, predictor.shapes
    scorer = FitScorer(world, shapes, None, predictor.device, tone_gammas)
    scenes = sample_scenes(world, shapes, n, seed)
    scores: list[float] = []
    with tqdm(total=n, desc="calibrate", unit="img", disable=not progress) as bar:
        for start in range(0, n, batch_size):
            chunk = scenes[start : start + batch_size]
            with torch.no_grad():
                images = scorer.renderer.render_scenes(chunk, "crisp")
            answers = predictor.infer(images, refine=0)
            batch = SceneBatch.from_scenes([a.scene() for a in answers], shapes)
            scores += scorer.log_likelihood_per_pixel(images, batch).tolist()
            bar.update(len(chunk))
    return Calibration.from_scores(scores, flag_rate, scorer.tone_gammas, seed, digest)


def write_calibration(path: str | Path, calibration: Calibration) -> None:
    """Stores the calibration in the checkpoint at `path`, atomically (a crash leaves the
    previous file whole)."""
    write_part(path, CHECKPOINT_KEY, calibration.to_dict())
