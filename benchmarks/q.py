"""q's own speed: latency at batch 1, throughput batched, and where the time goes.

    .venv/bin/python benchmarks/q.py [--baseline REF] [--checkpoint PATH] [--threads 1]
        [--device cpu|cuda]

Times `Predictor.infer` without the fit (benchmarks/fit.py times that): q's forward pass
(the frozen graph of model/frozen.py) plus building the answers, on prior samples at
batch 1 and at --batch: median of --repeats calls after a warm-up, in wall-clock time and
in the calling thread's CPU time (which other processes on a shared machine disturb less).
With --baseline REF (a git revision, e.g. `main`), the model package of that revision is
loaded beside this tree's, from the same checkpoint, and the two take turns in blocks of
10 calls, so that before and after meet the same machine state; their answers are
compared first.

The breakdown times the eager model's submodules with forward hooks (a frozen graph has
no hooks; frozen, each part costs less, in about the same proportions): the image encoder,
the two glimpse encoders, the recurrent core, the heads; "rest" is what lies outside them:
glimpse extraction, the latents' transforms, Python per step, and building the answers.
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import defaultdict
from inspect import signature
from pathlib import Path

import torch
from prior_images import prior_images
from render import synchronize

from air3d.allocator import keep_freed_memory
from air3d.model import DEFAULT_CHECKPOINT, Predictor

ROOT = Path(__file__).resolve().parent.parent


def baseline_predictor_class(ref: str, folder: Path) -> type:
    """The Predictor of `ref`'s model package, imported as `baseline_model` (its imports
    of air3d.model rewritten to it; the renderer is this tree's)."""
    archive = subprocess.run(
        ["git", "archive", ref, "model"], cwd=ROOT, check=True, capture_output=True
    ).stdout
    package = folder / "baseline_model"
    package.mkdir()
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.endswith(".py"):
                source = tar.extractfile(member).read().decode()
                source = re.sub(r"\bair3d\.model\b", "baseline_model", source)
                (package / Path(member.name).name).write_text(source)
    sys.path.insert(0, str(folder))
    return importlib.import_module("baseline_model.predictor").Predictor


def _time_in_turn(
    predictors: dict, images: torch.Tensor, repeats: int, device: torch.device, block: int = 10
) -> dict:
    """Median wall and thread-CPU seconds per call of each predictor. The predictors take
    turns in blocks of `block` calls, so that each meets the same machine state and runs
    from its own warm caches (as a server's next call does); a block's first call, which
    runs after the other model's, is not counted."""
    for predictor in predictors.values():
        for _ in range(3):
            predictor.infer(images)
    wall: dict[str, list[float]] = defaultdict(list)
    cpu: dict[str, list[float]] = defaultdict(list)
    for _ in range(max(1, repeats // block)):
        for name, predictor in predictors.items():
            predictor.infer(images)
            for _ in range(block):
                start_wall, start_cpu = time.perf_counter(), time.thread_time()
                predictor.infer(images)
                synchronize(device)
                wall[name].append(time.perf_counter() - start_wall)
                cpu[name].append(time.thread_time() - start_cpu)
    return {
        name: (statistics.median(wall[name]), statistics.median(cpu[name])) for name in predictors
    }


def _compare_answers(before, after, images: torch.Tensor) -> str:
    """Largest differences between two predictors' answers on the same images: the objects
    found, and q's presence and shape probabilities over the slots both revisions have."""
    # the first three of _ask_q's values (a baseline revision may return no more)
    (a, a_presence, a_probs), (b, b_presence, b_probs) = (
        before._ask_q(images)[:3],
        after._ask_q(images)[:3],
    )
    n = min(a.shape.shape[1], b.shape.shape[1])
    same = torch.equal(a.present[:, :n], b.present[:, :n])
    found = a.present[:, :n] & b.present[:, :n]
    same = same and torch.equal(a.shape[:, :n][found], b.shape[:, :n][found])
    return (
        f"same objects found (counts and shapes): {same}; largest differences: position "
        f"{(a.xz[:, :n] - b.xz[:, :n])[found].abs().max():.1e}, yaw "
        f"{(a.yaw[:, :n] - b.yaw[:, :n])[found].abs().max():.1e} rad, presence "
        f"{(a_presence[:, :n] - b_presence[:, :n]).abs().max():.1e}, shape probabilities "
        f"{(a_probs[:, :n] - b_probs[:, :n]).abs().max():.1e}"
    )


def _breakdown(
    predictor: Predictor, images: torch.Tensor, repeats: int, device: torch.device
) -> dict[str, float]:
    """Median seconds per call of each submodule (summed over its calls) and the rest (on
    CUDA each hook waits for the kernels before it: slower, but each part's own time)."""
    spent: dict[str, list[float]] = defaultdict(list)
    started: dict[str, float] = {}
    current: dict[str, float] = defaultdict(float)
    handles = []
    for name, module in predictor.model.named_children():
        if not list(module.parameters()):
            continue

        def pre(_module, _inputs, name=name) -> None:
            synchronize(device)
            started[name] = time.perf_counter()

        def post(_module, _inputs, _output, name=name) -> None:
            synchronize(device)
            current[name] += time.perf_counter() - started[name]

        handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    predictor.infer(images)  # warm-up
    for _ in range(repeats):
        current.clear()
        synchronize(device)
        start = time.perf_counter()
        predictor.infer(images)
        synchronize(device)
        total = time.perf_counter() - start
        for name, seconds in current.items():
            spent[name].append(seconds)
        spent["rest"].append(total - sum(current.values()))
        spent["total"].append(total)
    for handle in handles:
        handle.remove()
    return {name: statistics.median(times) for name, times in spent.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--baseline", help="git revision whose q to time beside this one")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument(
        "--page-faults", action="store_true", help="leave the C allocator as it is (allocator.py)"
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    device = torch.device(args.device)
    if not args.page_faults:
        keep_freed_memory()  # as the air3d command and the service's inference process do
    torch.set_num_threads(args.threads)
    predictor = Predictor.from_checkpoint(args.checkpoint, device, fit=False)
    started = time.perf_counter()
    predictor.warmup()
    warmup = time.perf_counter() - started
    predictors = {"after": predictor}
    folder = tempfile.TemporaryDirectory()
    if args.baseline:
        before = baseline_predictor_class(args.baseline, Path(folder.name))
        no_fit = {"fit": False} if "fit" in signature(before.from_checkpoint).parameters else {}
        before = before.from_checkpoint(args.checkpoint, device, **no_fit)
        predictors = {"before": before, **predictors}
    images = prior_images(predictor, args.batch)
    load = os.getloadavg()[0]
    sizes = (1, args.batch)
    timings = {
        size: _time_in_turn(predictors, images[:size], args.repeats, device) for size in sizes
    }
    eager = Predictor.from_checkpoint(args.checkpoint, device, fit=False, frozen=False)
    rows = {size: _breakdown(eager, images[:size], args.repeats, device) for size in sizes}
    print(f"checkpoint {args.checkpoint.name} on {device}; "
          f"torch threads {torch.get_num_threads()}; "
          f"load average (1 min) before {load:.1f}, after {os.getloadavg()[0]:.1f}; "
          f"warm-up (freezing q's graphs) {warmup:.2f} s")  # fmt: skip
    if args.baseline:
        print(f"answers, {args.baseline} against this tree, on {args.batch} prior scenes: "
              f"{_compare_answers(predictors['before'], predictor, images)}")  # fmt: skip
    print()
    columns = [f"{name}: ms (CPU ms) | {name}: ms / image" for name in predictors]
    print("| batch | " + " | ".join(columns) + " |")
    print("|---:|" + "---:|---:|" * len(predictors))
    for size, timing in timings.items():
        cells = " | ".join(
            f"{wall * 1e3:.2f} ({cpu * 1e3:.2f}) | {wall * 1e3 / size:.3f}"
            for wall, cpu in timing.values()
        )
        print(f"| {size} | {cells} |")
    print()
    print("Where the time goes (eager model, forward hooks; ms per call):")
    names = [name for name in rows[1] if name not in ("rest", "total")] + ["rest", "total"]
    print("| batch | " + " | ".join(names) + " |")
    print("|---:|" + "---:|" * len(names))
    for size, row in rows.items():
        print(f"| {size} | " + " | ".join(f"{row[name] * 1e3:.2f}" for name in names) + " |")
    folder.cleanup()


if __name__ == "__main__":
    main()
