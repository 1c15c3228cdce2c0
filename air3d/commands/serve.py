"""`air3d serve`: the HTTP service (uvicorn) on the shipped model, or AIR3D_CHECKPOINT.

`--world NAME` serves the world's shipped model (assets/model/NAME.pt). A server serves one
model, so one world: each answer names it (`model.world`); serve another world from another
server. Settings come from the environment (AIR3D_*, see service/settings.py and the
README); the flags below override them.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import tempfile
from pathlib import Path

from air3d.model.shipped import check_world, shipped_checkpoint


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "serve", help="serve the model over HTTP (POST /infer, /render, the page at /)"
    )
    parser.add_argument(
        "--checkpoint", type=Path, default=None, help="model (default: AIR3D_CHECKPOINT or shipped)"
    )
    parser.add_argument(
        "--world", default=None, help="serve this shipped world's model (assets/model/NAME.pt; "
        "tabletop: default.pt) instead of AIR3D_CHECKPOINT; --checkpoint overrides it",
    )  # fmt: skip
    parser.add_argument("--host", default=None, help="default: AIR3D_HOST or 127.0.0.1")
    parser.add_argument("--port", type=int, default=None, help="default: AIR3D_PORT or 8000")
    parser.add_argument(
        "--device", default=None, help="auto (CUDA if available), cpu, cuda; default AIR3D_DEVICE"
    )
    parser.add_argument("--log-level", default="info", help="uvicorn's log level")
    return parser


def run(args: argparse.Namespace) -> int:
    import torch
    import uvicorn

    from air3d.model import Predictor
    from air3d.service import Settings, create_app

    checkpoint = args.checkpoint
    if checkpoint is None and args.world is not None:
        checkpoint = shipped_checkpoint(args.world)
    settings = Settings.from_env(
        checkpoint=checkpoint, host=args.host, port=args.port, device=args.device
    )
    if not settings.checkpoint.is_file():
        hint = (
            " (the shipped model of this world is missing from this install)"
            if settings.checkpoint == shipped_checkpoint(args.world)
            else ""
        )
        raise ValueError(
            f"no checkpoint at {settings.checkpoint}{hint}; "
            "set AIR3D_CHECKPOINT or pass --checkpoint PATH (e.g. a model.pt from air3d train)"
        )
    device = settings.resolved_device()
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"device {device}: torch sees no CUDA GPU on this machine; "
            "use --device cpu (or auto, which picks the GPU when there is one)"
        )
    _check_port_free(settings.host, settings.port)
    _check_temp_dir()
    torch.set_num_threads(settings.resolved_torch_threads())
    # Loaded here, not in the app's lifespan, so that a bad checkpoint is a one-line error.
    predictor = Predictor.from_checkpoint(settings.checkpoint, device)
    check_world(predictor.world, args.world, settings.checkpoint)
    print(
        f"air3d serve: {predictor.name} (world {predictor.world.name}) on {predictor.device}; "
        "once it is ready:"
    )
    print(next_steps(settings.host, settings.port), flush=True)
    uvicorn.run(
        create_app(settings, predictor), host=settings.host, port=settings.port,
        log_level=args.log_level, access_log=settings.access_log,
    )  # fmt: skip
    return 0


def _check_port_free(host: str, port: int) -> None:
    """A one-line error for a busy port now, before the model loads (uvicorn would say it
    only after, with a traceback)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ValueError(
                f"cannot listen on {host}:{port}: {error.strerror}; is another server running "
                "there? pass --port or set AIR3D_PORT"
            ) from None


def _check_temp_dir() -> None:
    """Uploads over 1 MB are spooled to a temporary file; without a writable temporary
    directory (a read-only container) they would fail with a misleading 400 later."""
    try:
        tempfile.gettempdir()
    except FileNotFoundError:
        raise ValueError(
            "no writable temporary directory (a read-only filesystem?): uploads over 1 MB are "
            "spooled to one; give it one, e.g. docker run --read-only --tmpfs /tmp, or set TMPDIR"
        ) from None


def next_steps(host: str, port: int) -> str:
    """Where to go once it runs: the page, the API docs, a curl line that works as written."""
    from air3d.service.app import STATIC

    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{shown}:{port}"
    example = STATIC / "examples" / "2.png"
    with contextlib.suppress(ValueError):
        example = example.relative_to(Path.cwd())
    return (
        f"  the page:    {url}/\n"
        f"  the API:     {url}/docs\n"
        f"  try:         curl -F image=@{example} {url}/infer"
    )
