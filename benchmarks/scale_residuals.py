"""How far off the centre refiner's apparent scales are, by kind and by how hidden the
object is: the camera fit reads each image's eye from them (model/camera_fit.py), and a
kind whose scales lean one way pulls the eye with it.

    .venv/bin/python benchmarks/scale_residuals.py --data data/clevr-blender-val2 \\
        [--checkpoint assets/model/clevr.pt] [--limit 200] [--no-calibrate]

For each object the model reads (q and the finder, as `Predictor.infer` reads them), the
residual is its read log scale log(h / z) less the log scale its read image point would show
through the image's true camera. The set's scales are first calibrated to its images, as
`air3d evaluate` does (unless --no-calibrate). Prints the median and robust std (1.4826 MAD)
of the residuals over all objects, by kind (shape, size, material) and by hidden share.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from air3d.data import load_dataset
from air3d.model.camera_fit import expected_log_scales
from air3d.model.predictor import Predictor
from air3d.model.scale_calibration import calibrate_to, calibration_sample
from air3d.model.shipped import choose_checkpoint
from air3d.renderer import SceneBatch
from air3d.renderer.visibility import hidden_shares

BATCH = 32
HIDDEN_BINS = (0.0, 0.05, 0.2, 0.5, 1.01)


def read_residuals(predictor: Predictor, images: torch.Tensor, eyes: torch.Tensor):
    """(residuals (n,), kinds (n,), hidden shares (n,)) of the objects read in images."""
    answer, read = predictor.read_objects(images)
    scales = read.scales
    assert scales is not None, "this model reads no scales"
    truth = expected_log_scales(
        predictor.world, eyes.double()[:, None], scales.uv, scales.heights, scales.image_of
    )[:, 0]
    kinds = read.kinds[read.scene, read.slot]
    read_answer = SceneBatch(read.kinds, answer.present, answer.xz, answer.yaw, answer.eye)
    hidden = hidden_shares(predictor.renderer(), read_answer)
    return (scales.log_scales.double() - truth), kinds, hidden.cpu()[read.scene, read.slot]


def kind_group(spec) -> str:
    """A kind's shape and attributes but its colour, which does not change its outline."""
    return " ".join([value for name, value in spec.attributes if name != "color"] + [spec.name])


def summary(name: str, values: np.ndarray) -> str:
    if len(values) == 0:
        return f"{name:32s} {0:5d}"
    median = np.median(values)
    spread = 1.4826 * np.median(np.abs(values - median))
    return f"{name:32s} {len(values):5d}  median {median:+.4f}  robust std {spread:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--no-calibrate", action="store_true")
    args = parser.parse_args()
    predictor = Predictor.from_checkpoint(
        choose_checkpoint(args.checkpoint, "clevr"), "cpu", refine=0, fit=False
    )
    data = load_dataset(args.data, predictor.world, predictor.shapes, args.limit, predictor.canvas)
    if not args.no_calibrate:
        picked = calibration_sample(predictor, len(data.images))
        print(calibrate_to(predictor, data.images[picked].split(BATCH)))
    eyes = torch.tensor([scene.camera for scene in data.scenes], dtype=torch.float64)
    parts = [
        read_residuals(predictor, data.images[s : s + BATCH], eyes[s : s + BATCH])
        for s in range(0, len(data.images), BATCH)
    ]
    residual, kinds, hidden = (torch.cat(column).numpy() for column in zip(*parts, strict=True))
    print(summary("all", residual))
    groups = [kind_group(spec) for spec in predictor.shapes.specs]
    for group in sorted(set(groups)):
        members = [k for k, g in enumerate(groups) if g == group]
        print(summary(group, residual[np.isin(kinds, members)]))
    for low, high in zip(HIDDEN_BINS, HIDDEN_BINS[1:], strict=False):
        inside = (hidden >= low) & (hidden < high)
        print(summary(f"hidden {low:.2f}-{high:.2f}", residual[inside]))


if __name__ == "__main__":
    main()
