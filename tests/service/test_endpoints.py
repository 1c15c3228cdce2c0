"""Every endpoint answers with its documented body."""

from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.service.conftest import encode, example_png, make_app, metric


def test_healthz_and_readyz(client, predictor):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert ready.json()["model"]["checkpoint_hash"] == predictor.checkpoint_hash


@pytest.mark.parametrize("index", [0, 1, 2])
def test_infer_returns_objects_model_and_timing(client, predictor, index):
    response = client.post("/infer", files={"image": ("x.png", example_png(index), "image/png")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"objects", "count", "fit", "model", "timing_ms"}
    assert body["count"] == len(body["objects"])
    assert body["model"] == {
        "name": predictor.name,
        "checkpoint_hash": predictor.checkpoint_hash,
        "image_size": predictor.image_size,
        "world": "tabletop",
        "frame_rows": [0, predictor.image_size],
    }
    assert body["timing_ms"]["total"] >= body["timing_ms"]["infer"] >= 0
    for obj in body["objects"]:
        assert obj["shape"] in predictor.shapes.names
        assert len(obj["position"]) == 3 and 0 <= obj["yaw_deg"] < 360
        assert obj["presence"] > 0.5
        assert sum(obj["shape_probs"].values()) == pytest.approx(1.0, abs=1e-4)
        col, row = obj["pixel"]
        assert -predictor.image_size < col < 2 * predictor.image_size
        assert -predictor.image_size < row < 2 * predictor.image_size
    # the same answer as the predictor gives directly
    from air3d.images import decode_image

    direct = predictor.infer(decode_image(example_png(index), predictor.image_size)[None])[0]
    expected = direct.to_json()
    assert body["count"] == expected["count"]
    for got, want in zip(body["objects"], expected["objects"], strict=True):
        assert got["shape"] == want["shape"]
        assert got["position"] == pytest.approx(want["position"], abs=1e-5)
    # the tiny checkpoint is not calibrated: the raw fit only, and no flag
    assert body["fit"] == {**expected["fit"], "log_likelihood_per_pixel": pytest.approx(
        expected["fit"]["log_likelihood_per_pixel"], abs=1e-4)}  # fmt: skip
    assert body["fit"]["calibrated"] is False and body["fit"]["score"] is None
    assert body["fit"]["not_a_scene"] is False


def test_pixel_marks_the_projected_centre(client, predictor):
    """A scene rendered with one cube: its /infer-style pixel lies on the cube's colour."""
    import torch

    from air3d.renderer import Scene, SceneObject
    from air3d.renderer.camera import project, projection_matrix, to_pixels

    scene = Scene((SceneObject("cube", (0.5, 0.3, 0.4), 0.0),))
    png = client.post("/render", json=scene.to_json()).content
    image = Image.open(io.BytesIO(png)).convert("RGB")
    uv = project(torch.tensor([[0.5, 0.3, 0.4]]), projection_matrix(predictor.world))
    col, row = to_pixels(uv, predictor.image_size)[0].tolist()
    r, g, b = image.getpixel((int(col), int(row)))
    assert r > 150 and g < 120 and b < 120, (col, row, (r, g, b))  # the cube is red


def test_infer_batch_one_result_per_image_in_order(client):
    singles = [
        client.post("/infer", files={"image": ("x.png", example_png(i), "image/png")}).json()
        for i in (2, 0, 1)
    ]
    files = [("images", (f"{i}.png", example_png(i), "image/png")) for i in (2, 0, 1)]
    response = client.post("/infer/batch", files=files)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == 3
    for got, want in zip(results, singles, strict=True):
        assert got["count"] == want["count"]
        assert [o["shape"] for o in got["objects"]] == [o["shape"] for o in want["objects"]]


def test_render_draws_the_inferred_scene_as_is(client, predictor):
    inferred = client.post("/infer", files={"image": ("x.png", example_png(2), "image/png")})
    response = client.post("/render", json=inferred.json())  # extra keys are ignored
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(response.content))
    assert image.size == (predictor.image_size, predictor.image_size)


def test_render_differs_with_and_without_an_object(client):
    empty = client.post("/render", json={"objects": []}).content
    cube = {"objects": [{"shape": "cube", "position": [0, 0, 0], "yaw_deg": 0}]}
    one = client.post("/render", json=cube).content
    assert empty != one


def test_render_draws_the_scene_from_its_camera(client, predictor):
    cube = {"objects": [{"shape": "cube", "position": [0, 0, 0], "yaw_deg": 0}]}
    plain = client.post("/render", json=cube).content
    at_home = {**cube, "camera": {"position": list(predictor.world.camera.position)}}
    assert client.post("/render", json=at_home).content == plain  # the world's: the same
    moved = client.post("/render", json={**cube, "camera": {"position": [1.0, 2.0, 2.5]}})
    assert moved.status_code == 200 and moved.content != plain
    below = client.post("/render", json={**cube, "camera": {"position": [1.0, -2.0, 2.5]}})
    assert below.status_code == 422 and "camera.position[1]" in below.json()["detail"]


def test_shapes_lists_library_and_world(client, predictor):
    body = client.get("/shapes").json()
    assert [s["name"] for s in body["shapes"]] == list(predictor.shapes.names)
    assert body["world"]["image_size"] == predictor.image_size
    assert body["world"]["max_objects"] == predictor.world.max_objects


def test_metrics_count_requests(client):
    before = metric(client, 'air3d_requests_total{method="GET",route="/healthz",status="200"}', 0.0)
    client.get("/healthz")
    client.get("/healthz")
    text = client.get("/metrics").text
    after = metric(text, 'air3d_requests_total{method="GET",route="/healthz",status="200"}')
    assert after == before + 2
    for name in ("air3d_request_seconds_bucket", "air3d_batch_size_bucket", "air3d_queue_depth"):
        assert name in text


def test_page_and_examples_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert 'id="objects"' in page.text
    for i in range(3):
        assert client.get(f"/static/examples/{i}.png").content == example_png(i)


def test_openapi_has_typed_models(client):
    schema = client.get("/openapi.json").json()
    components = schema["components"]["schemas"]
    for name in ("InferOut", "InferBatchOut", "SceneIn", "ShapesOut", "ErrorOut", "ObjectOut"):
        assert name in components
    infer = schema["paths"]["/infer"]["post"]
    ok = infer["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["$ref"].endswith("/InferOut")
    assert "multipart/form-data" in infer["requestBody"]["content"]
    for code in ("400", "413", "415", "503"):
        assert code in infer["responses"]
    render = schema["paths"]["/render"]["post"]
    assert render["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/SceneIn"
    )
    assert "image/png" in render["responses"]["200"]["content"]
    assert set(components["ObjectOut"]["required"]) >= {"shape", "position", "yaw_deg", "pixel"}
    fit = components["FitOut"]
    assert set(fit["required"]) == {
        "score",
        "log_likelihood_per_pixel",
        "not_a_scene",
        "calibrated",
    }
    assert "fit" in components["InferenceOut"]["required"]


def test_docs_page_uses_only_local_assets(client):
    import re

    page = client.get("/docs")
    assert page.status_code == 200
    urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    urls += re.findall(r"url: '([^']+)'", page.text)
    assert urls and all(url.startswith("/") and not url.startswith("//") for url in urls), urls
    for url in urls:
        assert client.get(url).status_code == 200, url
    assert "SwaggerUIBundle" in client.get("/docs/assets/swagger-ui-bundle.js").text


def test_infer_refine_passes_through_and_is_bounded(client, predictor):
    from air3d.images import decode_image

    files = {"image": ("x.png", example_png(1), "image/png")}
    response = client.post("/infer?refine=2", files=files)
    assert response.status_code == 200, response.text
    image = decode_image(example_png(1), predictor.image_size)[None]
    expected = predictor.infer(image, refine=2)[0].to_json()
    body = response.json()
    assert body["count"] == expected["count"]
    for got, want in zip(body["objects"], expected["objects"], strict=True):
        assert got["shape"] == want["shape"]
        assert got["position"] == pytest.approx(want["position"], abs=1e-4)
    batch = client.post("/infer/batch?refine=2", files=[("images", files["image"])])
    assert batch.json()["results"][0]["count"] == expected["count"]
    for bad in (-1, 51, "x"):
        response = client.post(f"/infer?refine={bad}", files=files)
        assert response.status_code == 422, response.text
        assert "refine" in response.json()["detail"], response.text


def test_a_blank_upload_is_flagged_not_a_scene_and_a_scene_is_not(calibrated_checkpoint):
    from air3d.model import Predictor

    predictor = Predictor.from_checkpoint(calibrated_checkpoint)
    blank = encode(Image.new("RGB", (64, 64), (255, 0, 0)), "PNG")
    with TestClient(make_app(predictor)) as client:
        one = client.post("/infer", files={"image": ("red.png", blank, "image/png")}).json()
        files = [
            ("images", ("red.png", blank, "image/png")),
            ("images", ("0.png", example_png(0), "image/png")),
        ]
        batch = client.post("/infer/batch", files=files).json()
    assert one["fit"]["calibrated"] is True and one["fit"]["not_a_scene"] is True
    assert one["fit"]["score"] == 0.0
    assert [r["fit"]["not_a_scene"] for r in batch["results"]][0] is True
    assert all(r["fit"]["calibrated"] for r in batch["results"])
