"""Training metrics: metrics.csv (one row per logged value) and TensorBoard scalars."""

from __future__ import annotations

import csv
from pathlib import Path


class MetricsLog:
    """metrics.csv (one row per log step; appends on resume) and TensorBoard scalars."""

    def __init__(self, out: Path, enabled: bool):
        self.enabled, self.path = enabled, out / "metrics.csv"
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out / "tb"))

    def write(self, step: int, stage: str, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        new = not self.path.exists()
        with open(self.path, "a", newline="") as file:
            writer = csv.writer(file)
            if new:
                writer.writerow(["step", "stage", "name", "value"])
            for name, value in metrics.items():
                writer.writerow([step, stage, name, f"{value:.6g}"])
                self.writer.add_scalar(f"{stage}/{name}", value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
