"""`air3d serve` (the Docker image's CMD) outside Docker: starts, serves, explains errors."""

from __future__ import annotations

import socket
import subprocess
import sys

import httpx
import pytest
import torch

from tests.service.conftest import example_png
from tests.service.server import serving


def test_serve_starts_and_answers_infer(tiny_checkpoint):
    with serving(tiny_checkpoint) as url:
        assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
        files = {"image": ("example.png", example_png(1), "image/png")}
        body = httpx.post(f"{url}/infer", files=files, timeout=30).json()
        assert body["count"] == len(body["objects"])
        assert body["model"]["name"].endswith("model")


def test_serve_without_checkpoint_says_what_to_do(tmp_path):
    missing = tmp_path / "nothing.pt"
    result = subprocess.run(
        [sys.executable, "-m", "air3d.cli", "serve", "--checkpoint", str(missing)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert f"no checkpoint at {missing}" in result.stderr
    assert "AIR3D_CHECKPOINT" in result.stderr


def test_serve_rejects_bad_settings():
    env_result = subprocess.run(
        [sys.executable, "-m", "air3d.cli", "serve"],
        capture_output=True, text=True, timeout=120,
        env={"AIR3D_MAX_BATCH": "0", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert env_result.returncode == 2
    assert "AIR3D_MAX_BATCH must be at least 1" in env_result.stderr


def run_serve(*args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", **env}
    return subprocess.run(
        [sys.executable, "-m", "air3d.cli", "serve", *args],
        capture_output=True, text=True, timeout=120, env=environ,
    )  # fmt: skip


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_one_line_before_the_model_loads(tiny_checkpoint):
    result = run_serve("--device", "cuda", "--checkpoint", str(tiny_checkpoint))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr  # one line, no traceback
    assert "no CUDA GPU" in result.stderr and "--device cpu" in result.stderr
    assert "air3d serve:" not in result.stdout  # the model never loaded


def test_busy_port_is_one_line_before_the_model_loads(tiny_checkpoint):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_serve("--checkpoint", str(tiny_checkpoint), "--port", str(port))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "--port" in result.stderr
    assert "air3d serve:" not in result.stdout


def test_no_writable_temp_dir_is_a_clear_error(monkeypatch):
    from air3d.commands import serve as command

    def nowhere():
        raise FileNotFoundError("No usable temporary directory found")

    monkeypatch.setattr(command.tempfile, "gettempdir", nowhere)
    with pytest.raises(ValueError, match="--tmpfs /tmp"):
        command._check_temp_dir()
