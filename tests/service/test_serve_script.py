"""scripts/serve.sh: installs the runtime dependencies once, skips while pyproject.toml is
unchanged, says what it does. Run in a copy with a stand-in .venv (no network, no pip)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def fake_repo(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "serve.sh", tmp_path / "scripts" / "serve.sh")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    log = tmp_path / "calls.log"
    for name in ("python", "air3d"):
        script = bin_dir / name
        script.write_text(f'#!/usr/bin/env bash\necho "{name} $*" >> {log}\n')
        script.chmod(0o755)
    return tmp_path


def serve(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(repo / "scripts" / "serve.sh"), *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_installs_runtime_only_once_then_skips_until_pyproject_changes(tmp_path):
    repo = fake_repo(tmp_path)
    log = repo / "calls.log"
    first = serve(repo, "--port", "9000")
    assert first.returncode == 0, first.stderr
    assert "installing air3d and its runtime dependencies" in first.stdout
    calls = log.read_text().splitlines()
    assert calls[0].startswith("python -m pip install") and calls[0].endswith("-e .")
    assert "dev" not in calls[0]  # runtime dependencies only
    assert calls[-1] == "air3d serve --port 9000"

    log.unlink()
    second = serve(repo)
    assert "install skipped" in second.stdout
    assert log.read_text().splitlines() == ["air3d serve"]

    with (repo / "pyproject.toml").open("a") as f:
        f.write("\n# changed\n")
    log.unlink()
    third = serve(repo)
    assert "installing" in third.stdout
    assert log.read_text().splitlines()[0].startswith("python -m pip install")
