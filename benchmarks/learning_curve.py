"""A training run's learning curve from its metrics.csv: the loss and the held-out count
accuracy against the step (and the wall-clock hours, where the run logged them), as a PNG.

    python benchmarks/learning_curve.py reports/clevr/clevr-spatial/metrics.csv \
        --out reports/clevr/clevr-spatial/learning-curve.png

Needs matplotlib (`pip install -e '.[plots]'`).
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

PANELS = (("loss", "loss (sleep)", "log"), ("count_accuracy", "held-out count accuracy", "linear"))


def read_metrics(path: Path) -> dict[str, list[tuple[int, float]]]:
    """name -> [(step, value)], in file order; a resumed run's repeated steps keep the last."""
    series: dict[str, dict[int, float]] = defaultdict(dict)
    with open(path, newline="") as file:
        for row in csv.DictReader(file):
            series[row["name"]][int(row["step"])] = float(row["value"])
    return {name: sorted(values.items()) for name, values in series.items()}


def plot(series: dict[str, list[tuple[int, float]]], title: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(PANELS), figsize=(5 * len(PANELS), 3.6))
    for axis, (name, label, scale) in zip(axes, PANELS, strict=True):
        steps, values = zip(*series[name], strict=True) if series.get(name) else ((), ())
        axis.plot(steps, values, linewidth=1)
        axis.set(xlabel="step", ylabel=label, yscale=scale)
        axis.grid(alpha=0.3)
    hours = dict(series.get("hours", []))
    if hours:  # the wall-clock hours at the last logged step, as the runs measured them
        last = max(hours)
        title += f" ({last} steps, {hours[last]:.1f} h)"
    figure.suptitle(title)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("metrics", type=Path, help="a run's metrics.csv")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--title", default=None, help="default: the run's folder name")
    args = parser.parse_args()
    plot(read_metrics(args.metrics), args.title or args.metrics.parent.name, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
