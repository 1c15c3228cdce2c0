"""`air3d calibrate --checkpoint PATH [--n 1000]`: the fit's calibration, into the checkpoint.

Answers n valid scenes drawn from the checkpoint's own world (model/calibration.py) and
writes their fit distribution into the checkpoint, atomically. Rerun it after the weights
or the world change (training, fine-tuning, adapting): until then answers say their fit is
uncalibrated.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from air3d.model import DEFAULT_CHECKPOINT, Predictor, load_checkpoint
from air3d.model.calibration import (
    CALIBRATION_SEED,
    DEFAULT_FLAG_RATE,
    calibrate,
    model_digest,
    write_calibration,
)
from air3d.model.fit import DEFAULT_TONE_GAMMAS


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "calibrate", help="calibrate the fit score and the not-a-scene flag of a checkpoint"
    )
    parser.add_argument(
        "--checkpoint", type=Path, default=DEFAULT_CHECKPOINT,
        help="checkpoint to calibrate, rewritten in place (default: shipped)",
    )  # fmt: skip
    parser.add_argument("--n", type=int, default=1000, help="valid scenes drawn from the prior")
    parser.add_argument("--seed", type=int, default=CALIBRATION_SEED, help="of those scenes")
    parser.add_argument(
        "--flag-rate", type=float, default=DEFAULT_FLAG_RATE,
        help="fraction of valid scenes to flag as not a scene (sets the threshold)",
    )  # fmt: skip
    parser.add_argument(
        "--tone-gammas", type=float, nargs="+", default=list(DEFAULT_TONE_GAMMAS),
        help="tone curves x^gamma the fit may undo (1: the renderer's linear look only)",
    )  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.flag_rate < 1:
        raise ValueError(f"--flag-rate must be in [0, 1), got {args.flag_rate}")
    digest = model_digest(load_checkpoint(args.checkpoint))
    predictor = Predictor.from_checkpoint(args.checkpoint, args.device, fit=False)
    calibration = calibrate(
        predictor, digest, args.n, args.seed, args.flag_rate, args.batch_size,
        progress=not args.no_progress, tone_gammas=tuple(args.tone_gammas),
    )  # fmt: skip
    write_calibration(args.checkpoint, calibration)
    s = calibration.scores
    print(
        f"calibrated {args.checkpoint} on {calibration.n} valid scenes (seed {args.seed}): "
        f"log-likelihood per pixel min {s[0]:.4f}, median {s[len(s) // 2]:.4f}, max {s[-1]:.4f}; "
        f"not a scene below {calibration.threshold:.4f} ({args.flag_rate:.2%} of valid scenes)"
    )
    return 0
