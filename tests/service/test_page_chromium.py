"""The page in a real headless Chromium: an example goes through /infer and /render."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.service.conftest import example_png
from tests.service.server import serving

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOT_DIR = Path(os.environ.get("AIR3D_SCREENSHOT_DIR", "/tmp"))

pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="chromium not installed (.ci/run installs it; CI fails without it)",
)


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    assert CHROMIUM, "chromium not installed: apt-get install chromium"
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=10000",
    ]  # fmt: skip
    return subprocess.run(
        [CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )


def test_page_shows_objects_markers_and_reconstruction(tiny_checkpoint, tmp_path):
    with serving(tiny_checkpoint) as url:
        files = {"image": ("2.png", example_png(2), "image/png")}
        expected = httpx.post(f"{url}/infer", files=files, timeout=30).json()
        dom = chromium(tmp_path, "--dump-dom", f"{url}/?example=2")
        shot = tmp_path / "page.png"
        chromium(tmp_path, f"--screenshot={shot}", "--window-size=1000,900", f"{url}/?example=2")
    html = dom.stdout
    assert 'data-state="done"' in html, dom.stderr[-2000:] + html[-3000:]
    count = expected["count"]
    assert f'<span id="count">({count})</span>' in html
    items = re.findall(r'<li class="object">([^<]*)</li>', html)
    assert len(items) == count
    for item, obj in zip(items, expected["objects"], strict=True):
        assert item.startswith(obj["shape"] + " at x=")
    assert len(re.findall(r'class="marker"', html)) == count
    if count == 0:
        assert "no objects found" in html
    assert re.search(r'id="reconstruction"[^>]*src="blob:', html), "no reconstruction image"
    assert shot.exists() and shot.stat().st_size > 10_000
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, SCREENSHOT_DIR / "air3d-page.png")


def test_page_reports_an_error_from_the_server(tiny_checkpoint, tmp_path):
    with serving(tiny_checkpoint, AIR3D_API_KEY="s3cret") as url:
        dom = chromium(tmp_path, "--dump-dom", f"{url}/?example=0")
    assert 'data-state="error"' in dom.stdout
    assert "401" in dom.stdout and "X-API-Key" in dom.stdout
