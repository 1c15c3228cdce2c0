"""`air3d adapt --checkpoint C --images DIR --out PATH`: learn the look of unlabeled images.

Fits the renderer's appearance θ (light, colours, ground, background, tone curve) jointly
with q by the ELBO (model/adapt.py) and writes an adapted checkpoint whose world config
records the learned look: `air3d infer`, `evaluate`, `render --checkpoint` and the service
use it as they use any checkpoint. CPU; resumable (`--resume`), capped by `--minutes`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from air3d.images import Canvas
from air3d.model.adapt import AdaptConfig, Adapter, parse_schedule, read_images
from air3d.model.checkpoint import load_checkpoint
from air3d.renderer import World
from air3d.renderer.appearance import GROUPS


def register(subparsers) -> argparse.ArgumentParser:
    defaults = AdaptConfig()
    parser = subparsers.add_parser(
        "adapt", help="fit the renderer's look and q to unlabeled images (the ELBO)"
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help="AIR checkpoint to adapt")
    parser.add_argument("--images", type=Path, required=True, help="folder of PNG/JPEG images")
    parser.add_argument("--out", type=Path, required=True, help="adapted checkpoint to write")
    parser.add_argument("--limit", type=int, default=1000, help="use at most N images")
    parser.add_argument(
        "--schedule",
        default=",".join(f"{s}:{n}" for s, n in defaults.schedule),
        help="stages and their steps, in order: theta (θ alone, q fixed), sleep (q on prior "
        "samples drawn with θ), joint (θ and q by the ELBO); default: %(default)s",
    )
    parser.add_argument(
        "--steps", type=int, help="scale the schedule to about this many steps in all"
    )
    parser.add_argument("--minutes", type=float, help="stop after this much wall time")
    parser.add_argument(
        "--learn",
        nargs="+",
        default=list(defaults.learn),
        choices=list(GROUPS),
        help="parts of the look to learn (default: all)",
    )
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument(
        "--pool-size",
        type=int,
        default=defaults.pool_size,
        help="prior samples rendered with θ for each sleep stage",
    )
    parser.add_argument("--num-threads", type=int, default=1, help="CPU threads for torch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, help="progress folder (default: OUT with .adapt)")
    parser.add_argument("--resume", action="store_true", help="go on from WORK/progress.pt")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def run(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    schedule = parse_schedule(args.schedule)
    if args.steps is not None:
        schedule = _scaled(schedule, args.steps)
    config = AdaptConfig(
        schedule=schedule,
        batch_size=args.batch_size,
        pool_size=args.pool_size,
        learn=tuple(args.learn),
        minutes=args.minutes,
        num_threads=args.num_threads,
        seed=args.seed,
    )
    world = World.from_dict(load_checkpoint(args.checkpoint)["world"])
    images = read_images(args.images, Canvas.of(world), args.limit)
    print(f"adapting {args.checkpoint} to {len(images)} images from {args.images}")
    adapter = Adapter(args.checkpoint, images, args.out, config, args.work, args.resume)
    summary = adapter.run(progress=not args.no_progress)
    for entry in summary["history"]:
        print(f"  after {entry['stage']:<5} (step {entry['step']:>5}, {entry['minutes']:5.1f} min):"
              f" held-out fit {entry['fit']:.4f} per pixel")  # fmt: skip
    kept = summary["kept"]
    print(f"kept the end of stage {kept['stage']} (step {kept['step']}); light {kept['light']}, "
          f"tone {kept['tone']}")  # fmt: skip
    print(f"wrote {args.out}")
    (args.out.parent / f"{args.out.stem}.adapt.json").write_text(json.dumps(summary, indent=2))
    return 0


def _scaled(schedule: tuple[tuple[str, int], ...], steps: int) -> tuple[tuple[str, int], ...]:
    """The schedule with its stages' steps scaled to sum to about `steps` (each >= 1)."""
    if steps < 1:
        raise ValueError(f"--steps must be >= 1, got {steps}")
    total = sum(n for _, n in schedule)
    return tuple((stage, max(1, round(n * steps / total))) for stage, n in schedule)
