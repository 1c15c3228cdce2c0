"""How much of q's 3D centre error is the camera's: CLEVR jitters its camera per image, and
a position read from the image through the wrong camera misses even when the image point
is right.

    .venv/bin/python benchmarks/camera_floor.py --report reports/clevr/x-blender.json \\
        --data data/clevr-blender-test [--world clevr] [--parts] [--split]

For each true object, the image-consistent truth is the point on its centre's plane that the
world's unjittered camera sees where the image's own camera shows the object. Prints, as
median and share within CLEVR's AP thresholds: the truth against the image-consistent truth
(the error of a perfect image reader that keeps the world's camera: the floor), and q's
answers (matched by the Hungarian algorithm on the ground plane) against both. The report
must come from `air3d evaluate` on `--data` (its predicted_scenes are in the data's order),
and the data's scenes must carry their cameras (make-data in a world with camera jitter).
`--split` parts the answers' error (where they carry their cameras) into the image points'
(each answer's point, seen through its own camera, read back through the true one) and the
camera's (each true centre's image point read through the answer's camera), and prints the
points' bias towards the camera by kind.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from air3d.renderer import WORLD_HELP, open_world
from air3d.renderer.camera import project, projection_matrices, unproject_to_plane

THRESHOLDS = (0.125, 0.0625)


def image_consistent(objects: list[dict], eye: list[float], world_eye: torch.Tensor, world):
    """(true xz (N, 2), image-consistent xz (N, 2)) of one scene."""
    centres = torch.tensor([o["position"] for o in objects], dtype=torch.float64)
    # PyTorch3D builds cameras in float32; the projections run in float64.
    own = projection_matrices(world, torch.tensor([eye]))[0].double()
    fixed = projection_matrices(world, world_eye)[0].double()
    image_points = project(centres, own)
    read = [
        unproject_to_plane(image_points[i : i + 1], fixed, float(centres[i, 1]))[0]
        for i in range(len(centres))
    ]
    return centres[:, [0, 2]].numpy(), torch.stack(read).numpy()


def spherical(eye: list[float]) -> tuple[float, float, float]:
    """(distance, elevation, azimuth) of an eye about the origin, y up."""
    x, y, z = eye
    r = math.sqrt(x * x + y * y + z * z)
    return r, math.asin(y / r), math.atan2(z, x)


def cartesian(r: float, elevation: float, azimuth: float) -> list[float]:
    flat = r * math.cos(elevation)
    return [flat * math.cos(azimuth), r * math.sin(elevation), flat * math.sin(azimuth)]


# Which parts of each image's own camera a reader knows; the rest stay the world camera's.
PARTS = {
    "azimuth": (False, False, True),
    "distance": (True, False, False),
    "elevation": (False, True, False),
    "distance and elevation": (True, True, False),
}


def floor_with_parts(truth: list[dict], world, known: tuple[bool, bool, bool]) -> list[float]:
    """The floor's errors for a reader that knows the `known` parts of each image's camera."""
    fixed = spherical(list(world.camera.position))
    errors: list[float] = []
    for scene in truth:
        eye = scene["camera"]["position"]
        own = spherical(eye)
        mixed = [o if k else f for o, f, k in zip(own, fixed, known, strict=True)]
        guess = torch.tensor([cartesian(*mixed)])
        xz, consistent = image_consistent(scene["objects"], eye, guess, world)
        errors += np.linalg.norm(xz - consistent, axis=1).tolist()
    return errors


def matched_distances(pred: np.ndarray, true: np.ndarray) -> list[float]:
    if not len(pred) or not len(true):
        return []
    distances = np.linalg.norm(pred[:, None] - true[None], axis=-1)
    rows, cols = linear_sum_assignment(distances)
    return distances[rows, cols].tolist()


def split_errors(pred: dict, true: dict, world) -> list[tuple[float, float, float, str]]:
    """For each answered object matched to a true one (Hungarian, ground plane, within 0.5):
    (its image point's error read through the true camera, the true point's error read
    through the answer's camera, the point's error towards the true camera (+: nearer),
    its true kind "size shape material")."""
    if not pred["objects"] or "camera" not in pred:
        return []
    truth = np.array([o["position"] for o in true["objects"]], dtype=np.float64)
    answer = np.array([o["position"] for o in pred["objects"]], dtype=np.float64)
    distances = np.linalg.norm(truth[:, None, [0, 2]] - answer[None, :, [0, 2]], axis=-1)
    true_eye, answer_eye = true["camera"]["position"], pred["camera"]["position"]
    own = projection_matrices(world, torch.tensor([true_eye]))[0].double()
    theirs = projection_matrices(world, torch.tensor([answer_eye]))[0].double()
    rows = []
    for t, a in zip(*linear_sum_assignment(distances), strict=True):
        if distances[t, a] > 0.5:
            continue
        height = float(answer[a, 1])
        seen = project(torch.tensor(answer[a : a + 1]), theirs)
        point = unproject_to_plane(seen, own, height)[0].numpy()
        camera = unproject_to_plane(
            project(torch.tensor(truth[t : t + 1]), own), theirs, truth[t, 1]
        )
        toward = np.array(true_eye)[[0, 2]] - truth[t, [0, 2]]
        o = true["objects"][t]
        rows.append((
            float(np.linalg.norm(point - truth[t, [0, 2]])),
            float(np.linalg.norm(camera[0].numpy() - truth[t, [0, 2]])),
            float((point - truth[t, [0, 2]]) @ toward / np.linalg.norm(toward)),
            " ".join(str(o.get(k, "")) for k in ("size", "shape", "material")).strip(),
        ))  # fmt: skip
    return rows


def print_split(predicted: list[dict], truth: list[dict], world) -> None:
    rows = [r for p, t in zip(predicted, truth, strict=False) for r in split_errors(p, t, world)]
    if not rows:
        raise SystemExit("--split: the report's answers carry no cameras")
    print(summary("the answers' image points, through the true camera", [r[0] for r in rows]))
    print(summary("the answers' cameras alone (true image points)", [r[1] for r in rows]))
    for kind in sorted({r[3] for r in rows}):
        toward = np.array([r[2] for r in rows if r[3] == kind])
        print(
            f"  {kind}: points towards the camera by {np.median(toward):+.3f} "
            f"(median of {len(toward)})"
        )


def summary(name: str, errors: list[float]) -> str:
    e = np.asarray(errors)
    within = ", ".join(f"within {t}: {np.mean(e < t):.1%}" for t in THRESHOLDS)
    return f"{name}: median {np.median(e):.3f}, {within} ({len(e)} objects)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report", type=Path, required=True, help="air3d evaluate's OUT.json")
    parser.add_argument("--data", type=Path, required=True, help="the data set it evaluated")
    parser.add_argument("--world", default="clevr", help=WORLD_HELP)
    parser.add_argument(
        "--parts", action="store_true",
        help="also the floor of readers that know the camera's distance, elevation or azimuth",
    )  # fmt: skip
    parser.add_argument(
        "--split", action="store_true",
        help="part the answers' error into their image points' and their cameras'",
    )  # fmt: skip
    args = parser.parse_args()
    world, _ = open_world(args.world)
    world_eye = torch.tensor([world.camera.position])
    predicted = json.loads(args.report.read_text())["predicted_scenes"]
    truth = [json.loads(line) for line in (args.data / "scenes.jsonl").read_text().splitlines()]
    if len(predicted) > len(truth) or "camera" not in truth[0]:
        raise SystemExit("the report must be of --data, whose scenes carry their cameras")
    floor, against_truth, against_image = [], [], []
    for pred, true in zip(predicted, truth, strict=False):
        eye = true["camera"]["position"]
        xz, consistent = image_consistent(true["objects"], eye, world_eye, world)
        floor += np.linalg.norm(xz - consistent, axis=1).tolist()
        answer = np.array([[o["position"][0], o["position"][2]] for o in pred["objects"]])
        answer = answer.reshape(-1, 2)
        against_truth += matched_distances(answer, xz)
        against_image += matched_distances(answer, consistent)
    print(summary("the world's camera alone (truth vs image-consistent truth)", floor))
    print(summary("q vs the truth", against_truth))
    print(summary("q vs the image-consistent truth", against_image))
    if args.split:
        print_split(predicted, truth, world)
    if args.parts:  # what reading each part of the camera would be worth
        for name, known in PARTS.items():
            errors = floor_with_parts(truth, world, known)
            print(summary(f"the world's camera with the true {name}", errors))


if __name__ == "__main__":
    main()
