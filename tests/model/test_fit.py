"""The fit score and the not-a-scene flag: calibrated in the checkpoint, computed last."""

from __future__ import annotations

import math
import pickle
import shutil

import pytest
import torch

from air3d.model import Inference, Predictor, load_checkpoint, save_checkpoint
from air3d.model.calibration import CHECKPOINT_KEY, Calibration, model_digest, write_calibration
from air3d.model.fit import FitScorer
from air3d.model.refine import Refiner
from air3d.renderer import (
    Scene,
    SceneBatch,
    SceneObject,
    SceneRenderer,
    gaussian_log_likelihood,
)

BLANKS = {"white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0), "red": (1.0, 0.0, 0.0)}


def perfect(world) -> float:
    """log N(x; x, sigma^2) per value: the best fit there is."""
    return -math.log(world.pixel_sigma) - 0.5 * math.log(2 * math.pi)


def blanks() -> torch.Tensor:
    return torch.stack([torch.tensor(c).view(3, 1, 1).expand(3, 64, 64) for c in BLANKS.values()])


@pytest.fixture(scope="module")
def scene_and_image(world, shapes):
    scene = Scene(
        (SceneObject("cube", (0.3, 0.3, -0.2), 30.0), SceneObject("cone", (-0.5, 0.3, 0.4), 0.0))
    )
    with torch.no_grad():
        return scene, SceneRenderer(world, shapes).render_scenes([scene])


def test_blank_images_are_flagged(calibrated_checkpoint):
    predictor = Predictor.from_checkpoint(calibrated_checkpoint)
    for name, answer in zip(BLANKS, predictor.infer(blanks()), strict=True):
        fit = answer.fit
        assert fit.calibrated and fit.not_a_scene, name
        assert fit.score == 0.0 and fit.log_likelihood_per_pixel < predictor.calibration.threshold
        assert answer.to_json()["fit"]["not_a_scene"] is True


def test_a_valid_scene_explained_by_its_answer_is_not_flagged(
    calibrated_checkpoint, scene_and_image, world
):
    predictor = Predictor.from_checkpoint(calibrated_checkpoint)
    scene, image = scene_and_image
    [fit] = predictor.assess(image, [Inference(tuple(_objects(scene)))])
    assert fit.log_likelihood_per_pixel == pytest.approx(perfect(world), abs=1e-5)
    assert not fit.not_a_scene and fit.score == 1.0  # no valid scene fits better than exactly
    # the same scene missing an object explains the image worse
    [worse] = predictor.assess(image, [Inference(tuple(_objects(scene))[:1])])
    assert worse.log_likelihood_per_pixel < fit.log_likelihood_per_pixel


def test_calibration_round_trips_through_a_checkpoint(tiny_checkpoint, tmp_path):
    path = tmp_path / "model.pt"
    shutil.copy(tiny_checkpoint, path)
    calibration = Calibration.from_scores(
        [1.2, 0.9, 1.3, 1.1],
        0.25,
        (1.0, 2.2),
        seed=7,
        model_digest=model_digest(load_checkpoint(path)),
    )
    assert calibration.scores == (0.9, 1.1, 1.2, 1.3) and 0.9 < calibration.threshold < 1.1
    write_calibration(path, calibration)
    stored = load_checkpoint(path)  # still a weights_only checkpoint
    assert Calibration.from_dict(stored[CHECKPOINT_KEY]) == calibration
    predictor = Predictor.from_checkpoint(path)
    assert predictor.calibration == calibration
    assert predictor.scorer().tone_gammas == (1.0, 2.2)  # the calibration's, not the default
    assert [calibration.score(v) for v in (0.5, 1.1, 1.25, 2.0)] == [0.0, 0.25, 0.75, 1.0]
    assert calibration.not_a_scene(0.95) and not calibration.not_a_scene(1.1)
    assert list(path.parent.glob(".*.tmp")) == []  # written atomically: nothing left over


def test_an_uncalibrated_checkpoint_answers_with_the_raw_fit_and_no_flag(tiny_checkpoint, world):
    predictor = Predictor.from_checkpoint(tiny_checkpoint)
    assert predictor.calibration is None
    for answer in predictor.infer(blanks()):
        data = answer.to_json()["fit"]
        assert data["calibrated"] is False and data["score"] is None
        assert data["not_a_scene"] is False
        assert data["log_likelihood_per_pixel"] < perfect(world)


def test_a_calibration_for_other_weights_reads_as_uncalibrated(calibrated_checkpoint, tmp_path):
    checkpoint = load_checkpoint(calibrated_checkpoint)
    name = next(iter(checkpoint["model"]))
    checkpoint["model"][name] = checkpoint["model"][name] + 0.01  # fine-tuned since
    checkpoint.pop("format")
    save_checkpoint(tmp_path / "tuned.pt", checkpoint)
    with pytest.warns(UserWarning, match="air3d calibrate --checkpoint"):
        predictor = Predictor.from_checkpoint(tmp_path / "tuned.pt")
    assert predictor.calibration is None


def test_the_fit_is_the_refined_answers(
    calibrated_checkpoint, scene_and_image, world, shapes, monkeypatch
):
    """q -> refine -> assess: the fit scores what refinement returned, not q's answer."""
    scene, image = scene_and_image
    truth = SceneBatch.from_scenes([scene], shapes, slots=world.max_objects)
    monkeypatch.setattr(Refiner, "refine", lambda self, images, batch, steps: truth)
    predictor = Predictor.from_checkpoint(calibrated_checkpoint)
    [plain] = predictor.infer(image, refine=0)
    [refined] = predictor.infer(image, refine=1)
    assert [o.shape for o in refined.objects] == [o.shape for o in scene.objects]
    assert refined.fit.log_likelihood_per_pixel == pytest.approx(perfect(world), abs=1e-5)
    assert plain.fit.log_likelihood_per_pixel < refined.fit.log_likelihood_per_pixel
    assert predictor.assess(image, [plain]) == [plain.fit]


def test_answers_with_fits_pickle_and_fit_can_be_turned_off(calibrated_checkpoint):
    answers = Predictor.from_checkpoint(calibrated_checkpoint).infer(blanks()[:1])
    assert pickle.loads(pickle.dumps(answers)) == answers  # the service's worker sends them
    [off] = Predictor.from_checkpoint(calibrated_checkpoint, fit=False).infer(blanks()[:1])
    assert off.fit is None and "fit" not in off.to_json()


def test_the_tone_curve_is_undone(world, shapes, scene_and_image):
    scene, image = scene_and_image
    batch = SceneBatch.from_scenes([scene], shapes)
    toned = image ** (1 / 2.2)  # the scene saved with a gamma 2.2 tone curve
    linear_only = FitScorer(world, shapes, tone_gammas=(1.0,)).log_likelihood_per_pixel(
        toned, batch
    )
    tolerant = FitScorer(world, shapes).log_likelihood_per_pixel(toned, batch)
    assert tolerant.item() == pytest.approx(perfect(world), abs=1e-3)
    assert linear_only.item() < perfect(world) - 0.1
    # the model's own likelihood, per value
    rendered = SceneRenderer(world, shapes).render_scenes([scene])
    expected = gaussian_log_likelihood(toned, rendered, world.pixel_sigma) / toned[0].numel()
    assert linear_only.item() == pytest.approx(expected.item(), abs=1e-5)


def test_broken_calibrations_are_refused():
    with pytest.raises(ValueError, match=r"unknown fit calibration keys \['extra'\]"):
        Calibration.from_dict({"extra": 1})
    with pytest.raises(ValueError, match="at least one valid scene"):
        Calibration.from_scores([], 0.01, (1.0,), 0, "x")
    with pytest.raises(ValueError, match="flag_rate must be in"):
        Calibration.from_scores([1.0], 1.5, (1.0,), 0, "x")


def _objects(scene: Scene):
    from air3d.model import InferredObject

    for obj in scene.objects:
        yield InferredObject(obj.shape, obj.position, obj.yaw_deg, 1.0, {obj.shape: 1.0})


def test_calibrate_command_refuses_bad_arguments(tiny_checkpoint, capsys):
    from air3d.cli import main

    assert main(["calibrate", "--checkpoint", str(tiny_checkpoint), "--n", "0"]) == 2
    assert "--n must be >= 1, got 0" in capsys.readouterr().err
    assert main(["calibrate", "--checkpoint", str(tiny_checkpoint), "--flag-rate", "1"]) == 2
    assert "--flag-rate must be in [0, 1), got 1.0" in capsys.readouterr().err
    assert load_checkpoint(tiny_checkpoint).get(CHECKPOINT_KEY) is None  # left as it was
