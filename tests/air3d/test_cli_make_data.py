"""`air3d make-data`: synthetic scenes with ground truth, in-process through air3d.cli.main."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from air3d.cli import main


def _files(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


def test_make_data_same_seed_same_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert main(["make-data", "--n", "4", "--seed", "5", "--out", str(a)]) == 0
    assert f"wrote 4 scenes to {a}" in capsys.readouterr().out
    assert main(["make-data", "--n", "4", "--seed", "5", "--out", str(b), "--batch-size", "3"]) == 0
    assert main(["make-data", "--n", "4", "--seed", "6", "--out", str(c)]) == 0
    files = _files(a)
    assert set(files) == {
        "meta.json",
        "scenes.jsonl",
        "clevr_scenes.json",
        *(f"images/{i:06d}.png" for i in range(4)),
    }
    assert files == _files(b)
    assert files["scenes.jsonl"] != _files(c)["scenes.jsonl"]
    lines = [json.loads(line) for line in files["scenes.jsonl"].decode().splitlines()]
    assert [line["image"] for line in lines] == [f"images/{i:06d}.png" for i in range(4)]
    assert all(set(line) == {"image", "objects"} for line in lines)
    clevr = json.loads(files["clevr_scenes.json"])
    assert [s["image_filename"] for s in clevr["scenes"]] == [line["image"] for line in lines]
    assert [len(s["objects"]) for s in clevr["scenes"]] == [len(ln["objects"]) for ln in lines]
    assert json.loads(files["meta.json"])["renderer"] == "pytorch3d"


def test_make_data_count_override(tmp_path: Path) -> None:
    assert main(["make-data", "--n", "2", "--count", "2", "--out", str(tmp_path)]) == 0
    lines = (tmp_path / "scenes.jsonl").read_text().splitlines()
    assert [len(json.loads(line)["objects"]) for line in lines] == [2, 2]


def test_make_data_bad_arguments_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["make-data", "--n", "-1", "--out", str(tmp_path)]) == 2
    assert "air3d make-data: error: --n must be >= 0, got -1" in capsys.readouterr().err
    assert main(["make-data", "--n", "1", "--count", "-2", "--out", str(tmp_path)]) == 2
    assert "--count must be >= 0, got -2" in capsys.readouterr().err
    assert main(["make-data", "--n", "1", "--count", "40", "--out", str(tmp_path / "x")]) == 2
    assert "cannot place 40 objects" in capsys.readouterr().err
    broken = tmp_path / "world.yaml"
    broken.write_text("image_size: 64\n")
    assert main(["make-data", "--n", "1", "--world", str(broken), "--out", str(tmp_path)]) == 2
    assert "invalid scene config" in capsys.readouterr().err


def test_make_data_resumes_an_interrupted_run(tmp_path: Path, capsys) -> None:
    argv = ["make-data", "--n", "3", "--seed", "4", "--out", str(tmp_path)]
    assert main(argv) == 0
    whole = _files(tmp_path)
    (tmp_path / "images" / "000001.png").unlink()  # as if killed before it was written
    (tmp_path / "scenes.jsonl").unlink()
    kept = tmp_path / "images" / "000000.png"
    kept.write_bytes(b"kept")  # resume keeps what is there: this one is not drawn again
    assert main([*argv, "--resume"]) == 0
    again = _files(tmp_path)
    assert again["images/000000.png"] == b"kept"
    assert {k: v for k, v in again.items() if k != "images/000000.png"} == {
        k: v for k, v in whole.items() if k != "images/000000.png"
    }
    assert main([*argv[:-4], "--seed", "5", "--out", str(tmp_path), "--resume"]) == 2
    assert "made with other settings" in capsys.readouterr().err


def test_make_data_clevr_writes_the_frame_with_attributes(tmp_path: Path) -> None:
    # our renderer in the clevr world: the frame's rows of its canvas, CLEVR's attributes
    assert main(["make-data", "--world", "clevr", "--n", "1", "--out", str(tmp_path)]) == 0
    from PIL import Image

    assert Image.open(tmp_path / "images" / "000000.png").size == (96, 72)
    objects = json.loads((tmp_path / "clevr_scenes.json").read_text())["scenes"][0]["objects"]
    assert all({"color", "size", "material"} <= set(obj) for obj in objects)
    assert all(0 <= obj["pixel_coords"][0] < 320 and 0 <= obj["pixel_coords"][1] < 240
               for obj in objects)  # fmt: skip
