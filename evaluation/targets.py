"""The goals a report is checked against: each a dotted key into the report, an op, a threshold."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
