"""`air3d infer`: one line per image, error lines, resumable without duplicates or gaps."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from batch_helpers import cli, read_lines, subprocess_env
from PIL import Image

from air3d.batch import find_images, merge_shards
from air3d.clevr_format import read_clevr
from air3d.data import make_dataset
from air3d.model import Predictor
from air3d.renderer import open_world

EXAMPLES = Path(__file__).resolve().parents[2] / "service" / "static" / "examples"

SOURCES = [f"images/{i:06d}.png" for i in range(6)]


@pytest.fixture
def workdir(images, monkeypatch):
    """Runs the test from the folder holding images/, so sources are "images/..."."""
    monkeypatch.chdir(images.parent)
    return images.parent


def test_find_images_recurses_filters_by_suffix_and_sorts(tmp_path):
    for name in ("b/z.PNG", "b/a.jpeg", "a.jpg", "b/c/d.png", "notes.txt", "b/skip.gif"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "x.bin").write_bytes(b"")
    found = find_images([tmp_path / "b", tmp_path / "a.jpg", tmp_path / "x.bin", tmp_path / "b"])
    relative = [os.path.relpath(p, tmp_path) for p in found]
    assert relative == ["a.jpg", "b/a.jpeg", "b/c/d.png", "b/z.PNG", "x.bin"]
    with pytest.raises(ValueError, match="missing: no such file or directory"):
        find_images([tmp_path / "missing"])


def test_one_line_per_image_with_the_model_and_the_infer_fields(workdir, tiny_checkpoint):
    assert cli("infer", "images", "--out", "inf.jsonl", "--checkpoint", tiny_checkpoint,
               "--batch-size", 4, "--device", "cpu", "--no-progress") == 0  # fmt: skip
    lines = read_lines(workdir / "inf.jsonl")
    assert [line["source"] for line in lines] == SOURCES
    predictor = Predictor.from_checkpoint(tiny_checkpoint)
    for line in lines:
        assert set(line) == {"source", "objects", "count", "fit", "model"}
        assert set(line["fit"]) == {
            "score",
            "log_likelihood_per_pixel",
            "not_a_scene",
            "calibrated",
        }
        assert line["fit"]["calibrated"] is False  # the tiny checkpoint is not calibrated
        assert line["count"] == len(line["objects"])
        assert line["model"] == {
            "name": predictor.name,
            "checkpoint_hash": predictor.checkpoint_hash,
        }
        for obj in line["objects"]:
            assert set(obj) == {
                "shape", "position", "yaw_deg", "presence", "confidence", "shape_probs"
            }  # fmt: skip
    # the same answer as the predictor gives for the image on its own
    from air3d.images import read_image

    alone = predictor.infer(read_image("images/000002.png", predictor.image_size)[None])[0]
    assert lines[2]["count"] == alone.to_json()["count"]
    assert lines[2]["fit"]["log_likelihood_per_pixel"] == pytest.approx(
        alone.fit.log_likelihood_per_pixel, abs=1e-4
    )
    for got, want in zip(lines[2]["objects"], alone.to_json()["objects"], strict=True):
        assert got["shape"] == want["shape"]
        assert got["position"] == pytest.approx(want["position"], abs=1e-4)


def test_unreadable_images_become_error_lines_and_the_run_goes_on(workdir, tiny_checkpoint):
    (workdir / "images" / "000001.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (workdir / "images" / "empty.jpg").write_bytes(b"")
    assert cli("infer", "images", "--out", "inf.jsonl", "--checkpoint", tiny_checkpoint,
               "--no-progress") == 0  # fmt: skip
    by_source = {line["source"]: line for line in read_lines(workdir / "inf.jsonl")}
    assert sorted(by_source) == sorted([*SOURCES, "images/empty.jpg"])
    assert set(by_source["images/000001.png"]) == {"source", "error"}
    assert "images/000001.png" in by_source["images/000001.png"]["error"]
    assert "empty file" in by_source["images/empty.jpg"]["error"]
    assert "objects" in by_source["images/000000.png"]


def test_a_rerun_skips_what_is_done_and_appends_only_new_images(workdir, tiny_checkpoint):
    args = ("--out", "inf.jsonl", "--checkpoint", tiny_checkpoint, "--no-progress")
    assert cli("infer", "images/000000.png", "images/000003.png", *args) == 0
    first = (workdir / "inf.jsonl").read_text()
    assert cli("infer", "images", *args) == 0
    text = (workdir / "inf.jsonl").read_text()
    assert text.startswith(first)  # appended, earlier lines untouched
    sources = [line["source"] for line in read_lines(workdir / "inf.jsonl")]
    assert sorted(sources) == SOURCES and len(sources) == len(SOURCES)
    assert cli("infer", "images", *args) == 0
    assert (workdir / "inf.jsonl").read_text() == text  # nothing left to do


def test_a_crash_loses_at_most_the_batch_in_flight(workdir, tiny_checkpoint, monkeypatch):
    calls = []
    real_infer = Predictor.infer

    def crash_on_third_batch(self, images):
        calls.append(len(images))
        if len(calls) == 3:
            raise KeyboardInterrupt  # as if the process were stopped mid-batch
        return real_infer(self, images)

    monkeypatch.setattr(Predictor, "infer", crash_on_third_batch)
    args = ("infer", "images", "--out", "inf.jsonl", "--checkpoint", tiny_checkpoint,
            "--no-progress")  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        cli(*args, "--batch-size", 2)
    assert [line["source"] for line in read_lines(workdir / "inf.jsonl")] == SOURCES[:4]
    monkeypatch.setattr(Predictor, "infer", real_infer)
    assert cli(*args, "--batch-size", 2) == 0
    assert [line["source"] for line in read_lines(workdir / "inf.jsonl")] == SOURCES


def test_a_line_cut_mid_write_is_redone_on_resume(workdir, tiny_checkpoint):
    args = (
        "infer",
        "images",
        "--out",
        "inf.jsonl",
        "--checkpoint",
        tiny_checkpoint,
        "--no-progress",
    )
    assert cli(*args) == 0
    path = workdir / "inf.jsonl"
    full = path.read_text()
    cut = full.index("images/000004.png") + 20  # inside line 5
    path.write_text(full[:cut])
    assert cli(*args) == 0
    lines = read_lines(path)  # every line decodes: the partial one is gone
    assert sorted(line["source"] for line in lines) == SOURCES
    assert len(lines) == len(SOURCES)


def test_a_killed_process_resumes_without_duplicates_or_gaps(images, tmp_path, tiny_checkpoint):
    for i in range(60):  # enough work that the kill lands mid-run
        shutil.copy(images / f"{i % 6:06d}.png", images / f"copy{i:03d}.png")
    out = tmp_path / "inf.jsonl"
    command = [sys.executable, "-m", "air3d.cli", "infer", str(images), "--out", str(out),
               "--checkpoint", str(tiny_checkpoint), "--batch-size", "1",
               "--no-progress"]  # fmt: skip
    process = subprocess.Popen(command, env=subprocess_env(), stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if out.exists() and out.read_text().count("\n") >= 3:
            break
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    killed = out.read_text()
    done_before = killed.count("\n")
    assert 3 <= done_before < 66, "the kill should land mid-run"
    result = subprocess.run(command, env=subprocess_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert text.startswith(killed[: killed.rindex("\n") + 1])  # complete lines kept
    sources = [line["source"] for line in read_lines(out)]
    assert sorted(sources) == find_images([images])  # every image exactly once
    assert len(sources) == 66


def test_another_checkpoint_refuses_to_append(workdir, tiny_checkpoint, capsys):
    path = workdir / "inf.jsonl"
    path.write_text(
        json.dumps({"source": "images/000000.png", "objects": [], "count": 0,
                    "model": {"name": "old", "checkpoint_hash": "0123456789ab"}}) + "\n"
    )  # fmt: skip
    before = path.read_text()
    assert cli("infer", "images", "--out", path, "--checkpoint", tiny_checkpoint) == 2
    assert "inf.jsonl:1: made by checkpoint 0123456789ab" in capsys.readouterr().err
    assert path.read_text() == before


def test_merge_folds_shards_into_one_sorted_output(tmp_path):
    out = tmp_path / "inf.jsonl"
    out.write_text('{"source": "c", "count": 0}\n')
    (tmp_path / "inf.jsonl.rank0-of-2").write_text('{"source": "a"}\n{"source": "c", "x": 1}\n')
    (tmp_path / "inf.jsonl.rank1-of-2").write_text('{"source": "b"}\n{"source": "d", "cut')
    (tmp_path / "inf.jsonl.rank0-of-3").write_text('{"source": "e"}\n')
    assert cli("infer", "--merge", "--out", out) == 0
    assert read_lines(out) == [
        {"source": "a"},
        {"source": "b"},
        {"source": "c", "count": 0},  # the output's own line wins over a shard's repeat
        {"source": "e"},
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inf.jsonl"]
    assert merge_shards(out) == 0


def test_no_paths_and_no_images_are_clear_errors(tmp_path, tiny_checkpoint, capsys):
    (tmp_path / "empty").mkdir()
    assert cli("infer", "--out", tmp_path / "o.jsonl") == 2
    assert "give at least one image or folder" in capsys.readouterr().err
    assert cli("infer", tmp_path / "empty", "--out", tmp_path / "o.jsonl") == 2
    assert "no .png/.jpg/.jpeg images in" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()


def test_format_clevr_writes_a_clevr_scenes_file(workdir, tiny_checkpoint, world, shapes):
    (workdir / "images" / "broken.png").write_bytes(b"not an image")
    assert cli("infer", "images", "--out", "pred.json", "--format", "clevr", "--checkpoint",
               tiny_checkpoint, "--device", "cpu", "--no-progress") == 0  # fmt: skip
    lines = read_lines(workdir / "pred.json.lines.jsonl")
    assert len(lines) == 7 and sum("error" in line for line in lines) == 1
    document = json.loads((workdir / "pred.json").read_text())
    scenes = document["scenes"]
    assert [s["image_filename"] for s in scenes] == SOURCES  # the unreadable one left out
    assert document["info"]["model"]["checkpoint_hash"] == lines[0]["model"]["checkpoint_hash"]
    by_source = {line["source"]: line for line in lines}
    for scene in scenes:
        objects = by_source[scene["image_filename"]]["objects"]
        assert [o["shape"] for o in scene["objects"]] == [o["shape"] for o in objects]
        for clevr, ours in zip(scene["objects"], objects, strict=True):
            x, y, z = ours["position"]
            assert clevr["3d_coords"] == [x, -z, y] and clevr["presence"] == ours["presence"]
            assert clevr["confidence"] == ours["confidence"]
    # and it reads back into the same scenes
    back = dict(read_clevr(workdir / "pred.json", world, shapes))
    assert len(back) == 6


def test_refine_flag_refines_and_is_bounded(workdir, tiny_checkpoint, capsys):
    assert cli("infer", "images/000001.png", "--out", "r.jsonl", "--checkpoint", tiny_checkpoint,
               "--refine", 2, "--no-progress") == 0  # fmt: skip
    [line] = read_lines(workdir / "r.jsonl")
    from air3d.images import read_image

    predictor = Predictor.from_checkpoint(tiny_checkpoint, refine=2)
    [refined] = predictor.infer(read_image("images/000001.png", predictor.image_size)[None])
    assert line["count"] == refined.to_json()["count"]
    for got, want in zip(line["objects"], refined.to_json()["objects"], strict=True):
        assert got["shape"] == want["shape"]
        assert got["position"] == pytest.approx(want["position"], abs=1e-4)
    assert cli("infer", "images", "--out", "bad.jsonl", "--checkpoint", tiny_checkpoint,
               "--refine", 51) == 2  # fmt: skip
    assert "refine: 51 steps; must be an integer in 0..50" in capsys.readouterr().err


def test_a_calibrated_checkpoint_flags_a_blank_image_in_the_lines_and_summary(
    images, calibrated_checkpoint, tmp_path, capsys
):
    from PIL import Image

    Image.new("RGB", (64, 64), (250, 250, 250)).save(images / "blank.png")
    out = tmp_path / "flags.jsonl"
    assert cli("infer", images, "--out", out, "--checkpoint", calibrated_checkpoint,
               "--no-progress") == 0  # fmt: skip
    lines = {os.path.basename(line["source"]): line for line in read_lines(out)}
    assert lines["blank.png"]["fit"]["not_a_scene"] is True
    assert all(line["fit"]["calibrated"] for line in lines.values())
    flagged = sum(line["fit"]["not_a_scene"] for line in lines.values())
    assert f"7 inferred ({flagged} flagged not a scene)" in capsys.readouterr().err


def test_max_objects_caps_the_answers_and_is_bounded(workdir, capsys):
    """The shipped q finds the 3 objects of an example; --max-objects caps the answer."""
    shutil.copy(EXAMPLES / "2.png", workdir / "three.png")
    assert cli("infer", "three.png", "--out", "all.jsonl", "--no-progress") == 0
    assert cli("infer", "three.png", "--out", "two.jsonl", "--max-objects", 2,
               "--no-progress") == 0  # fmt: skip
    [everything], [capped] = read_lines(workdir / "all.jsonl"), read_lines(workdir / "two.jsonl")
    assert (everything["count"], capped["count"]) == (3, 2)
    assert cli("infer", "three.png", "--out", "bad.jsonl", "--max-objects", 0) == 2
    assert "max_objects must be at least 1" in capsys.readouterr().err


def test_format_clevr_writes_the_attributes_of_a_clevr_world(
    tmp_path, tiny_clevr_world, tiny_clevr_checkpoint, monkeypatch
):
    world, kinds = open_world(tiny_clevr_world)
    make_dataset(tmp_path, 3, seed=5, world=world, shapes=kinds, progress=False)
    assert Image.open(tmp_path / "images" / "000000.png").size == (32, 24)  # the frame's rows
    monkeypatch.chdir(tmp_path)
    assert cli("infer", "images", "--out", "pred.json", "--format", "clevr", "--checkpoint",
               tiny_clevr_checkpoint, "--device", "cpu", "--no-progress") == 0  # fmt: skip
    scenes = json.loads((tmp_path / "pred.json").read_text())["scenes"]
    objects = [obj for scene in scenes for obj in scene["objects"]]
    assert len(scenes) == 3 and objects  # the tiny model answers something
    for obj in objects:
        assert obj["color"] in world.attribute("color").values
        assert obj["size"] in ("large", "small") and obj["material"] in ("rubber", "metal")
        col, row, _ = obj["pixel_coords"]  # in CLEVR's 320 x 240 frame, not the 32-pixel canvas
        assert -320 < col < 640 and -240 < row < 480
    back = read_clevr(tmp_path / "pred.json", world, kinds)
    assert [len(scene.objects) for _, scene in back] == [len(s["objects"]) for s in scenes]
    assert {o.attributes for _, s in back for o in s.objects} <= {k.attributes for k in kinds.specs}
