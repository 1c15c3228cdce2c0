"""Installed, not editable: the wheel and `pip install .` carry the top-level folders as air3d.*.

Each install goes into a fresh virtual environment whose only link to the test's environment
is a .pth line to its site-packages (for torch and the other dependencies, so nothing is
downloaded). The commands run from an empty folder, so the repository cannot shadow the
installed package.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
MAPPED_FOLDERS = ("air3d", "renderer", "model", "service", "evaluation", "batch", "assets")

INFER_SCRIPT = """
import json, sys
from importlib.resources import files
from fastapi.testclient import TestClient
import air3d
from air3d.service import Settings, create_app
example = (files("air3d.service") / "static" / "examples" / "2.png").read_bytes()
with TestClient(create_app(Settings(device="cpu"))) as client:
    response = client.post("/infer", files={"image": ("2.png", example, "image/png")})
print(json.dumps({"status": response.status_code, "body": response.json(),
                  "package": air3d.__file__}))
"""


def run(command: list[str | Path], cwd: Path, timeout: float = 300) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ""}
    result = subprocess.run(
        [str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip
    assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def fresh_venv(path: Path) -> Path:
    """A venv without pip that sees this environment's dependencies; returns its python."""
    run([sys.executable, "-m", "venv", "--without-pip", path], cwd=path.parent)
    python = path / "bin" / "python"
    site = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
               cwd=path.parent).strip()  # fmt: skip
    (Path(site) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def pip_install(python: Path, target: str | Path, cwd: Path) -> None:
    run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", target],
        cwd=cwd)  # fmt: skip


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    source = tmp_path_factory.mktemp("src") / "air3d"
    copy_source(source)
    run([sys.executable, "-m", "build", "--wheel", "--outdir", out, source], cwd=out)
    (built,) = out.glob("air3d-*.whl")
    return built


def copy_source(target: Path) -> None:
    """The files `pip install .` reads, copied so that its build/ never lands in the repo."""
    target.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, target / name)
    for folder in MAPPED_FOLDERS:
        shutil.copytree(ROOT / folder, target / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))  # fmt: skip


def test_wheel_holds_only_the_air3d_namespace_and_every_shipped_file(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/", 1)[0] for name in names}
    dist_info = "-".join(wheel.name.split("-")[:2]) + ".dist-info"
    assert top_level == {"air3d", dist_info}
    shipped = [
        *(p for p in (ROOT / "service" / "static").rglob("*") if p.is_file()),
        *(p for p in (ROOT / "assets").rglob("*") if p.is_file() and "__pycache__" not in p.parts),
        *(p for folder in MAPPED_FOLDERS for p in (ROOT / folder).rglob("*.py")),
    ]
    for path in shipped:
        relative = path.relative_to(ROOT)
        inside = relative if relative.parts[0] == "air3d" else Path("air3d") / relative
        assert inside.as_posix() in names, f"{relative} is not in the wheel"


@pytest.mark.parametrize("how", ["wheel", "pip install ."])
def test_installed_package_renders_and_serves(how: str, wheel: Path, tmp_path: Path) -> None:
    python = fresh_venv(tmp_path / "venv")
    if how == "wheel":
        pip_install(python, wheel, cwd=tmp_path)
    else:
        copy_source(tmp_path / "src")
        pip_install(python, tmp_path / "src", cwd=tmp_path)
        shutil.rmtree(tmp_path / "src")  # nothing of the source may be needed afterwards
    work = tmp_path / "work"
    work.mkdir()

    # generic names stay out of site-packages
    for generic in ("renderer", "model", "service", "assets"):
        probe = f"import importlib.util as u; print(u.find_spec('{generic}') is None)"
        assert run([python, "-c", probe], cwd=work).strip() == "True", generic

    scene = {"objects": [{"shape": "cube", "position": [0.0, 0.3, 0.0], "yaw_deg": 30}]}
    (work / "scene.json").write_text(json.dumps(scene))
    run([tmp_path / "venv" / "bin" / "air3d", "render", "scene.json", "-o", "scene.png"], cwd=work)
    picture = np.asarray(Image.open(work / "scene.png").convert("RGB"), dtype=np.float32)
    assert picture.shape == (64, 64, 3) and picture.std() > 1.0  # a cube on a table, not blank

    answer = json.loads(run([python, "-c", INFER_SCRIPT], cwd=work).splitlines()[-1])
    assert answer["package"].startswith(str(tmp_path / "venv")), answer["package"]
    assert answer["status"] == 200, answer["body"]
    assert answer["body"]["count"] == len(answer["body"]["objects"]) >= 1
