"""`air3d evaluate`: smoke tests through air3d.cli.main with the tiny real checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from air3d.clevr_format import read_clevr
from air3d.cli import main
from air3d.data import make_dataset
from air3d.renderer import ShapeLibrary, World, open_world


@pytest.fixture(scope="module")
def test_set(tmp_path_factory, world: World, shapes: ShapeLibrary) -> Path:
    out = tmp_path_factory.mktemp("test_set")
    make_dataset(out, n=6, seed=3, world=world, shapes=shapes, progress=False)
    return out


def test_evaluate_a_checkpoint_writes_json_and_markdown(
    tiny_checkpoint: Path, test_set: Path, tmp_path: Path, capsys
) -> None:
    prefix = tmp_path / "reports" / "tiny"
    argv = ["evaluate", "--checkpoint", str(tiny_checkpoint), "--data", str(test_set)]
    argv += ["--out", str(prefix), "--limit", "5", "--batch-size", "2", "--timing-calls", "3"]
    assert main([*argv, "--no-progress"]) == 0
    printed = capsys.readouterr()
    report = json.loads(prefix.with_suffix(".json").read_text())
    markdown = prefix.with_suffix(".md").read_text()
    assert printed.out.strip() == markdown.strip()
    assert f"wrote {prefix}.json" in printed.err
    assert report["images"] == 5 and len(report["predicted_scenes"]) == 5
    assert report["metrics"]["images"] == 5
    assert 0.0 <= report["metrics"]["count_accuracy"] <= 1.0
    assert report["reconstruction_mse"] >= 0.0
    assert report["timing"]["batch1_ms_per_image"] > 0 and report["timing"]["batch1_calls"] == 3
    assert report["timing"]["batch_size"] == 2
    assert report["data"] == str(test_set) and "--limit 5" in report["command"]
    assert [t["label"] for t in report["targets"]][0] == "count accuracy"
    assert markdown.startswith("# Evaluation: air3d-")
    assert "## Targets of world `tabletop`" in markdown and "## Shape confusion" in markdown
    assert list(report["ap"]["values"]) == ["inf", "1", "0.5", "0.25", "0.125", "0.0625"]
    assert "| AP inf | AP 1 |" in markdown


def test_evaluate_compare_tabulates_reports(tmp_path: Path, capsys) -> None:
    reports = []
    for name, accuracy in (("a", 0.5), ("b", 0.99)):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"name": name, "metrics": {"count_accuracy": accuracy}}))
        reports.append(str(path))
    argv = ["evaluate", "--compare", *reports, "--world", "tabletop"]
    assert main([*argv, "--out", str(tmp_path / "both")]) == 0
    table = (tmp_path / "both.md").read_text()
    assert "| metric | a | b | target |" in table
    assert "| count accuracy | 50.0% ✗ | 99.0% | ≥ 98.0% |" in table
    assert table.strip() == capsys.readouterr().out.strip()


def test_evaluate_analysis_by_synthesis(test_set: Path, tmp_path: Path) -> None:
    prefix = tmp_path / "abs"
    argv = ["evaluate", "--abs", "--data", str(test_set), "--limit", "1", "--out", str(prefix)]
    assert main([*argv, "--abs-steps", "1", "--abs-restarts", "1", "--no-progress"]) == 0
    report = json.loads(prefix.with_suffix(".json").read_text())
    assert report["name"] == "analysis-by-synthesis" and report["images"] == 1
    assert report["timing"]["batch_size"] == 1 and report["timing"]["batch1_calls"] == 1


def test_evaluate_errors_are_one_line(tmp_path: Path, test_set: Path, capsys) -> None:
    assert main(["evaluate", "--abs", "--data", str(tmp_path)]) == 2
    assert "no meta.json" in capsys.readouterr().err
    assert main(["evaluate", "--abs"]) == 2
    assert "--data is required" in capsys.readouterr().err
    assert main(["evaluate", "--abs", "--data", str(test_set), "--batch-size", "0"]) == 2
    assert "--batch-size must not be 0" in capsys.readouterr().err


def test_a_data_set_from_another_world_is_refused(
    tiny_checkpoint: Path, test_set: Path, tmp_path: Path, capsys
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    meta = json.loads((test_set / "meta.json").read_text())
    meta["world"]["camera"]["fov_deg"] = 60.0
    (other / "meta.json").write_text(json.dumps(meta))
    (other / "scenes.jsonl").write_text((test_set / "scenes.jsonl").read_text())
    argv = ["evaluate", "--checkpoint", str(tiny_checkpoint), "--data", str(other)]
    assert main(argv) == 2
    assert "rendered in another world than the model's: camera differ" in capsys.readouterr().err


def test_evaluate_reads_ground_truth_from_a_clevr_scenes_file(
    tiny_checkpoint: Path, test_set: Path, tmp_path: Path
) -> None:
    # the same images and scenes, once through scenes.jsonl and once through CLEVR's format
    reports = {}
    for name, extra in (
        ("jsonl", []),
        ("clevr", ["--scenes", str(test_set / "clevr_scenes.json")]),
    ):
        argv = ["evaluate", "--checkpoint", str(tiny_checkpoint), "--data", str(test_set)]
        argv += ["--out", str(tmp_path / name), "--timing-calls", "0", "--no-progress", *extra]
        assert main(argv) == 0
        reports[name] = json.loads((tmp_path / f"{name}.json").read_text())
    assert reports["clevr"]["images"] == 6 and "--scenes" in reports["clevr"]["command"]
    for key in ("count_accuracy", "shape_accuracy", "true_objects", "position_error_mean"):
        assert reports["clevr"]["metrics"][key] == pytest.approx(reports["jsonl"]["metrics"][key])
    assert reports["clevr"]["ap"] == reports["jsonl"]["ap"]


def test_evaluate_a_clevr_world_model_on_clevr_ground_truth(
    tiny_clevr_checkpoint: Path, tiny_clevr_world: Path, tmp_path: Path, capsys
) -> None:
    world, kinds = open_world(tiny_clevr_world)
    data = tmp_path / "clevr_set"
    make_dataset(data, n=4, seed=2, world=world, shapes=kinds, progress=False)
    argv = [
        "evaluate",
        "--world",
        str(tiny_clevr_world),
        "--checkpoint",
        str(tiny_clevr_checkpoint),
    ]
    argv += ["--data", str(data), "--scenes", str(data / "clevr_scenes.json")]
    argv += ["--out", str(tmp_path / "r"), "--timing-calls", "0", "--no-progress"]
    assert main(argv) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    m = report["metrics"]
    assert report["world"] == "tinyclevr" and "--world" in report["command"]
    assert set(m["attribute_accuracy"]) == {"color", "size", "material"}
    assert report["ap"]["attributes"] == ["shape", "color", "size", "material"]
    assert m["true_objects"] == sum(
        len(s.objects) for _, s in read_clevr(data / "clevr_scenes.json", world, kinds)
    )
    if m["matched_objects"]:
        assert m["center_error_mean"] >= 0 and 0 <= m["attribute_accuracy"]["color"] <= 1
    printed = capsys.readouterr().out
    assert "| size accuracy (matched objects) |" in printed
    # the world's own targets (its world.yaml, a copy of clevr's), not the tabletop's; the
    # data was drawn by our renderer, so the stricter ones for our renders apply too
    labels = [t["label"] for t in report["targets"]]
    assert "AP 0.125 (our renders)" in labels and "material accuracy" in labels
    assert report["renderer"] == "pytorch3d"
    assert "## Targets of world `tinyclevr`" in printed and "| ≤ 5.00 ms |" not in printed
    assert "| q time, batch 1 | n/a | ≤ 15.00 ms | n/a |" in printed
    # --world names the checkpoint's world or none: another is refused in one line
    argv = ["evaluate", "--world", "clevr", "--checkpoint", str(tiny_clevr_checkpoint)]
    assert main([*argv, "--data", str(data)]) == 2
    assert "is a model of world 'tinyclevr', not 'clevr'" in capsys.readouterr().err


def test_evaluate_with_refinement_records_it_and_refuses_too_many_steps(
    tiny_clevr_checkpoint: Path, tiny_clevr_world: Path, tmp_path: Path, capsys
) -> None:
    world, kinds = open_world(tiny_clevr_world)
    data = tmp_path / "clevr_set"
    make_dataset(data, n=2, seed=3, world=world, shapes=kinds, progress=False)
    argv = ["evaluate", "--checkpoint", str(tiny_clevr_checkpoint), "--data", str(data)]
    argv += ["--timing-calls", "0", "--no-progress"]
    assert main([*argv, "--refine", "1", "--out", str(tmp_path / "r")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert "--refine 1" in report["command"] and report["images"] == 2
    assert main([*argv, "--refine", "999"]) == 2
    assert "refine: 999 steps" in capsys.readouterr().err
