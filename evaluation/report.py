"""The evaluation report: run a predictor over a data set, measure it, write JSON and Markdown.

`evaluate` works with anything shaped like `air3d.model.Predictor` (see `PredictorLike`):
the AIR model, the supervised baseline, or the analysis-by-synthesis baseline.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from tqdm import tqdm

from air3d.data import Dataset
from air3d.evaluation.metrics import NONE_LABEL, compute_metrics
from air3d.renderer import Scene, SceneBatch, SceneRenderer, ShapeLibrary, World


class InferenceLike(Protocol):
    def scene(self) -> Scene: ...


class PredictorLike(Protocol):
    """What `evaluate` needs of a predictor (docs/CONTRACTS.md, `air3d.model.Predictor`)."""

    world: World
    shapes: ShapeLibrary
    name: str
    checkpoint_hash: str | None

    def infer(self, images: torch.Tensor) -> Sequence[InferenceLike]: ...


@dataclass(frozen=True)
class Target:
    """One goal of issue 3 for the default model, checked against a report."""

    key: str  # where the value lives: "metrics.<name>" or "timing.<name>"
    label: str
    op: str  # ">=" or "<="
    threshold: float
    unit: str  # how to print the value: "fraction" (as %), "%", "deg", "ms"

    def passed(self, value: float | None) -> bool | None:
        if value is None:
            return None
        return value >= self.threshold if self.op == ">=" else value <= self.threshold


TARGETS = (
    Target("metrics.count_accuracy", "count accuracy", ">=", 0.98, "fraction"),
    Target("metrics.shape_accuracy", "shape accuracy", ">=", 0.95, "fraction"),
    Target("metrics.position_error_mean_pct", "mean position error", "<=", 2.5, "%"),
    Target("metrics.rotation_error_median_deg", "median rotation error", "<=", 10.0, "deg"),
    Target("timing.batch1_ms_per_image", "inference time, batch 1", "<=", 5.0, "ms"),
)


def evaluate(
    predictor: PredictorLike,
    dataset: Dataset,
    batch_size: int = 64,
    timing_calls: int = 50,
    info: dict[str, Any] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Runs `predictor` over `dataset` and returns the report as plain data.

    batch_size: images per `infer` call in the main pass; its time per image is the
      "batched" figure. With batch_size 1 the main pass also gives the batch-1 figure.
    timing_calls: single-image `infer` calls (after a warm-up) whose median is the
      batch-1 time per image; 0 skips them (then batch-1 time is only known when
      batch_size is 1). torch's thread count is left as it is, and recorded.
    info: extra entries for the report's header (data directory, command line, ...).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    _check_images(dataset.images, predictor.world.image_size)
    n = len(dataset.scenes)
    _warm_up(predictor, dataset.images)
    predicted, seconds = _infer_all(predictor, dataset.images, batch_size, progress)
    world, shapes = predictor.world, predictor.shapes
    timing = _timing(predictor, dataset.images, batch_size, seconds, timing_calls)
    report = {
        "name": predictor.name,
        "checkpoint_hash": getattr(predictor, "checkpoint_hash", None),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "images": n,
        "device": str(getattr(predictor, "device", "cpu")),
        "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        **(info or {}),
        "metrics": compute_metrics(dataset.scenes, predicted, shapes, world.workspace.width),
        "reconstruction_mse": reconstruction_mse(
            dataset.images, predicted, world, shapes, batch_size=max(batch_size, 16)
        ),
        "timing": timing,
        "predicted_scenes": [scene.to_json() for scene in predicted],
    }
    report["targets"] = check_targets(report)
    return report


def _check_images(images: torch.Tensor, image_size: int) -> None:
    expected = (3, image_size, image_size)
    if images.ndim != 4 or tuple(images.shape[1:]) != expected:
        raise ValueError(
            f"data set images are {tuple(images.shape[1:])}; the predictor takes {expected}"
        )


def _warm_up(predictor: PredictorLike, images: torch.Tensor) -> None:
    warmup = getattr(predictor, "warmup", None)
    if callable(warmup):
        warmup()
    elif len(images):
        predictor.infer(images[:1])


def _infer_all(
    predictor: PredictorLike, images: torch.Tensor, batch_size: int, progress: bool
) -> tuple[list[Scene], list[float]]:
    """Scenes for every image, and the seconds each `infer` call took (one per batch)."""
    scenes: list[Scene] = []
    seconds: list[float] = []
    with tqdm(total=len(images), desc="evaluate", unit="img", disable=not progress) as bar:
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            began = time.perf_counter()
            results = predictor.infer(chunk)
            seconds.append(time.perf_counter() - began)
            if len(results) != len(chunk):
                raise ValueError(f"predictor returned {len(results)} results for {len(chunk)}")
            scenes += [result.scene() for result in results]
            bar.update(len(chunk))
    return scenes, seconds


def _timing(
    predictor: PredictorLike,
    images: torch.Tensor,
    batch_size: int,
    seconds: list[float],
    timing_calls: int,
) -> dict[str, Any]:
    n = len(images)
    batched = 1000.0 * sum(seconds) / n if n else None
    if batch_size == 1:
        batch1, calls = (1000.0 * statistics.median(seconds) if seconds else None), len(seconds)
    else:
        batch1, calls = _time_batch1(predictor, images, timing_calls), timing_calls
    return {
        "batch1_ms_per_image": batch1,  # median over single-image calls
        "batch1_calls": calls if batch1 is not None else 0,
        "batched_ms_per_image": batched,  # main pass: total time / images
        "batch_size": min(batch_size, n) if n else batch_size,
    }


def _time_batch1(predictor: PredictorLike, images: torch.Tensor, calls: int) -> float | None:
    """Median milliseconds of `calls` single-image infer calls, cycling through the images."""
    if calls <= 0 or not len(images):
        return None
    times = []
    for i in range(calls):
        image = images[i % len(images)][None]
        began = time.perf_counter()
        predictor.infer(image)
        times.append(time.perf_counter() - began)
    return 1000.0 * statistics.median(times)


def reconstruction_mse(
    images: torch.Tensor,
    scenes: Sequence[Scene],
    world: World,
    shapes: ShapeLibrary,
    batch_size: int = 64,
    renderer: SceneRenderer | None = None,
) -> float | None:
    """Mean over images and pixels of the squared difference between each image and the
    crisp rendering of its scene (colours in [0, 1])."""
    if not len(scenes):
        return None
    renderer = renderer or SceneRenderer(world, shapes)
    total = 0.0
    for start in range(0, len(scenes), batch_size):
        chunk = list(scenes[start : start + batch_size])
        batch = SceneBatch.from_scenes(chunk, shapes)
        with torch.no_grad():
            rendered = renderer(batch, "crisp").cpu()
        target = images[start : start + len(chunk)].to(rendered)
        total += (rendered - target).pow(2).mean(dim=(1, 2, 3)).sum().item()
    return total / len(scenes)


def lookup(report: dict[str, Any], key: str) -> Any:
    """The value at a dotted key ("metrics.count_accuracy"); None where it is missing."""
    value: Any = report
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def check_targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of TARGETS with the report's value and whether it is met (None: no data)."""
    return [
        {
            "key": t.key,
            "label": t.label,
            "op": t.op,
            "threshold": t.threshold,
            "value": lookup(report, t.key),
            "passed": t.passed(lookup(report, t.key)),
        }
        for t in TARGETS
    ]


def write_report(report: dict[str, Any], prefix: str | Path) -> tuple[Path, Path]:
    """Writes PREFIX.json and PREFIX.md (each atomically); returns their paths."""
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    json_path = prefix.with_name(prefix.name + ".json")
    md_path = prefix.with_name(prefix.name + ".md")
    _write_atomic(json_path, json.dumps(report, indent=2, allow_nan=False) + "\n")
    _write_atomic(md_path, to_markdown(report))
    return json_path, md_path


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# ---------------------------------------------------------------- Markdown


def fmt(value: Any, unit: str = "") -> str:
    """A number as the report prints it: fractions as %, None as n/a."""
    if value is None:
        return "n/a"
    if unit == "fraction":
        return f"{100 * value:.1f}%"
    if unit == "%":
        return f"{value:.2f}%"
    if unit == "deg":
        return f"{value:.1f}°"
    if unit == "ms":
        return f"{value:.2f} ms"
    if unit == "mse":
        return f"{value:.5f}"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _verdict(passed: bool | None) -> str:
    return {True: "pass", False: "**FAIL**", None: "n/a"}[passed]


def targets_table(report: dict[str, Any]) -> str:
    units = {t.key: t.unit for t in TARGETS}
    rows = [
        [
            t["label"],
            fmt(t["value"], units.get(t["key"], "")),
            f"{t['op'].replace('>=', '≥').replace('<=', '≤')} "
            + fmt(t["threshold"], units.get(t["key"], "")),
            _verdict(t["passed"]),
        ]
        for t in report["targets"]
    ]
    return _table(["metric", "value", "target", "result"], rows)


# Headline rows: (label, dotted key, unit). Shared by the report and by `compare`.
HEADLINE: tuple[tuple[str, str, str], ...] = (
    ("images", "images", ""),
    ("count accuracy", "metrics.count_accuracy", "fraction"),
    ("over-counted images", "metrics.over_counted", ""),
    ("under-counted images", "metrics.under_counted", ""),
    ("shape accuracy (matched objects)", "metrics.shape_accuracy", "fraction"),
    ("position error, mean (world units)", "metrics.position_error_mean", ""),
    ("position error, mean (% of workspace width)", "metrics.position_error_mean_pct", "%"),
    ("position error, median (% of workspace width)", "metrics.position_error_median_pct", "%"),
    ("rotation error, mean", "metrics.rotation_error_mean_deg", "deg"),
    ("rotation error, median", "metrics.rotation_error_median_deg", "deg"),
    ("reconstruction error (pixel MSE)", "reconstruction_mse", "mse"),
    ("inference time per image, batch 1", "timing.batch1_ms_per_image", "ms"),
    ("inference time per image, batched", "timing.batched_ms_per_image", "ms"),
)


def by_count_table(metrics: dict[str, Any]) -> str:
    rows = [
        [
            count,
            str(m["images"]),
            fmt(m["count_accuracy"], "fraction"),
            str(m["over_counted"]),
            str(m["under_counted"]),
            fmt(m["shape_accuracy"], "fraction"),
            fmt(m["position_error_mean_pct"], "%"),
            fmt(m["rotation_error_median_deg"], "deg"),
        ]
        for count, m in metrics["by_true_count"].items()
    ]
    header = ["true count", "images", "count acc.", "over", "under", "shape acc."]
    return _table(header + ["mean pos. err. (% width)", "median rot. err."], rows)


def confusion_table(confusion: dict[str, dict[str, int]]) -> str:
    labels = list(confusion)
    rows = [[f"**{t}**", *(str(confusion[t][p]) for p in labels)] for t in labels]
    return _table(["true \\ predicted", *labels], rows)


def to_markdown(report: dict[str, Any]) -> str:
    """The human-readable report: targets first, then the details behind them."""
    m, timing = report["metrics"], report["timing"]
    header = [
        f"- checkpoint: `{report.get('checkpoint_hash') or 'n/a'}`",
        f"- data: `{report.get('data', 'n/a')}`, {report['images']} images",
        f"- device: {report['device']} ({report['cpu']}, {report['cpu_count']} cores, "
        f"{report['torch_threads']} torch threads); batched timing at batch "
        f"{timing['batch_size']}, batch-1 timing: median of {timing['batch1_calls']} calls",
        f"- created: {report['created']}",
    ]
    if report.get("command"):
        header.append(f"- command: `{report['command']}`")
    detail_rows = [[label, fmt(lookup(report, key), unit)] for label, key, unit in HEADLINE]
    detail_rows += [
        ["objects: true / predicted", f"{m['true_objects']} / {m['predicted_objects']}"],
        ["objects: missed / spurious", f"{m['missed_objects']} / {m['spurious_objects']}"],
        [
            "rotation: objects measured / excluded (no visible yaw)",
            f"{m['rotation_objects']} / {m['rotation_excluded_objects']}",
        ],
    ]
    sections = [
        f"# Evaluation: {report['name']}",
        "\n".join(header),
        "## Targets (issue 3)",
        targets_table(report),
        "## All metrics",
        _table(["metric", "value"], detail_rows),
        "## By true object count",
        by_count_table(m),
        "## Shape confusion",
        f"Matched pairs, rows true, columns predicted; `{NONE_LABEL}` counts unmatched "
        "objects (a missed true object in the column, a spurious prediction in the row).",
        confusion_table(m["confusion"]),
        "Objects are matched to the truth by the Hungarian algorithm on ground-plane "
        "distance. Rotation errors are taken modulo each true shape's rotational symmetry; "
        "shapes that look the same at every yaw are excluded from them.",
    ]
    return "\n\n".join(sections) + "\n"


def compare(
    reports: Sequence[dict[str, Any]],
    labels: Sequence[str] | None = None,
    rows: Sequence[tuple[str, str, str]] = HEADLINE,
) -> str:
    """One Markdown table with the headline numbers of several reports side by side (e.g.
    AIR, the supervised baseline, analysis by synthesis), plus the targets."""
    labels = list(labels) if labels is not None else [r["name"] for r in reports]
    if len(labels) != len(reports):
        raise ValueError(f"{len(labels)} labels for {len(reports)} reports")
    targets = {t.key: t for t in TARGETS}
    body = []
    for label, key, unit in rows:
        target = targets.get(key)
        goal = "" if target is None else f"{target.op} {fmt(target.threshold, unit)}"
        cells = [_cell(lookup(r, key), unit, target) for r in reports]
        body.append([label, *cells, goal.replace(">=", "≥").replace("<=", "≤")])
    return _table(["metric", *labels, "target"], body) + "\n"


def _cell(value: Any, unit: str, target: Target | None) -> str:
    text = fmt(value, unit)
    if target is not None and target.passed(value) is False:
        text += " ✗"
    return text


def load_report(path: str | Path) -> dict[str, Any]:
    """Reads a report JSON written by `write_report`."""
    path = Path(path)
    try:
        report = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not a report JSON: {error}") from None
    if not isinstance(report, dict) or "metrics" not in report:
        raise ValueError(f"{path}: not an evaluation report (no 'metrics')")
    return report
