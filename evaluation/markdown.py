"""The report as Markdown: targets, headline metrics, per-count rows, shape confusion, and the
side-by-side `compare` table of several reports."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from air3d.evaluation.metrics import NONE_LABEL
from air3d.evaluation.published import PUBLISHED_NOTE, published_ap
from air3d.evaluation.targets import Target, lookup


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
    """The report's targets (those of its world that apply to its data) as a table."""
    if not report["targets"]:
        return (
            f"World `{report.get('world', 'n/a')}` declares no targets for this data (a "
            "`targets:` section in its world.yaml sets them)."
        )
    rows = [
        [
            t["label"],
            fmt(t["value"], t.get("unit", "")),
            f"{_op(t['op'])} {fmt(t['threshold'], t.get('unit', ''))}",
            _verdict(t["passed"]),
        ]
        for t in report["targets"]
    ]
    return _table(["metric", "value", "target", "result"], rows)


def _op(op: str) -> str:
    return op.replace(">=", "≥").replace("<=", "≤")


# Headline rows: (label, dotted key, unit). Shared by the report and by `compare`.
HEADLINE: tuple[tuple[str, str, str], ...] = (
    ("images", "images", ""),
    ("count accuracy", "metrics.count_accuracy", "fraction"),
    ("over-counted images", "metrics.over_counted", ""),
    ("under-counted images", "metrics.under_counted", ""),
    ("shape accuracy (matched objects)", "metrics.shape_accuracy", "fraction"),
    (
        "shape and every attribute right (matched objects)",
        "metrics.all_attributes_accuracy",
        "fraction",
    ),
    ("3D centre error, mean (world units)", "metrics.center_error_mean", ""),
    ("3D centre error, median (world units)", "metrics.center_error_median", ""),
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


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


RANKING_NOTE = (
    " This model's confidence is the probability that the object is there, of its kind, and "
    "near where it is said to be (its position_sd); ranked by presence alone, as the "
    "published models rank theirs, it scores the row below it: the answers are the same."
)


def ap_markdown(ap: dict[str, Any], world: str | None = None, name: str = "this model") -> str:
    """The report's `ap` section as a table, AP in % as the published CLEVR table, with the
    published rows of the world (evaluation/published.py) beside ours, same columns."""
    values = ap["values"]
    rows = [[f"**{name}**", *(_percent(v) for v in values.values())]]
    by_presence = ap.get("values_by_presence")
    if by_presence is not None:
        cells = (_percent(by_presence.get(k)) for k in values)
        rows.append([f"{name}, ranked by presence alone", *cells])
    published = published_ap(world)
    for model, theirs in published:
        rows.append(
            [model, *("—" if theirs.get(k) is None else f"{theirs[k]:.1f}" for k in values)]
        )
    table = _table(["model", *(f"AP {key}" for key in values)], rows)
    note = f"\n\n{PUBLISHED_NOTE}" if published else ""
    return (
        f"{table}\n\nA prediction counts when its attributes ({', '.join(ap['attributes'])}) "
        "all match a true object whose 3D centre is nearer than the threshold (world units), "
        "one prediction per true object; predictions are "
        "ranked by confidence over the whole data set (Locatello et al. 2020, CLEVR protocol)."
        + (RANKING_NOTE if by_presence is not None else "")
        + note
    )


def to_markdown(report: dict[str, Any]) -> str:
    """The human-readable report: targets first, then the details behind them."""
    m, timing = report["metrics"], report["timing"]
    header = [
        f"- checkpoint: `{report.get('checkpoint_hash') or 'n/a'}`, world "
        f"`{report.get('world', 'n/a')}`",
        f"- data: `{report.get('data', 'n/a')}`, {report['images']} images, drawn by "
        f"{report.get('renderer') or 'an unknown renderer'}",
        f"- device: {report['device']} ({report['cpu']}, {report['cpu_count']} cores, "
        f"{report['torch_threads']} torch threads); batched timing at batch "
        f"{timing['batch_size']}, batch-1 timing: median of {timing['batch1_calls']} calls",
        f"- created: {report['created']}",
    ]
    if report.get("command"):
        header.append(f"- command: `{report['command']}`")
    detail_rows = [[label, fmt(lookup(report, key), unit)] for label, key, unit in HEADLINE]
    detail_rows += [
        [f"{attribute} accuracy (matched objects)", fmt(value, "fraction")]
        for attribute, value in m.get("attribute_accuracy", {}).items()
    ]
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
        f"## Targets of world `{report.get('world', 'n/a')}`",
        targets_table(report),
        "## All metrics",
        _table(["metric", "value"], detail_rows),
        "## By true object count",
        by_count_table(m),
        *(
            [
                "## Set-prediction average precision",
                ap_markdown(report["ap"], report.get("world"), report["name"]),
            ]
            if "ap" in report
            else []
        ),
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
    targets: Sequence[Target] | None = None,
) -> str:
    """One Markdown table with the headline numbers of several reports side by side (e.g.
    AIR, the supervised baseline, analysis by synthesis), plus the targets: `targets`, else
    those the first report was checked against."""
    labels = list(labels) if labels is not None else [r["name"] for r in reports]
    if len(labels) != len(reports):
        raise ValueError(f"{len(labels)} labels for {len(reports)} reports")
    if targets is None:
        targets = _report_targets(reports[0]) if reports else ()
    # The first target on a key is the one for any data (world.yaml lists those first).
    by_key: dict[str, Target] = {}
    for target in targets:
        by_key.setdefault(target.key, target)
    body = []
    for label, key, unit in rows:
        target = by_key.get(key)
        goal = "" if target is None else f"{_op(target.op)} {fmt(target.threshold, unit)}"
        cells = [_cell(lookup(r, key), unit, target) for r in reports]
        body.append([label, *cells, goal])
    return _table(["metric", *labels, "target"], body) + "\n"


def _report_targets(report: dict[str, Any]) -> tuple[Target, ...]:
    """The targets a report was checked against (its `targets` entries)."""
    fields = ("key", "label", "op", "threshold", "unit", "renderer")
    return tuple(
        Target(**{"unit": "", **{f: t[f] for f in fields if f in t}})
        for t in report.get("targets", ())
    )


def _cell(value: Any, unit: str, target: Target | None) -> str:
    text = fmt(value, unit)
    if target is not None and target.passed(value) is False:
        text += " ✗"
    return text
