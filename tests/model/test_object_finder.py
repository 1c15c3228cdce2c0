"""The ObjectFinder (model/object_finder.py): its heatmap, its training and the Predictor's
use of it (objects that q missed are added; objects q found are not found twice)."""

from __future__ import annotations

import json

import pytest
import torch

from air3d.images import Canvas
from air3d.model.centre_refiner import CHECKPOINT_KEY as REFINER_KEY
from air3d.model.centre_refiner import (
    CentreRefiner,
    centre_points,
    scene_cameras,
    to_pixel_points,
)
from air3d.model.centre_training import CentreData
from air3d.model.finder_training import (
    SUPPORTS,
    FinderTrainConfig,
    held_out_counts,
    on_canvas,
    train_object_finder,
)
from air3d.model.object_finder import (
    CHECKPOINT_KEY,
    STRIDE,
    ObjectFinder,
    centre_heatmap,
    focal_loss,
    local_peaks,
)
from air3d.model.predictor import Predictor, match_peaks

FINE = 64


def test_the_heatmap_is_one_at_each_centres_cell_and_less_around_it():
    points = torch.tensor([[10.0, 6.0], [30.0, 14.0], [500.0, 2.0]])  # the last: off the frame
    target = centre_heatmap(points, torch.tensor([0, 0, 1]), 2, (6, 10))
    assert target.shape == (2, 6, 10)
    assert target[0, 1, 2] == 1.0 and target[0, 3, 7] == 1.0  # (column // 4, row // 4)
    assert (target[0] == 1.0).sum() == 2 and (target[0] < 1.0).sum() == 58
    assert 0.5 < target[0, 1, 3] < 1.0  # a neighbour of a centre
    assert (target[1] == 0).all()


def test_the_focal_loss_is_least_where_the_logits_agree_with_the_heatmap():
    target = centre_heatmap(torch.tensor([[10.0, 6.0]]), torch.tensor([0]), 1, (6, 10))
    right = torch.where(target >= 1.0, 6.0, -6.0)
    assert focal_loss(right, target) < 0.01 < focal_loss(-right, target)
    assert focal_loss(right, target) < focal_loss(torch.zeros_like(right), target)


def test_local_peaks_are_the_separate_maxima_above_the_threshold_most_probable_first():
    heatmap = torch.zeros(8, 10)
    heatmap[2, 3], heatmap[2, 4] = 0.7, 0.6  # one object (its neighbour is no peak)
    heatmap[6, 8] = 0.9
    heatmap[5, 1] = 0.3  # below the threshold
    points, probs = local_peaks(heatmap, 0.5)
    assert probs.tolist() == pytest.approx([0.9, 0.7])
    cells = torch.tensor([[8, 6], [3, 2]])  # (column, row), the surer first
    assert points.tolist() == (cells * STRIDE + STRIDE / 2).tolist()


def test_the_finder_answers_one_logit_per_cell_of_any_frame():
    finder = ObjectFinder(channels=(8, 8, 16))
    for height, width in ((48, 64), (45, 62)):
        logits = finder(torch.rand(2, 3, height, width))
        assert logits.shape == (2, -(-height // STRIDE), -(-width // STRIDE))
    # before training: few centres anywhere (CenterNet's start), so no peaks
    assert torch.sigmoid(logits).max() < 0.05
    assert all(len(points) == 0 for points, _ in finder.peaks(torch.rand(2, 3, 48, 64)))


def squares(n: int, seed: int) -> CentreData:
    """Frames (n, 3, 48, 64) of one to three bright 6-px squares on grey, and their centres."""
    g = torch.Generator().manual_seed(seed)
    images = torch.full((n, 3, 48, 64), 90, dtype=torch.uint8)
    image_of, points = [], []
    for i in range(n):
        count = int(torch.randint(1, 4, (1,), generator=g))
        for k in range(count):  # one per third of the width: never touching
            x = int(torch.randint(21 * k + 3, 21 * k + 12, (1,), generator=g))
            y = int(torch.randint(3, 39, (1,), generator=g))
            images[i, :, y : y + 6, x : x + 6] = torch.tensor([230, 60, 60])[:, None, None]
            image_of.append(i)
            points.append([x + 3.0, y + 3.0])
    m = len(points)
    return CentreData(
        images,
        torch.tensor(image_of),
        torch.tensor(points),
        torch.zeros(m),
        torch.zeros(m).long(),
        torch.zeros(m),
    )


def test_training_finds_the_objects_and_chooses_a_threshold():
    torch.manual_seed(0)
    finder = ObjectFinder(channels=(8, 8, 16))
    held_out = squares(24, seed=1)
    before = held_out_counts(finder, held_out)
    config = FinderTrainConfig(steps=150, batch_size=8, lr=5e-3, held_out_every=150)
    curve = train_object_finder(finder, squares(96, seed=0), held_out, config)
    threshold = curve[-1]["threshold"]
    assert finder.threshold == threshold
    assert curve[-1][f"count_{threshold}"] >= 0.8 > before[f"count_{threshold}"]
    assert curve[-1][f"recall_{threshold}"] >= 0.9


def test_each_found_object_matches_at_most_one_peak_near_it():
    peaks = torch.tensor([[10.0, 10.0], [14.0, 10.0], [60.0, 40.0]])
    seen = torch.tensor([[11.0, 10.0], [90.0, 90.0]])  # the first explains the nearer peak
    assert match_peaks(peaks, seen, 8.0).tolist() == [0, -1, -1]
    assert match_peaks(peaks, torch.zeros(0, 2), 8.0).tolist() == [-1, -1, -1]
    assert match_peaks(torch.zeros(0, 2), seen, 8.0).tolist() == []


@pytest.fixture(scope="module")
def finding_checkpoint(tiny_clevr_checkpoint, tmp_path_factory):
    """The tiny clevr model with a refiner that keeps its centres and an (untrained) finder."""
    checkpoint = torch.load(tiny_clevr_checkpoint, weights_only=True)
    checkpoint[REFINER_KEY] = CentreRefiner(FINE, window=16, channels=(8, 8), hidden=16).state()
    checkpoint[CHECKPOINT_KEY] = ObjectFinder(channels=(8, 8, 16)).state()
    path = tmp_path_factory.mktemp("finding") / "model.pt"
    torch.save(checkpoint, path)
    return path


def frame_points(predictor: Predictor, image: torch.Tensor) -> torch.Tensor:
    """Where the centres of q's answer to one fine image project, in frame pixels."""
    answer = predictor.infer(image[None])[0]
    xz = torch.tensor([[o.position[0], o.position[2]] for o in answer.objects]).view(-1, 2)
    heights = torch.tensor([o.position[1] for o in answer.objects])
    eye = None if answer.camera is None else torch.tensor([answer.camera])
    matrix = scene_cameras(predictor.world, eye, 1).expand(len(xz), 4, 4)
    points = to_pixel_points(centre_points(xz, heights, matrix), FINE)
    return points - torch.tensor([0.0, predictor.canvas.image_rows[0]])


def test_the_predictor_adds_the_objects_only_the_finder_sees(finding_checkpoint):
    predictor = Predictor.from_checkpoint(finding_checkpoint, frozen=False, fit=False)
    assert predictor.finder is not None
    torch.manual_seed(0)
    noise = torch.rand(8, 3, FINE, FINE)
    plain = Predictor.from_checkpoint(finding_checkpoint, frozen=False, fit=False)
    plain.finder = None
    answers = plain.infer(noise)
    most = max(range(len(noise)), key=lambda i: len(answers[i].objects))
    image, q_only = noise[most], answers[most]
    assert q_only.objects  # q finds something in noise
    found = frame_points(plain, image)
    far = torch.tensor([[2.0, 2.0]]) if found[:, 0].min() > 20 else torch.tensor([[62.0, 2.0]])

    def peaks_at(points):
        return lambda frames, threshold: [(points, torch.full((len(points),), 0.8)) for _ in frames]

    predictor.finder.peaks = peaks_at(found[:1] + 1.0)  # q's own object: nothing added
    assert len(predictor.infer(image[None])[0].objects) == len(q_only.objects)
    predictor.finder.peaks = peaks_at(torch.cat([found[:1] + 1.0, far]))  # and one more
    answer = predictor.infer(image[None])[0]
    assert len(answer.objects) == len(q_only.objects) + 1
    assert answer.objects[-1].presence == pytest.approx(0.8)  # the peak's probability
    predictor.max_objects = len(q_only.objects)  # no room under the cap
    assert len(predictor.infer(image[None])[0].objects) == len(q_only.objects)
    # a finder with a support drops q's objects that no peak supports
    predictor.max_objects = 20
    predictor.finder.support = 0.5
    predictor.finder.peaks = lambda frames, threshold: [
        (found[:1] + 1.0, torch.tensor([0.8])) for _ in frames
    ]
    kept = predictor.infer(image[None])[0].objects
    assert len(kept) == 1 and kept[0].position == q_only.objects[0].position
    predictor.finder.peaks = lambda frames, threshold: [(found[:1], torch.tensor([0.3]))]
    assert predictor.infer(image[None])[0].objects == ()  # too weak a peak supports nothing
    # q's canvas in: no finer frame to look at, q's answer
    coarse = torch.nn.functional.interpolate(image[None], size=32, mode="area")
    assert len(predictor.infer(coarse)[0].objects) == len(plain.infer(coarse)[0].objects)


def test_a_broken_finder_in_a_checkpoint_is_a_clear_error(finding_checkpoint, tmp_path):
    checkpoint = torch.load(finding_checkpoint, weights_only=True)
    checkpoint[CHECKPOINT_KEY] = {"config": {"channels": [8, 8, 16]}, "weights": {}}
    path = tmp_path / "broken.pt"
    torch.save(checkpoint, path)
    with pytest.raises(ValueError, match="object finder is broken"):
        Predictor.from_checkpoint(path)


def test_train_finder_writes_a_finder_that_the_predictor_uses(
    tiny_clevr_checkpoint, finding_checkpoint, tmp_path, capsys
):
    from air3d.cli import main

    path = tmp_path / "model.pt"
    path.write_bytes(tiny_clevr_checkpoint.read_bytes())
    argv = ["train-finder", "--checkpoint", str(path), "--scenes", "6", "--steps", "2"]
    argv += ["--batch-size", "2", "--cache", str(tmp_path / "cache")]
    assert main(argv) != 0  # no refiner yet: nothing would read what it finds
    assert "run `air3d train-centres` first" in capsys.readouterr().err
    path.write_bytes(finding_checkpoint.read_bytes())
    assert main([*argv, "--curve", str(tmp_path / "curve.json")]) == 0
    assert "wrote the object finder" in capsys.readouterr().out
    chosen = json.loads((tmp_path / "curve.json").read_text())[-1]  # with q, on held-out
    assert 0.0 <= chosen["count_with_q"] <= 1.0 and chosen["support"] in SUPPORTS
    predictor = Predictor.from_checkpoint(path, frozen=False, fit=False)
    assert predictor.finder is not None and predictor.centres is not None
    assert (predictor.finder.threshold, predictor.finder.support) == (
        chosen["threshold"],
        chosen["support"],
    )
    first = predictor.finder.head.weight.clone()
    assert main([*argv, "--steps", "1", "--from-existing"]) == 0  # it starts from the last
    again = Predictor.from_checkpoint(path, frozen=False, fit=False).finder
    assert (again.head.weight - first).abs().max() < 0.1 * first.abs().max()


def test_frames_go_on_their_canvas_between_its_bands():
    frames = torch.randint(0, 256, (2, 3, 6, 16), dtype=torch.uint8)
    canvas = Canvas(16, (5, 11), (0.25, 0.5, 0.75))
    images = on_canvas(frames, canvas)
    assert images.shape == (2, 3, 16, 16)
    assert torch.equal(images[:, :, 5:11], frames.float() / 255.0)
    assert (images[:, :, :5] == torch.tensor([0.25, 0.5, 0.75]).view(1, 3, 1, 1)).all()
    assert (images[:, :, 11:] == torch.tensor([0.25, 0.5, 0.75]).view(1, 3, 1, 1)).all()
