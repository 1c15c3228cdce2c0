"""`air3d rerender`: renders, comparison sheets, index.html, confinement, bad lines, resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from batch_helpers import cli, read_lines
from PIL import Image

from air3d.batch.paths import assign_stems, output_stem
from air3d.batch.rerender import load_items
from air3d.images import band_color, read_image, to_pil
from air3d.renderer import Scene, SceneRenderer, open_world

CUBE = {"shape": "cube", "position": [0.3, 0.25, -0.2], "yaw_deg": 30.0}


def write_lines(path: Path, lines: list) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def pngs(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*.png"))


def test_make_data_infer_rerender_compare_end_to_end(dataset, tiny_checkpoint, tmp_path,
                                                     monkeypatch, world, shapes):  # fmt: skip
    monkeypatch.chdir(dataset)
    out = tmp_path / "inf.jsonl"
    assert cli("infer", "images", "--out", out, "--checkpoint", tiny_checkpoint,
               "--no-progress") == 0  # fmt: skip
    assert cli("rerender", out, "--out", tmp_path / "rr", "--compare", "--batch-size", 4,
               "--scale", 3, "--device", "cpu", "--no-progress") == 0  # fmt: skip
    lines = read_lines(out)
    names = {line["source"]: output_stem(line["source"]) + ".png" for line in lines}
    assert pngs(tmp_path / "rr") == sorted(
        [f"renders/{n}" for n in names.values()] + [f"sheets/{n}" for n in names.values()]
    )
    renderer = SceneRenderer(world, shapes)
    index = (tmp_path / "rr" / "index.html").read_text()
    for line in lines:
        name = names[line["source"]]
        # the render is the line's scene drawn crisp
        want = renderer.render_scenes([Scene.from_json(line, world, shapes)])[0]
        got = read_image(tmp_path / "rr" / "renders" / name, world.image_size)
        assert (got - want).abs().max() <= 1 / 255 + 1e-6
        # the sheet holds input | reconstruction | |difference|, each upscaled 3x
        sheet = np.asarray(Image.open(tmp_path / "rr" / "sheets" / name), dtype=np.int16)
        side = world.image_size * 3
        panels = [sheet[22 : 22 + side, 8 + k * (side + 8) : 8 + k * (side + 8) + side]
                  for k in range(3)]  # fmt: skip
        source = np.asarray(to_pil(read_image(line["source"], world.image_size)), dtype=np.int16)
        render = np.asarray(to_pil(want), dtype=np.int16)
        assert np.array_equal(panels[0][::3, ::3], source)
        assert np.array_equal(panels[1][::3, ::3], render)
        assert np.abs(panels[2][::3, ::3] - np.abs(source - render)).max() <= 1
        assert f'src="sheets/{name}"' in index and f"<code>{line['source']}</code>" in index
    assert f"{len(lines)} images; 0 lines skipped" in index


def test_outputs_stay_inside_out_whatever_the_sources_say(tmp_path, world, shapes):
    sources = ["../../escape.png", "/etc/passwd", "a/b/../../../up.png", "..", "",
               "C:\\Windows\\x.png", "dir1/same.png", "dir2/same.png", ".hidden",
               "we<ird> na'me\".png", "dir1/same.png"]  # fmt: skip
    lines = [{"source": s, "objects": [CUBE]} for s in sources]
    inferences = write_lines(tmp_path / "inf.jsonl", lines)
    out = tmp_path / "deep" / "out"
    assert cli("rerender", inferences, "--out", out, "--no-progress") == 0
    written = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert all(p.is_relative_to(out) or p == inferences for p in written)
    renders = pngs(out / "renders")
    assert len(renders) == len(sources) - 1  # the repeated source is rendered once
    assert all("/" not in r and not r.startswith(".") for r in renders)
    assert output_stem("dir1/same.png") != output_stem("dir2/same.png")
    assert output_stem("dir1/same.png").startswith("same-")
    assert output_stem("../../escape.png").startswith("escape-")
    # the same source always gets the same name; a clash of stems is disambiguated
    assert assign_stems(["x", "y", "x"]) == [output_stem("x"), output_stem("y"), output_stem("x")]


def test_stem_clashes_are_disambiguated_in_line_order(monkeypatch):
    monkeypatch.setattr("air3d.batch.paths.output_stem", lambda source: "same")
    assert assign_stems(["a", "b", "a", "c"]) == ["same", "same-2", "same", "same-3"]


def test_bad_lines_are_reported_and_skipped_with_a_count(tmp_path, capsys):
    inferences = write_lines(tmp_path / "inf.jsonl", [
        {"source": "ok1.png", "objects": [CUBE]},
        "{not json",
        {"source": "err.png", "error": "err.png: not an image"},
        {"source": "far.png", "objects": [{**CUBE, "position": [9.0, 0.0, 0.0]}]},
        {"source": "cone.png", "objects": [{**CUBE, "shape": "torus"}]},
        {"objects": [CUBE]},
        [1, 2],
        {"source": "ok1.png", "objects": []},
        {"source": "ok2.png", "objects": []},
    ])  # fmt: skip
    with inferences.open("a") as file:
        file.write('{"source": "cut.png", "obj')  # a line still being written: not an error
    assert cli("rerender", inferences, "--out", tmp_path / "rr", "--compare",
               "--no-progress") == 0  # fmt: skip
    err = capsys.readouterr().err
    for expected in ("line 2: invalid JSON", "line 3: error line from infer: err.png",
                     "line 4: far.png: invalid scene: objects[0].position",
                     "line 5: cone.png: invalid scene: objects[0].shape: unknown shape 'torus'",
                     'line 6: not an inference (no "source" string)', "line 7: not an inference",
                     "line 8: ok1.png: repeats line 1"):  # fmt: skip
        assert f"skipped {expected}" in err
    assert "2 rendered, 0 already done, 7 bad lines skipped" in err
    assert "cut.png" not in err
    assert pngs(tmp_path / "rr" / "renders") == sorted(
        [f"{output_stem('ok1.png')}.png", f"{output_stem('ok2.png')}.png"]
    )
    # the inputs do not exist here: renders are written, sheets are not, and it says so
    assert "no sheet: line 1: ok1.png: cannot read" in err
    index = (tmp_path / "rr" / "index.html").read_text()
    assert "no sheet (input unreadable)" in index and "Skipped lines" in index


def test_index_html_escapes_everything_from_the_file(tmp_path, world):
    evil = '<script>alert("x")&.png'
    image = tmp_path / evil
    to_pil(torch.rand(3, world.image_size, world.image_size)).save(image, format="PNG")
    inferences = write_lines(tmp_path / "inf.jsonl", [
        {"source": evil, "objects": [CUBE]},
        {"source": "<b>bad</b>", "error": "<img src=x onerror=alert(1)>"},
    ])  # fmt: skip
    assert cli("rerender", inferences, "--out", tmp_path / "rr", "--compare", "--root",
               tmp_path, "--no-progress") == 0  # fmt: skip
    index = (tmp_path / "rr" / "index.html").read_text()
    assert "<script>" not in index and "<img src=x" not in index and "<b>" not in index
    assert "&lt;script&gt;alert(&quot;x&quot;)&amp;.png" in index
    assert "&lt;img src=x onerror=alert(1)&gt;" in index
    assert len(pngs(tmp_path / "rr" / "sheets")) == 1


def test_a_rerun_skips_existing_outputs_and_redoes_missing_ones(tmp_path, capsys):
    lines = [{"source": f"s{i}.png", "objects": [CUBE] * 0} for i in range(5)]
    inferences = write_lines(tmp_path / "inf.jsonl", lines)
    args = ("rerender", inferences, "--out", tmp_path / "rr", "--batch-size", 2, "--no-progress")
    assert cli(*args) == 0
    first = tmp_path / "rr" / "renders" / f"{output_stem('s0.png')}.png"
    gone = tmp_path / "rr" / "renders" / f"{output_stem('s3.png')}.png"
    stamp = first.stat().st_mtime_ns
    gone.unlink()
    capsys.readouterr()
    assert cli(*args) == 0
    assert "1 rendered, 4 already done" in capsys.readouterr().err
    assert gone.exists() and first.stat().st_mtime_ns == stamp
    assert not list(tmp_path.rglob("*.tmp"))


def test_load_items_keeps_the_line_objects_for_the_index(tmp_path, world, shapes):
    obj = {**CUBE, "presence": 0.9, "shape_probs": {"cube": 1.0}}
    inferences = write_lines(tmp_path / "inf.jsonl", [{"source": "a.png", "objects": [obj]}])
    items, skipped = load_items(inferences, world, shapes)
    assert skipped == [] and items[0].objects == [obj]
    assert items[0].scene.objects[0].shape == "cube"
    assert items[0].stem == output_stem("a.png")


def test_an_empty_file_gives_an_empty_index(tmp_path):
    inferences = write_lines(tmp_path / "inf.jsonl", [])
    assert cli("rerender", inferences, "--out", tmp_path / "rr", "--compare", "--no-progress") == 0
    assert "0 images; 0 lines skipped" in (tmp_path / "rr" / "index.html").read_text()


def test_missing_inferences_file_is_a_clear_error(tmp_path, capsys):
    assert cli("rerender", tmp_path / "nope.jsonl", "--out", tmp_path / "rr") == 2
    assert "nope.jsonl: no such file" in capsys.readouterr().err


@pytest.mark.parametrize("option", [("--batch-size", "0"), ("--scale", "0")])
def test_bad_options_are_refused(tmp_path, option, capsys):
    inferences = write_lines(tmp_path / "inf.jsonl", [])
    assert cli("rerender", inferences, "--out", tmp_path / "rr", *option) == 2
    assert f"{option[0]} must be >= 1" in capsys.readouterr().err


def test_rerender_draws_a_clevr_worlds_attributes(tmp_path, tiny_clevr_world, monkeypatch):
    world, kinds = open_world(tiny_clevr_world)
    red = {"shape": "cube", "color": "red", "size": "large", "material": "metal",
           "position": [1.0, 0.7, 0.5], "yaw_deg": 20.0, "presence": 0.9}  # fmt: skip
    blue = {**red, "color": "blue", "size": "small", "material": "rubber"}
    Image.new("RGB", (320, 240), (90, 90, 90)).save(tmp_path / "frame.png")
    monkeypatch.chdir(tmp_path)
    lines = [{"source": "frame.png", "objects": [red]}, {"source": "b.png", "objects": [blue]}]
    write_lines(tmp_path / "inf.jsonl", lines)
    assert cli("rerender", "inf.jsonl", "--out", "rr", "--world", tiny_clevr_world,
               "--compare", "--scale", 1, "--no-progress") == 0  # fmt: skip
    renderer = SceneRenderer(world, kinds)
    drawn = {}
    for line in lines:
        name = output_stem(line["source"]) + ".png"
        got = read_image(tmp_path / "rr" / "renders" / name, world.image_size)
        want = renderer.render_scenes([Scene.from_json(line, world, kinds)])[0]
        assert (got - want).abs().max() <= 1 / 255 + 1e-6
        drawn[line["objects"][0]["color"]] = got
    changed = (drawn["red"] - drawn["blue"]).abs().sum(0) > 0.1
    assert changed.any()  # a red large cube is not a blue small one
    r, g, b = drawn["red"][:, changed].mean(1).tolist()
    assert r > b  # where they differ, the red one is red
    # the compare sheet's input is the 320 x 240 frame letterboxed on the 32-pixel canvas
    sheet_path = tmp_path / "rr" / "sheets" / (output_stem("frame.png") + ".png")
    sheet = np.asarray(Image.open(sheet_path), dtype=np.int16)
    panel = sheet[22 : 22 + 32, 8 : 8 + 32]
    first, last = world.frame_rows
    assert np.abs(panel[first:last] - 90).max() <= 1
    band = np.round(np.asarray(band_color(world)) * 255)
    assert np.abs(panel[:first] - band).max() <= 1 and np.abs(panel[last:] - band).max() <= 1
    index = (tmp_path / "rr" / "index.html").read_text()
    assert "red large metal cube" in index and "blue small rubber cube" in index
