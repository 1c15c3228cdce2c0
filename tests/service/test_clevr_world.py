"""The service on a model of a world with attributes and a frame (a tiny clevr world)."""

from __future__ import annotations

import io
import socket

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from air3d.images import Canvas, decode_image
from air3d.model import Predictor
from tests.service.conftest import make_app
from tests.service.test_serve_command import run_serve

ATTRIBUTES = ("color", "size", "material")


@pytest.fixture(scope="module")
def clevr_predictor(tiny_clevr_checkpoint) -> Predictor:
    return Predictor.from_checkpoint(tiny_clevr_checkpoint, "cpu")


@pytest.fixture
def clevr_client(clevr_predictor):
    with TestClient(make_app(clevr_predictor)) as client:
        yield client


def _frame_png(seed: int) -> bytes:
    """A 320 x 240 picture (CLEVR's frame size): grey with a coloured block."""
    image = Image.new("RGB", (320, 240), (120, 120, 120))
    image.paste((200, 40 + 50 * seed, 30), (100 + 20 * seed, 80, 180 + 20 * seed, 160))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_answers_carry_the_worlds_attributes_and_render_back(clevr_client, clevr_predictor):
    files = [("images", (f"{i}.png", _frame_png(i), "image/png")) for i in range(3)]
    response = clevr_client.post("/infer/batch", files=files)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"]["world"] == "tinyclevr"
    assert body["model"]["frame_rows"] == [4, 28]  # 32 * 240 / 320 = 24 rows, centred
    objects = [obj for result in body["results"] for obj in result["objects"]]
    assert objects  # the tiny model answers something on these
    factors = dict(clevr_predictor.shapes.factors)
    for obj in objects:
        for attribute in ATTRIBUTES:
            assert obj[attribute] in factors[attribute]
            probs = obj["attribute_probs"][attribute]
            assert set(probs) == set(factors[attribute])
            assert probs[obj[attribute]] == max(probs.values())
    # the service answers what the predictor answers on the letterboxed upload
    canvas = Canvas.of(clevr_predictor.world)
    direct = clevr_predictor.infer(decode_image(_frame_png(0), canvas)[None])[0].to_json()
    first = body["results"][0]["objects"]
    assert [(o["shape"], o["color"]) for o in first] == [
        (o["shape"], o["color"]) for o in direct["objects"]
    ]
    # a world with camera jitter: each answer carries q's camera, and pixels are read
    # through it
    for result in body["results"]:
        assert len(result["camera"]["position"]) == 3
    assert body["results"][0]["camera"] == direct["camera"]
    # an answer renders as it is; without its colour it is refused by name
    scene = body["results"][0] if first else {"objects": objects[:1]}
    assert clevr_client.post("/render", json=scene).status_code == 200
    del scene["objects"][0]["color"]
    refused = clevr_client.post("/render", json=scene)
    assert refused.status_code == 422 and "objects[0].color: missing" in refused.text


def test_render_draws_the_attributes(clevr_client, clevr_predictor):
    def draw(color: str, size: str):
        obj = {"shape": "cube", "color": color, "size": size, "material": "rubber",
               "position": [0.0, 0.0, 0.0], "yaw_deg": 0.0}  # fmt: skip
        response = clevr_client.post("/render", json={"objects": [obj]})
        assert response.status_code == 200, response.text
        return Image.open(io.BytesIO(response.content)).convert("RGB")

    red, blue = draw("red", "large"), draw("blue", "large")
    r, _, b = red.getpixel((16, 16))
    assert r > b and blue.getpixel((16, 16))[2] > blue.getpixel((16, 16))[0]
    small = draw("red", "small")

    def count(image: Image.Image) -> int:  # reddish pixels
        pixels = np.asarray(image, dtype=np.int32)
        return int((pixels[..., 0] > pixels[..., 2] + 40).sum())

    assert 0 < count(small) < count(red)


def test_openapi_lists_the_attributes_values(clevr_client, clevr_predictor):
    components = clevr_client.get("/openapi.json").json()["components"]["schemas"]
    factors = dict(clevr_predictor.shapes.factors)
    for name in ("ObjectIn", "ObjectOut"):
        schema = components[name]
        for attribute in ATTRIBUTES:
            assert schema["properties"][attribute]["enum"] == list(factors[attribute])
            assert attribute in schema["required"]
    probs = components["ObjectOut"]["properties"]["attribute_probs"]["properties"]
    assert set(probs["size"]["properties"]) == {"large", "small"}
    assert components["ObjectIn"]["properties"]["shape"]["enum"] == list(factors["shape"])


def test_serve_world_picks_its_model_and_refuses_another(tiny_checkpoint):
    result = run_serve("--world", "nowhere")
    assert result.returncode == 2 and "world 'nowhere' ships no model" in result.stderr
    with socket.socket() as probe:  # a free port: the world is checked once the model loads
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    result = run_serve("--world", "clevr", "--checkpoint", str(tiny_checkpoint), "--port", port)
    assert result.returncode == 2, result.stderr
    assert "is a model of world 'tabletop', not 'clevr'" in result.stderr


def test_shapes_lists_each_kind_with_its_attributes(clevr_client, clevr_predictor):
    body = clevr_client.get("/shapes").json()
    kinds = body["shapes"]
    assert len(kinds) == len(clevr_predictor.shapes) == 3 * 8 * 2 * 2
    assert kinds[0]["name"] == "cube"
    assert kinds[0]["attributes"] == {"color": "gray", "size": "large", "material": "rubber"}
    assert set(body["world"]["attributes"]) == set(ATTRIBUTES)


def test_a_model_with_a_centre_refiner_is_served_on_its_finer_canvas(
    tiny_clevr_checkpoint, tmp_path
):
    """Uploads are decoded on the refiner's canvas, and the answer is the predictor's own
    answer to that canvas (q's centres sharpened), not q's alone."""
    import torch

    from air3d.model.centre_refiner import CentreRefiner, write_centre_refiner

    path = tmp_path / "sharp.pt"
    path.write_bytes(tiny_clevr_checkpoint.read_bytes())
    torch.manual_seed(0)
    refiner = CentreRefiner(64, window=16, channels=(8, 8), hidden=16)
    torch.nn.init.normal_(refiner.net[-1].weight, std=0.05)  # one that moves centres
    write_centre_refiner(path, refiner)
    sharp = Predictor.from_checkpoint(path, "cpu")
    assert sharp.canvas.size == 64 and sharp.q_canvas.size == 32
    upload = _frame_png(1)
    expected = sharp.infer(decode_image(upload, sharp.canvas)[None])[0]
    only_q = sharp.infer(decode_image(upload, sharp.q_canvas)[None])[0]
    with TestClient(make_app(sharp)) as client:
        response = client.post("/infer", files={"image": ("a.png", upload, "image/png")})
    assert response.status_code == 200, response.text
    served = np.array([o["position"] for o in response.json()["objects"]]).reshape(-1, 3)
    assert np.allclose(served, np.array([o.position for o in expected.objects]).reshape(-1, 3))
    assert len(served) == len(only_q.objects)
    if len(served):  # the refiner moved them off q's own answer
        assert not np.allclose(served, np.array([o.position for o in only_q.objects]))
