"""evaluate() with stand-in predictors: the report's numbers, JSON, Markdown and compare."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import torch

from air3d.data import Dataset
from air3d.evaluation import compare, evaluate, load_report, to_markdown, write_report
from air3d.evaluation.report import reconstruction_mse
from air3d.evaluation.targets import (
    Target,
    check_targets,
    load_targets,
    lookup,
    parse_targets,
    world_targets,
)
from air3d.renderer import Scene, SceneObject, SceneRenderer, ShapeLibrary, World, open_world
from air3d.renderer.worlds import world_files

SCENES = [
    Scene(),
    Scene((SceneObject("cube", (0.2, 0.3, -0.4), 30.0),)),
    Scene(
        (SceneObject("sphere", (-0.6, 0.35, 0.5), 0.0), SceneObject("cone", (0.7, 0.3, 0.6), 0.0))
    ),
]


@dataclass(frozen=True)
class Answer:
    scene_: Scene

    def scene(self) -> Scene:
        return self.scene_


class LookupPredictor:
    """Answers each image with a fixed scene, found by comparing it with known images."""

    name = "lookup"
    checkpoint_hash = "abc123"

    def __init__(self, world: World, shapes: ShapeLibrary, images: torch.Tensor, answers):
        self.world, self.shapes = world, shapes
        self.images, self.answers = images, list(answers)
        self.calls: list[int] = []

    def infer(self, images: torch.Tensor) -> list[Answer]:
        self.calls.append(len(images))
        out = []
        for image in images:
            index = int((self.images - image).abs().flatten(1).sum(1).argmin())
            out.append(Answer(self.answers[index]))
        return out


@pytest.fixture(scope="module")
def dataset(world: World, shapes: ShapeLibrary) -> Dataset:
    with torch.no_grad():
        images = SceneRenderer(world, shapes).render_scenes(SCENES)
    return Dataset(images, list(SCENES), [Path(f"{i}.png") for i in range(len(SCENES))])


def test_an_oracle_meets_every_accuracy_target(world, shapes, dataset: Dataset) -> None:
    oracle = LookupPredictor(world, shapes, dataset.images, SCENES)
    report = evaluate(oracle, dataset, batch_size=2, timing_calls=5, info={"data": "hand"})
    m = report["metrics"]
    assert m["count_accuracy"] == 1.0 and m["shape_accuracy"] == 1.0
    assert m["position_error_mean"] == 0.0 and m["rotation_error_median_deg"] == 0.0
    assert m["rotation_objects"] == 1 and m["rotation_excluded_objects"] == 2
    assert report["reconstruction_mse"] == pytest.approx(0.0, abs=1e-10)
    assert report["images"] == 3 and report["data"] == "hand"
    assert report["name"] == "lookup" and report["checkpoint_hash"] == "abc123"
    passed = [t["passed"] for t in report["targets"]]
    assert passed[:4] == [True] * 4  # the tabletop's accuracy targets (timing: any machine)
    # Main pass in batches of 2 (2 + 1), then 5 single-image calls after one warm-up call.
    assert oracle.calls == [1, 2, 1] + [1] * 5
    assert report["timing"]["batch1_calls"] == 5 and report["timing"]["batch_size"] == 2
    assert report["predicted_scenes"][1] == SCENES[1].to_json()
    assert report["ap"]["attributes"] == ["shape"]
    assert report["ap"]["values"] == dict.fromkeys(
        ["inf", "1", "0.5", "0.25", "0.125", "0.0625"], 1.0
    )
    markdown = to_markdown(report)
    assert "## Set-prediction average precision" in markdown
    assert "| model | AP inf | AP 1 | AP 0.5 | AP 0.25 | AP 0.125 | AP 0.0625 |" in markdown
    assert "| **lookup** | 100.0 | 100.0 | 100.0 | 100.0 | 100.0 | 100.0 |" in markdown


@dataclass(frozen=True)
class Scored:
    """One predicted object with a presence, as the model's InferredObject has."""

    presence: float


@dataclass(frozen=True)
class ScoredAnswer(Answer):
    objects: tuple[Scored, ...]


def test_average_precision_ranks_by_presence(world, shapes, dataset: Dataset) -> None:
    # Image 2's answer adds a spurious cube. Ranked below both true objects it costs
    # nothing (AP 1); ranked above them (presence 0.99) it is the first of hits [F, T, T, T]
    # against 3 true objects: precision 3/4 at full recall, AP 0.75.
    extra = SceneObject("cube", (-0.9, 0.3, -0.9), 0.0)
    answers = [*SCENES[:2], Scene((*SCENES[2].objects, extra))]

    class Scoring(LookupPredictor):
        def __init__(self, presence_of_extra):
            super().__init__(world, shapes, dataset.images, answers)
            self.extra = presence_of_extra

        def infer(self, images):
            scored = []
            for answer in super().infer(images):
                presences = [0.9] * len(answer.scene().objects)
                if len(presences) == 3:
                    presences[-1] = self.extra
                scored.append(ScoredAnswer(answer.scene_, tuple(map(Scored, presences))))
            return scored

    low = evaluate(Scoring(0.6), dataset, batch_size=3, timing_calls=0)["ap"]["values"]
    high = evaluate(Scoring(0.99), dataset, batch_size=3, timing_calls=0)
    assert low["inf"] == pytest.approx(1.0)
    assert high["ap"]["values"]["inf"] == pytest.approx(0.75)
    assert "| 75.0 |" in to_markdown(high)
    assert "values_by_presence" not in high["ap"]  # no confidences but the presences


@dataclass(frozen=True)
class Confident(Scored):
    """An object with a confidence apart from its presence, as the Predictor's."""

    confidence: float


def test_average_precision_ranks_by_confidence_and_also_reports_presence(
    world, shapes, dataset: Dataset
) -> None:
    # As above, the spurious cube's presence (0.99) ranks it above the true objects (0.9);
    # its confidence (0.5) ranks it below them.
    extra = SceneObject("cube", (-0.9, 0.3, -0.9), 0.0)
    answers = [*SCENES[:2], Scene((*SCENES[2].objects, extra))]

    class Confidences(LookupPredictor):
        def infer(self, images):
            scored = []
            for answer in super().infer(images):
                objects = [Confident(0.9, 0.8) for _ in answer.scene().objects]
                if len(objects) == 3:
                    objects[-1] = Confident(0.99, 0.5)
                scored.append(ScoredAnswer(answer.scene_, tuple(objects)))
            return scored

    predictor = Confidences(world, shapes, dataset.images, answers)
    report = evaluate(predictor, dataset, batch_size=3, timing_calls=0)
    assert report["ap"]["values"]["inf"] == pytest.approx(1.0)
    assert report["ap"]["values_by_presence"]["inf"] == pytest.approx(0.75)
    markdown = to_markdown(report)
    assert "| **lookup** | 100.0 |" in markdown
    assert "| lookup, ranked by presence alone | 75.0 |" in markdown


def test_average_precision_thresholds_are_a_parameter(world, shapes, dataset) -> None:
    # every prediction 0.2 off in x: a hit within 0.25, a miss within 0.125
    moved = [
        Scene(
            tuple(
                SceneObject(o.shape, (o.position[0] + 0.2, *o.position[1:]), o.yaw_deg)
                for o in scene.objects
            )
        )
        for scene in SCENES
    ]
    oracle = LookupPredictor(world, shapes, dataset.images, moved)
    ap = evaluate(oracle, dataset, 3, 0, ap_thresholds=(0.25, 0.125))["ap"]["values"]
    assert ap == {"0.25": 1.0, "0.125": 0.0}


def test_a_predictor_that_sees_nothing_fails_and_is_reported(world, shapes, dataset) -> None:
    blind = LookupPredictor(world, shapes, dataset.images, [Scene()] * 3)
    report = evaluate(blind, dataset, batch_size=8, timing_calls=0)
    assert set(report["ap"]["values"].values()) == {0.0}
    m = report["metrics"]
    assert m["count_accuracy"] == pytest.approx(1 / 3)
    assert m["under_counted"] == 2 and m["over_counted"] == 0
    assert m["shape_accuracy"] is None and m["missed_objects"] == 3
    assert report["reconstruction_mse"] > 1e-3  # the objects are not drawn
    assert report["timing"]["batch1_ms_per_image"] is None
    by_label = {t["label"]: t for t in report["targets"]}
    assert by_label["count accuracy"]["passed"] is False
    assert by_label["shape accuracy"]["passed"] is None  # no data: neither pass nor fail
    markdown = to_markdown(report)
    assert "## Targets of world `tabletop`" in markdown
    assert "| count accuracy | 33.3% | ≥ 98.0% | **FAIL** |" in markdown
    assert "| shape accuracy | n/a | ≥ 95.0% | n/a |" in markdown


def test_batch_1_time_is_the_median_of_single_calls(world, shapes, dataset) -> None:
    class Slow(LookupPredictor):
        def infer(self, images):
            time.sleep(0.02 * len(images))
            return super().infer(images)

    slow = Slow(world, shapes, dataset.images, SCENES)
    timing = evaluate(slow, dataset, batch_size=3, timing_calls=3)["timing"]
    assert 19.0 <= timing["batch1_ms_per_image"] < 200.0
    assert 19.0 <= timing["batched_ms_per_image"] < 200.0
    # With batch size 1 the main pass itself gives the batch-1 figure; no extra calls.
    slow.calls.clear()
    timing = evaluate(slow, dataset, batch_size=1, timing_calls=50)["timing"]
    assert slow.calls == [1] * 4 and timing["batch1_calls"] == 3


def test_images_of_the_wrong_size_are_refused(world, shapes, dataset) -> None:
    small = Dataset(dataset.images[:, :, :32, :32], dataset.scenes, dataset.paths)
    with pytest.raises(ValueError, match=r"data set images are \(3, 32, 32\)"):
        evaluate(LookupPredictor(world, shapes, small.images, SCENES), small)


def test_reconstruction_error_is_the_mean_squared_pixel_error(world, shapes, dataset) -> None:
    grey = torch.full_like(dataset.images, 0.5)
    with torch.no_grad():
        rendered = SceneRenderer(world, shapes).render_scenes(SCENES)
    expected = (rendered - grey).pow(2).mean().item()
    assert reconstruction_mse(grey, SCENES, world, shapes, batch_size=2) == pytest.approx(expected)


def test_report_files_round_trip_and_compare(tmp_path, world, shapes, dataset) -> None:
    good = evaluate(LookupPredictor(world, shapes, dataset.images, SCENES), dataset, 3, 2)
    bad = evaluate(LookupPredictor(world, shapes, dataset.images, [Scene()] * 3), dataset, 3, 2)
    json_path, md_path = write_report(good, tmp_path / "sub" / "good")
    assert json_path.name == "good.json" and md_path.name == "good.md"
    assert load_report(json_path) == json.loads(json.dumps(good))
    assert md_path.read_text().startswith("# Evaluation: lookup")
    table = compare([good, bad], ["AIR", "blind"])
    lines = table.splitlines()
    assert lines[0] == "| metric | AIR | blind | target |"
    count_row = next(line for line in lines if line.startswith("| count accuracy |"))
    assert count_row == "| count accuracy | 100.0% | 33.3% ✗ | ≥ 98.0% |"
    with pytest.raises(ValueError, match="1 labels for 2 reports"):
        compare([good, bad], ["AIR"])


def test_load_report_refuses_other_json(tmp_path) -> None:
    (tmp_path / "x.json").write_text('{"hello": 1}')
    with pytest.raises(ValueError, match="not an evaluation report"):
        load_report(tmp_path / "x.json")


def test_targets_compare_in_the_right_direction() -> None:
    report = {
        "metrics": {
            "count_accuracy": 0.98,
            "shape_accuracy": 0.949,
            "position_error_mean_pct": 2.4,
            "rotation_error_median_deg": 10.5,
        },
        "timing": {"batch1_ms_per_image": 4.0},
    }
    tabletop = load_targets(world_files("tabletop")[0])
    assert [t["passed"] for t in check_targets(report, tabletop)] == [
        True,
        False,
        True,
        False,
        True,
    ]


def test_each_world_has_its_own_targets(world, tiny_clevr_world) -> None:
    tabletop = world_targets(world)
    assert [(t.label, t.threshold) for t in tabletop][0] == ("count accuracy", 0.98)
    clevr = world_targets(world, "clevr")
    assert ("count accuracy", 0.99) in [(t.label, t.threshold) for t in clevr]
    assert {t.key for t in clevr} >= {"ap.values.0.125", "metrics.attribute_accuracy.material"}
    assert next(t for t in clevr if t.key == "timing.batch1_ms_per_image").threshold == 15.0
    # a copy of the folder carries them; an unknown world without a folder has none
    assert world_targets(world, tiny_clevr_world) == clevr
    assert world_targets(replace(world, name="elsewhere")) == ()
    # checkpoints from before worlds had names were the tabletop's
    assert world_targets(replace(world, name="custom")) == tabletop


def test_targets_for_one_renderer_apply_to_its_data_only() -> None:
    clevr = load_targets(world_files("clevr")[0])
    report = {
        "metrics": {"count_accuracy": 0.992},
        "ap": {"values": {"inf": 1.0, "0.125": 0.93}},
    }
    blender = {
        t["label"]: t["passed"] for t in check_targets({**report, "renderer": "blender"}, clevr)
    }
    ours = {
        t["label"]: t["passed"] for t in check_targets({**report, "renderer": "pytorch3d"}, clevr)
    }
    assert blender["count accuracy"] and blender["AP 0.125"] and blender["AP inf"]
    assert "count accuracy (our renders)" not in blender
    assert ours["count accuracy (our renders)"] is False and ours["AP 0.125 (our renders)"] is False
    assert ours["color accuracy"] is None  # no data: neither pass nor fail
    unknown = check_targets(report, clevr)  # no meta.json (CLEVR's own images): the general ones
    assert len(unknown) == len(blender)


def test_lookup_reads_keys_that_hold_dots() -> None:
    report = {"ap": {"values": {"0.125": 0.5, "0.0625": 0.25, "inf": 1.0}}, "a": {"b": 2}}
    assert lookup(report, "ap.values.0.125") == 0.5 and lookup(report, "ap.values.0.0625") == 0.25
    assert lookup(report, "a.b") == 2
    assert lookup(report, "ap.values.0.5") is None and lookup(report, "a.b.c") is None


def test_a_world_without_targets_says_so(world, shapes, dataset) -> None:
    oracle = LookupPredictor(world, shapes, dataset.images, SCENES)
    report = evaluate(oracle, dataset, 3, 0, targets=())
    assert report["targets"] == []
    assert "World `tabletop` declares no targets" in to_markdown(report)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"key": "x"}, r"targets: must be a list"),
        ([{"key": "x", "label": "x", "op": "==", "threshold": 1, "unit": ""}], r"targets\[0\]\.op"),
        ([{"key": "x", "label": "x", "op": ">=", "threshold": 1, "unit": "m"}], r"\.unit: 'm'"),
        ([{"key": "x", "op": ">=", "threshold": 1, "unit": ""}], r"targets\[0\]: .*label"),
    ],
)
def test_bad_targets_are_refused_by_name(section, message) -> None:
    with pytest.raises(ValueError, match=message):
        parse_targets(section)


def test_a_target_compares_in_its_direction() -> None:
    most = Target("timing.x", "time", "<=", 5.0, "ms")
    assert most.passed(5.0) and not most.passed(5.1) and most.passed(None) is None


def test_a_clevr_world_reports_attributes_centres_and_published_ap(tiny_clevr_world) -> None:
    world, kinds = open_world(tiny_clevr_world)

    def obj(shape, x, z, **attributes):
        spec = kinds.spec(shape, attributes)
        return SceneObject(shape, (x, spec.height / 2, z), 10.0, spec.attributes)

    red = dict(color="red", size="large", material="metal")
    truth = [
        Scene(
            (obj("cube", 1.0, -1.0, **red), obj("sphere", -1.5, 1.0, **{**red, "size": "small"}))
        ),
        Scene((obj("cylinder", 0.0, 2.0, color="cyan", size="large", material="rubber"),)),
    ]
    with torch.no_grad():
        images = SceneRenderer(world, kinds).render_scenes(truth)
    dataset = Dataset(images, truth, [Path("0.png"), Path("1.png")])
    report = evaluate(LookupPredictor(world, kinds, images, truth), dataset, 2, 0)
    m = report["metrics"]
    assert report["world"] == "tinyclevr"
    assert m["attribute_accuracy"] == {"color": 1.0, "size": 1.0, "material": 1.0}
    assert m["all_attributes_accuracy"] == 1.0 and m["center_error_mean"] == 0.0
    assert report["ap"]["attributes"] == ["shape", "color", "size", "material"]
    assert set(report["ap"]["values"].values()) == {1.0}
    # the cylinder answered blue and small: colour and size wrong for 1 of 3, and its
    # centre 0.35 lower (half of a large cylinder's height minus half of a small one's)
    wrong = [
        truth[0],
        Scene((obj("cylinder", 0.0, 2.0, color="blue", size="small", material="rubber"),)),
    ]
    report = evaluate(LookupPredictor(world, kinds, images, wrong), dataset, 2, 0)
    m = report["metrics"]
    assert m["attribute_accuracy"] == pytest.approx(
        {"color": 2 / 3, "size": 2 / 3, "material": 1.0}
    )
    assert m["shape_accuracy"] == 1.0 and m["all_attributes_accuracy"] == pytest.approx(2 / 3)
    high, low = (
        kinds.spec("cylinder", {**red, "size": "large"}),
        kinds.spec("cylinder", {**red, "size": "small"}),
    )
    assert m["center_error_mean"] == pytest.approx((high.height - low.height) / 2 / 3)
    assert m["position_error_mean"] == 0.0
    assert report["ap"]["values"]["inf"] == pytest.approx(2 / 3)  # hits [T, T, F] of 3
    markdown = to_markdown(report)
    assert "| color accuracy (matched objects) | 66.7% |" in markdown
    assert "Slot Attention" not in markdown  # published rows belong to the clevr world only
    markdown = to_markdown({**report, "world": "clevr"})
    assert "| **lookup** | 66.7 |" in markdown
    assert (
        "| Slot Attention, supervised (Locatello et al. 2020) "
        "| 94.3 | 86.7 | 56.0 | 10.8 | 0.9 | — |" in markdown
    )
    assert "| iDSPN 128x128, supervised (Zhang et al. 2022) | 98.8 |" in markdown
