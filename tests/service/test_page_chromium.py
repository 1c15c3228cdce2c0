"""The page in a real headless Chromium: an example goes through /infer and /render."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import httpx
import pytest

from tests.service.browser import CHROMIUM, chromium_page
from tests.service.conftest import example_png
from tests.service.server import serving

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT_DIR = Path(os.environ.get("AIR3D_SCREENSHOT_DIR", "/tmp"))

pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="chromium not installed (.ci/run installs it; CI fails without it)",
)


SETTLED = '["done", "error"].includes(document.body.dataset.state)'


def settled_html(tmp_path: Path, url: str, screenshot: Path | None = None) -> str:
    """The page's DOM once /infer and /render have answered (or failed), and its picture."""
    with chromium_page(tmp_path / "profile", url) as page:
        page.wait_for(SETTLED)
        if screenshot:
            page.screenshot(screenshot)
        return page.html()


def fixture_results(tmp_path: Path, fixture: Path, width: int = 1000) -> dict:
    """What a fixture page's own script left in `data-results`."""
    with chromium_page(tmp_path / "profile", fixture.as_uri(), width=width) as page:
        return json.loads(page.wait_for("document.body.dataset.results"))


def test_page_shows_objects_markers_and_reconstruction(tiny_checkpoint, tmp_path):
    """The tiny checkpoint is not calibrated: the page says so beside the raw fit."""
    with serving(tiny_checkpoint) as url:
        files = {"image": ("2.png", example_png(2), "image/png")}
        expected = httpx.post(f"{url}/infer", files=files, timeout=30).json()
        shot = tmp_path / "page.png"
        html = settled_html(tmp_path, f"{url}/?example=2", shot)
    assert 'data-state="done"' in html, html[-3000:]
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
    assert re.search(r'id="difference"[^>]*src="blob:', html), "no difference image"
    assert re.search(r'<span id="difference-value">\(mean 0\.\d{3}\)</span>', html)
    assert re.search(r'id="download-json"[^>]*href="blob:', html), "no JSON download"
    assert f'"count": {count}' in html  # the answer as JSON, for copying
    fit = re.search(r'<p id="fit"( hidden="")?[^>]*>([^<]*)</p>', html)
    assert fit and not fit.group(1) and fit.group(2).startswith("Fit: uncalibrated (log-likelihood")
    assert shot.exists() and shot.stat().st_size > 10_000
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, SCREENSHOT_DIR / "air3d-page.png")


def test_page_flags_a_blank_image_not_a_scene(calibrated_checkpoint, tmp_path):
    """The blank example through /infer with a calibrated checkpoint: the flag, shown."""
    with serving(calibrated_checkpoint) as url:
        shot = tmp_path / "page.png"
        html = settled_html(tmp_path, f"{url}/?example=3", shot)
    assert 'data-state="done"' in html, html[-3000:]
    fit = re.search(r'<p id="fit" class="warning">([^<]*)</p>', html)
    assert fit, html[-3000:]
    assert fit.group(1).startswith("Not a scene: this image is outside what the model can explain")
    assert "Fit 0.00: fits better than 0% of valid scenes (log-likelihood -" in fit.group(1)
    assert '"not_a_scene": true' in html  # and in the JSON
    assert shot.exists() and shot.stat().st_size > 10_000
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, SCREENSHOT_DIR / "air3d-page-not-a-scene.png")


def test_page_reports_an_error_from_the_server(tiny_checkpoint, tmp_path):
    with serving(tiny_checkpoint, AIR3D_API_KEY="s3cret") as url:
        html = settled_html(tmp_path, f"{url}/?example=0")
    assert 'data-state="error"' in html
    assert "401" in html and "X-API-Key" in html


def test_the_upload_is_reachable_by_keyboard():
    """The file input is transparent over its label, not display:none (which Tab skips)."""
    page = (ROOT / "service/static/index.html").read_text()
    css = (ROOT / "service/static/style.css").read_text()
    assert re.search(r'<input id="file" type="file"', page) and 'tabindex="-1"' not in page
    rule = re.search(r"#drop input \{([^}]*)\}", css).group(1)
    assert "display: none" not in rule and "visibility" not in rule and "opacity: 0" in rule
    assert "#drop:focus-within" in css  # and the focus shows


FIT_SCRIPT = """
<script>
  const answer = (fit) => ({objects: [{shape: "cube", position: [0.1, 0.3, -0.2],
    yaw_deg: 10, presence: 0.99, shape_probs: {cube: 0.9}, pixel: [2, 2]}], count: 1,
    model: {name: "m", checkpoint_hash: "h", image_size: 4}, timing_ms: {total: 1},
    ...(fit ? {fit} : {})});
  const show = (fit) => { air3d.showAnswer(answer(fit)); return document.getElementById("fit"); };
  const results = {
    absent: show(null).hidden,
    good: show({score: 0.91, log_likelihood_per_pixel: 1.371, not_a_scene: false,
      calibrated: true}),
    bad: null,
  };
  results.good = [results.good.hidden, results.good.textContent, results.good.className];
  const bad = show({score: 0.0, log_likelihood_per_pixel: -11.4, not_a_scene: true,
    calibrated: true});
  results.bad = [bad.hidden, bad.textContent, bad.className];
  const raw = show({score: null, log_likelihood_per_pixel: 0.5, not_a_scene: false,
    calibrated: false});
  results.raw = [raw.hidden, raw.textContent, raw.className];
  const wide = document.documentElement.scrollWidth <= innerWidth;
  const text = document.querySelector("header p").getBoundingClientRect();
  results.layout = [wide, text.left >= 8, innerWidth - text.right >= 8];
  document.body.dataset.results = JSON.stringify(results);
</script>
"""


def test_page_shows_fit_and_flag_when_present_and_fits_400_px(tmp_path):
    """The page's own files from disk, given answers with and without `fit`, 400 px wide."""
    static = ROOT / "service/static"
    page = (static / "index.html").read_text()
    page = page.replace("/static/style.css", (static / "style.css").as_uri())
    page = page.replace('"/static/app.js"></script>', f'"{(static / "app.js").as_uri()}"></script>')
    page = page.replace("</body>", FIT_SCRIPT + "</body>")
    fixture = tmp_path / "page.html"
    fixture.write_text(page)
    results = fixture_results(tmp_path, fixture, width=400)
    assert results["absent"] is True
    hidden, text, css = results["good"]
    assert not hidden and "warning" not in css
    assert text == "Fit 0.91: fits better than 91% of valid scenes (log-likelihood 1.37 per pixel)."
    hidden, text, css = results["bad"]
    assert not hidden and text.startswith("Not a scene") and "Fit 0.00: fits better than 0%" in text
    assert "warning" in css
    hidden, text, css = results["raw"]
    assert not hidden and "warning" not in css
    assert text.startswith("Fit: uncalibrated (log-likelihood 0.50 per pixel; run air3d calibrate")
    assert results["layout"] == [True, True, True], "the page does not fit 400 px"


ATTRIBUTES_SCRIPT = """
<script>
  air3d.showAnswer({objects: [{shape: "cube", color: "red", size: "large", material: "metal",
    position: [0.1, 0.7, -0.2], yaw_deg: 10, presence: 0.99, shape_probs: {cube: 0.9},
    position_sd: 0.08, confidence: 0.7,
    attribute_probs: {color: {red: 0.8, blue: 0.2}, size: {large: 0.7, small: 0.3},
                      material: {rubber: 0.4, metal: 0.6}},
    pixel: [12, 12]}], count: 1,
    model: {name: "m", checkpoint_hash: "h", image_size: 24, world: "clevr",
            frame_rows: [3, 21]}, timing_ms: {total: 1}});
  const marker = document.querySelector(".marker");
  document.body.dataset.results = JSON.stringify({
    item: document.querySelector("#objects li").textContent,
    title: marker.title, top: marker.style.top, left: marker.style.left,
    aspect: document.getElementById("input-frame").style.aspectRatio,
  });
</script>
"""


def test_page_shows_each_objects_attributes_and_marks_the_frame(tmp_path):
    """A clevr answer: the object's attribute values and their probabilities are listed, with
    how far its centre may be off and its confidence, and its marker is placed in the
    letterboxed frame's rows, not the whole square."""
    static = ROOT / "service/static"
    page = (static / "index.html").read_text()
    page = page.replace('"/static/app.js"></script>', f'"{(static / "app.js").as_uri()}"></script>')
    fixture = tmp_path / "page.html"
    fixture.write_text(page.replace("</body>", ATTRIBUTES_SCRIPT + "</body>"))
    results = fixture_results(tmp_path, fixture)
    assert results["item"] == (
        "red large metal cube at x=0.10, z=-0.20 (±0.08), yaw 10.00°, presence 0.99, "
        "confidence 0.70, p(shape) 0.90, p(color) 0.80, p(size) 0.70, p(material) 0.60"
    )
    assert results["title"] == "1: red large metal cube"
    assert results["left"] == "50%" and results["top"] == "50%"  # row 12 of rows 3..21
    assert results["aspect"] == "24 / 18"


def test_page_runs_a_letterboxed_world_end_to_end(tiny_clevr_checkpoint, tmp_path):
    """A clevr-world server: the page infers, renders and draws the difference over the
    frame's rows (the reconstruction's bands are not compared)."""
    with serving(tiny_clevr_checkpoint) as url:
        files = {"image": ("2.png", example_png(2), "image/png")}
        expected = httpx.post(f"{url}/infer", files=files, timeout=30).json()
        page = settled_html(tmp_path, f"{url}/?example=2")
    assert 'data-state="done"' in page, page[-3000:]
    items = re.findall(r'<li class="object">([^<]*)</li>', page)
    assert len(items) == expected["count"]
    for item, obj in zip(items, expected["objects"], strict=True):
        words = f"{obj['color']} {obj['size']} {obj['material']} {obj['shape']} at x="
        assert item.startswith(words) and "p(material)" in item
    assert re.search(r'id="difference-value">\(mean \d\.\d{3}\)', page)
    assert "aspect-ratio: 32 / 24" in page
