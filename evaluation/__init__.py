"""Evaluation: scene metrics against ground truth, the report, and the baselines."""

from air3d.evaluation.abs_baseline import AbsConfig, AbsInference, AbsPredictor
from air3d.evaluation.markdown import compare, to_markdown
from air3d.evaluation.metrics import (
    compare_scene,
    compute_metrics,
    match_objects,
    yaw_error_deg,
)
from air3d.evaluation.report import evaluate, load_report, reconstruction_mse, write_report
from air3d.evaluation.targets import Target, world_targets

__all__ = [
    "AbsConfig",
    "AbsInference",
    "AbsPredictor",
    "Target",
    "compare",
    "compare_scene",
    "compute_metrics",
    "evaluate",
    "load_report",
    "match_objects",
    "reconstruction_mse",
    "to_markdown",
    "write_report",
    "world_targets",
    "yaw_error_deg",
]
