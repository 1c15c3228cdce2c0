"""Every bad input gets a clear answer, and the server keeps serving afterwards."""

from __future__ import annotations

import struct
import zlib

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.service.conftest import encode, example_png, make_app


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height pixels with almost no data (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0"))


TINY = Image.new("RGB", (8, 8), (200, 30, 30))
BAD_IMAGES = {
    "empty": (b"", 400, "empty file"),
    "not an image": (b"hello, this is text", 400, "not an image"),
    "truncated": (example_png(2)[:60], 400, "truncated"),
    "gif": (encode(TINY, "GIF"), 415, "unsupported image type GIF"),
    "bmp": (encode(TINY, "BMP"), 415, "unsupported image type BMP"),
    "bomb": (png_header_only(7_000, 7_000), 413, "7000x7000 = 49000000 pixels, over the limit"),
    "huge bomb": (png_header_only(20_000, 20_000), 413, "over the limit of 16000000 decoded"),
}


def still_serves(client: TestClient) -> None:
    files = {"image": ("x.png", example_png(0), "image/png")}
    assert client.post("/infer", files=files).status_code == 200
    assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize("case", BAD_IMAGES)
def test_bad_image_gets_a_clear_answer(client, case):
    data, status, message = BAD_IMAGES[case]
    response = client.post("/infer", files={"image": ("upload.png", data, "image/png")})
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]
    assert response.json()["detail"].startswith("image: ")
    assert "Pillow" not in response.json()["detail"] and "DOS" not in response.json()["detail"]
    still_serves(client)


@pytest.mark.parametrize("case", ["truncated", "gif", "bomb"])
def test_bad_image_in_a_batch_names_its_index(client, case):
    data, status, message = BAD_IMAGES[case]
    files = [
        ("images", ("a.png", example_png(0), "image/png")),
        ("images", ("b.png", data, "image/png")),
    ]
    response = client.post("/infer/batch", files=files)
    assert response.status_code == status
    assert response.json()["detail"].startswith("images[1]: ")
    assert message in response.json()["detail"]
    still_serves(client)


def test_no_file_names_the_missing_field(client):
    response = client.post("/infer", data={"other": "x"})
    assert response.status_code == 422
    assert response.json()["detail"] == "image: Field required"
    response = client.post("/infer/batch")
    assert response.status_code == 422
    still_serves(client)


def test_jpeg_of_any_size_is_accepted(client):
    big = Image.new("RGB", (640, 480), (120, 120, 110))
    response = client.post("/infer", files={"image": ("x.jpg", encode(big, "JPEG"), "image/jpeg")})
    assert response.status_code == 200, response.text


def test_upload_over_the_size_limit_is_413(predictor):
    with TestClient(make_app(predictor, max_upload_bytes=2000)) as client:
        padding = example_png(0) + b"\0" * 3000  # declared by Content-Length
        response = client.post("/infer", files={"image": ("x.png", padding, "image/png")})
        assert response.status_code == 413
        assert "limit of 2000 bytes" in response.json()["detail"]

        def chunks():  # no Content-Length: counted while streaming
            for _ in range(10):
                yield b"x" * 500

        streamed = client.post(
            "/infer", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"}
        )
        assert streamed.status_code == 413
        assert "limit of 2000 bytes" in streamed.json()["detail"]
        still_serves(client)


def test_too_many_images_in_a_batch_is_413(predictor):
    with TestClient(make_app(predictor, queue_size=2)) as client:
        files = [("images", (f"{i}.png", example_png(0), "image/png")) for i in range(3)]
        response = client.post("/infer/batch", files=files)
        assert response.status_code == 413
        assert "at most 2 per request" in response.json()["detail"]


CUBE = {"shape": "cube", "position": [0.0, 0.3, 0.0], "yaw_deg": 0.0}
BAD_SCENES = {
    "unknown shape": ({"objects": [{**CUBE, "shape": "pyramid"}]}, "objects[0].shape"),
    "too many": ({"objects": [CUBE] * 7}, "objects: 7 objects; at most max_objects=6"),
    "outside": ({"objects": [CUBE, {**CUBE, "position": [9, 0, 0]}]}, "objects[1].position"),
}


@pytest.mark.parametrize("case", BAD_SCENES)
def test_bad_scene_is_422_naming_the_field(client, case):
    scene, field = BAD_SCENES[case]
    response = client.post("/render", json=scene)
    assert response.status_code == 422
    assert field in response.json()["detail"]
    assert client.post("/render", json={"objects": [CUBE]}).status_code == 200


def test_nan_in_a_scene_is_422_naming_the_field(client):
    body = '{"objects": [{"shape": "cube", "position": [NaN, 0.3, 0.0], "yaw_deg": 0}]}'
    response = client.post("/render", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "objects[0].position[0]: must be finite" in response.json()["detail"]


@pytest.mark.parametrize(
    "body, loc",
    [
        ({"objects": [{"shape": "cube", "position": [0, 0], "yaw_deg": 0}]}, "objects.0.position"),
        ({"objects": [{"shape": "cube", "position": [0, 0, 0]}]}, "objects.0.yaw_deg"),
        (
            {"objects": [{"shape": "cube", "position": [0, 0, 0], "yaw_deg": False}]},
            "objects.0.yaw_deg: Input should be a valid number",
        ),
        (
            {"objects": [{"shape": "cube", "position": [0, "1", 0], "yaw_deg": 0}]},
            "objects.0.position.1",
        ),
        ({"things": []}, "objects"),
    ],
)
def test_malformed_scene_is_422_with_its_location(client, body, loc):
    response = client.post("/render", json=body)
    assert response.status_code == 422
    assert response.json()["detail"].startswith(loc)


def test_api_key_is_required_when_set(predictor):
    with TestClient(make_app(predictor, api_key="s3cret")) as client:
        files = {"image": ("x.png", example_png(0), "image/png")}
        assert client.post("/infer", files=files).status_code == 401
        wrong = client.post("/infer", files=files, headers={"X-API-Key": "nope"})
        assert wrong.status_code == 401 and "X-API-Key" in wrong.json()["detail"]
        assert client.get("/shapes").status_code == 401
        assert client.post("/render", json={"objects": []}).status_code == 401
        assert client.get("/healthz").status_code == 200  # probes stay open
        assert client.get("/readyz").status_code == 200
        ok = client.post("/infer", files=files, headers={"X-API-Key": "s3cret"})
        assert ok.status_code == 200
        assert client.get("/shapes", headers={"X-API-Key": "s3cret"}).status_code == 200
