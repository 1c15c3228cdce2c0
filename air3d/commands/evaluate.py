"""`air3d evaluate --checkpoint C --data DIR`: accuracy and speed report of a model on a
data set made by `air3d make-data`, as PREFIX.json and PREFIX.md (printed too).

`--world NAME` evaluates the world's shipped model (assets/model/NAME.pt; --checkpoint
overrides it), e.g. `air3d evaluate --world clevr --data DIR --scenes clevr_scenes.json`:
count, shape and attribute accuracy, 3D centre error, set-prediction AP (shape and every
attribute must match) beside the published figures for that world. The report checks the
world's own targets (its world.yaml's `targets:`), those that apply to the renderer that
drew the data (meta.json's `renderer`).

Also `--abs` (the analysis-by-synthesis baseline instead of a model) and `--compare
REPORT.json...` (several reports side by side in one Markdown table).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import torch

from air3d.data import META_FILE, load_clevr_dataset, load_dataset
from air3d.evaluation import (
    AbsConfig,
    AbsPredictor,
    compare,
    evaluate,
    load_report,
    to_markdown,
    write_report,
)
from air3d.evaluation.set_prediction import CLEVR_THRESHOLDS
from air3d.evaluation.targets import load_targets, world_targets
from air3d.model import Predictor, choose_checkpoint
from air3d.model.scale_calibration import calibrate_to, calibration_sample
from air3d.model.shipped import check_world
from air3d.renderer import ShapeLibrary, World
from air3d.renderer.worlds import kinds_of, world_files

# Parts of the world that fix where things appear: a data set made in another geometry
# cannot be read by a model of this one. The look (light, colours, ground and background
# colour, tone) may differ: it is what `air3d adapt` learns from unlabeled images.
_WORLD_KEYS = ("image_size", "camera", "workspace")


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "evaluate", help="report a model's accuracy and speed on a data set with ground truth"
    )
    what = parser.add_mutually_exclusive_group()
    what.add_argument(
        "--checkpoint", type=Path, help="model checkpoint to evaluate (default: the world's)"
    )
    what.add_argument(
        "--abs", action="store_true", help="evaluate analysis by synthesis (no model) instead"
    )
    what.add_argument(
        "--compare", type=Path, nargs="+", metavar="REPORT", help="report JSONs to tabulate"
    )
    parser.add_argument(
        "--world", default=None, help="a shipped world NAME: evaluate its shipped model "
        "(assets/model/NAME.pt; tabletop, the default: default.pt)",
    )  # fmt: skip
    parser.add_argument("--data", type=Path, help="data set directory (from make-data)")
    parser.add_argument(
        "--scenes",
        type=Path,
        help="ground truth as a CLEVR scenes JSON instead of DATA/scenes.jsonl; its "
        "image_filename entries are relative to --data",
    )
    parser.add_argument("--out", type=Path, help="writes OUT.json and OUT.md")
    parser.add_argument("--limit", type=int, help="only the first N images of the data set")
    parser.add_argument("--batch-size", type=int, default=64, help="images per inference call")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, or auto")
    parser.add_argument(
        "--timing-calls", type=int, default=50, help="single-image calls timed for batch 1"
    )
    parser.add_argument(
        "--max-objects",
        type=int,
        help="let the model (or --abs) find up to this many objects (generalisation sets)",
    )
    parser.add_argument(
        "--refine",
        type=int,
        default=0,
        help="test-time refinement steps after q (render and compare; 0: q alone)",
    )
    parser.add_argument(
        "--calibrate-scales",
        choices=("auto", "off"),
        default="auto",
        help="auto: calibrate the camera fit's apparent scales to the data set's images "
        "first, without their labels, as `air3d infer` does; off: as trained",
    )
    parser.add_argument(
        "--ap-thresholds",
        type=float,
        nargs="+",
        default=list(CLEVR_THRESHOLDS),
        metavar="D",
        help="3D distances (world units) of the average-precision table (default: CLEVR's)",
    )
    parser.add_argument("--labels", nargs="+", help="column names for --compare")
    parser.add_argument("--abs-steps", type=int, help="Adam steps per object count (--abs)")
    parser.add_argument("--abs-restarts", type=int, help="restarts per object count (--abs)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def run(args: argparse.Namespace) -> int:
    if args.compare:
        return _compare(args)
    if args.data is None:
        raise ValueError("--data is required (a directory made by air3d make-data)")
    for name in ("limit", "batch_size", "timing_calls", "max_objects"):
        value = getattr(args, name)
        if value is not None and value < (0 if name in ("limit", "timing_calls") else 1):
            raise ValueError(f"--{name.replace('_', '-')} must not be {value}")
    if not all(d > 0 for d in args.ap_thresholds):
        raise ValueError(f"--ap-thresholds must be > 0 (inf allowed), got {args.ap_thresholds}")
    device = _device(args.device)
    if args.abs:
        world = _data_world(args.data)
        shapes = kinds_of(world)
        predictor = AbsPredictor(world, shapes, _abs_config(args), device)
        batch_size, timing_calls = 1, 0  # one image at a time: every call is a batch-1 call
    else:
        # fit=False: the report is about the scenes and q's time; the fit's own accuracy and
        # cost are measured by evaluation/non_scenes.py and benchmarks/fit.py.
        args.checkpoint = choose_checkpoint(args.checkpoint, args.world)
        predictor = Predictor.from_checkpoint(
            args.checkpoint, device, args.max_objects, refine=args.refine, fit=False
        )
        check_world(predictor.world, args.world, args.checkpoint)
        batch_size, timing_calls = args.batch_size, args.timing_calls
    check_data(args.data, predictor.world, predictor.shapes)
    canvas = getattr(predictor, "canvas", None)  # where q's centres are sharpened: finer
    if args.scenes is not None:
        dataset = load_clevr_dataset(
            args.scenes, args.data, predictor.world, predictor.shapes, args.limit, canvas
        )
    else:
        dataset = load_dataset(args.data, predictor.world, predictor.shapes, args.limit, canvas)
    if not args.abs and args.calibrate_scales == "auto":
        _calibrate_scales(predictor, dataset.images, batch_size)
    meta = _read_meta(args.data) or {}
    # The renderer that drew the data picks the targets that apply (e.g. stricter ones on
    # our own renders); unknown without a meta.json (e.g. CLEVR's own images).
    info = {
        "data": str(args.data),
        "renderer": meta.get("renderer"),
        "command": _command_line(args),
    }
    report = evaluate(
        predictor,
        dataset,
        batch_size,
        timing_calls,
        info,
        progress=not args.no_progress,
        ap_thresholds=args.ap_thresholds,
        targets=world_targets(predictor.world, args.world),
    )
    prefix = args.out or Path(f"eval-{predictor.name}")
    json_path, md_path = write_report(report, prefix)
    print(to_markdown(report))
    print(f"wrote {json_path} and {md_path}", file=sys.stderr)
    return 0


def _compare(args: argparse.Namespace) -> int:
    reports = [load_report(path) for path in args.compare]
    # --world: that world's targets; else those the first report was checked against.
    targets = load_targets(world_files(args.world)[0]) if args.world is not None else None
    table = compare(reports, args.labels, targets=targets)
    if args.out:
        path = args.out.with_name(args.out.name + ".md")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(table)
        print(f"wrote {path}", file=sys.stderr)
    print(table)
    return 0


def _calibrate_scales(predictor: Predictor, images: torch.Tensor, batch_size: int) -> None:
    """As `air3d infer --calibrate-scales auto`: the scales calibrated, in memory, on up to
    SAMPLE_IMAGES of the images (no labels), where the model can and the set is large enough."""
    picked = calibration_sample(predictor, len(images))
    if picked:
        print(calibrate_to(predictor, images[picked].split(batch_size)), file=sys.stderr)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available here")
    return device


def _abs_config(args: argparse.Namespace) -> AbsConfig:
    overrides: dict[str, Any] = {}
    if args.abs_steps is not None:
        overrides["steps"] = args.abs_steps
    if args.abs_restarts is not None:
        overrides["restarts"] = args.abs_restarts
    if args.max_objects is not None:
        overrides["max_count"] = args.max_objects
    return AbsConfig(**overrides)


def _read_meta(data: Path) -> dict[str, Any] | None:
    path = data / META_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON: {error}") from None


def _data_world(data: Path) -> World:
    """The world a data set was rendered in (what analysis by synthesis must assume)."""
    meta = _read_meta(data)
    if meta is None or "world" not in meta:
        raise ValueError(f"{data}: no {META_FILE} with the world; make the data with make-data")
    return World.from_dict(meta["world"])


def check_data(data: Path, world: World, shapes: ShapeLibrary) -> None:
    """ValueError if the data set was rendered in another world than the predictor's, or
    with shapes the predictor does not know. Data sets without meta.json are not checked."""
    meta = _read_meta(data)
    if meta is None:
        return
    ours = json.loads(json.dumps(world.to_dict()))  # tuples to lists, as in meta.json
    theirs = meta.get("world", {})
    differing = [key for key in _WORLD_KEYS if key in theirs and theirs[key] != ours[key]]
    if differing:
        raise ValueError(
            f"{data} was rendered in another world than the model's: {', '.join(differing)} "
            "differ (compare its meta.json with the checkpoint's scene config)"
        )
    unknown = sorted(set(meta.get("shapes", [])) - set(shapes.names))
    if unknown:
        raise ValueError(
            f"{data} has shapes the model does not know: {', '.join(unknown)}; "
            f"known: {', '.join(shapes.names)}"
        )


def _command_line(args: argparse.Namespace) -> str:
    words = ["air3d", "evaluate"]
    words += ["--abs"] if args.abs else ["--checkpoint", str(args.checkpoint)]
    words += ["--world", args.world] if args.world is not None else []
    words += ["--data", str(args.data)]
    if args.scenes is not None:
        words += ["--scenes", str(args.scenes)]
    flags = ("limit", "batch_size", "device", "max_objects", "refine", "abs_steps", "abs_restarts")
    for flag in flags:
        value = getattr(args, flag)
        if value is not None and not (args.abs and flag == "batch_size"):
            words += [f"--{flag.replace('_', '-')}", str(value)]
    if args.out is not None:
        words += ["--out", str(args.out)]
    return shlex.join(words)
