"""Property-based tests of the HTTP API from its own OpenAPI schema.

The schemathesis CLI with `--checks all` against the real server, without and with an API
key (tests/service/schemathesis.toml says why uploads may be 400/413/415); then, in-process,
each operation driven directly (schemathesis's pytest plugin does not load under this
pytest) for server errors; and the schema's exactness.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tests.service.conftest import make_app
from tests.service.server import serving

CONFIG = Path(__file__).resolve().parent / "schemathesis.toml"
OPERATIONS = [
    ("POST", "/infer"),
    ("POST", "/infer/batch"),
    ("POST", "/render"),
    ("GET", "/shapes"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
]


@pytest.mark.parametrize("key", [None, "s3cret"], ids=["no key", "with a key"])
def test_schemathesis_all_checks_pass(tiny_checkpoint, key, tmp_path):
    run_all_checks(tiny_checkpoint, key, tmp_path)


def test_schemathesis_all_checks_pass_in_a_world_with_attributes(tiny_clevr_checkpoint, tmp_path):
    """The attributes' enums and `attribute_probs` in the schema: every scene it promises
    renders, and every answer conforms to it."""
    run_all_checks(tiny_clevr_checkpoint, None, tmp_path)


def run_all_checks(checkpoint: Path, key: str | None, tmp_path: Path) -> None:
    env = {"AIR3D_API_KEY": key} if key else {}
    headers = ["-H", f"X-API-Key: {key}"] if key else []
    with serving(checkpoint, **env) as url:
        result = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "run",
             "--checks", "all", "--max-examples", "30", "--seed", "1", *headers,
             f"{url}/openapi.json"],
            capture_output=True, text=True, timeout=300, cwd=tmp_path,  # its cache goes there
        )  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:]
    assert " passed" in result.stdout and "failure" not in result.stdout


@pytest.fixture(scope="module")
def api_schema(predictor):
    return schemathesis.openapi.from_asgi("/openapi.json", make_app(predictor))


def test_every_operation_is_covered(api_schema):
    found = {(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()}
    assert found == set(OPERATIONS)


@pytest.mark.parametrize("method, path", OPERATIONS)
def test_no_input_gives_a_server_error(api_schema, method, path):
    operation = api_schema[path][method]
    statuses = []

    @given(case=operation.as_strategy())
    @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case):
        response = case.call_and_validate(checks=[not_a_server_error])
        statuses.append(response.status_code)

    check()
    assert statuses and all(status < 500 for status in statuses), statuses


def openapi(predictor, **settings) -> dict:
    with TestClient(make_app(predictor, **settings)) as client:
        return client.get("/openapi.json").json()


def test_api_key_is_declared_only_when_set(predictor):
    plain = openapi(predictor)
    assert "securitySchemes" not in plain.get("components", {})
    assert all("401" not in op["responses"] for path in plain["paths"].values()
               for op in path.values())  # fmt: skip
    keyed = openapi(predictor, api_key="s3cret")
    assert keyed["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"
    assert "401" in keyed["paths"]["/infer"]["post"]["responses"]
    assert "security" not in keyed["paths"]["/healthz"]["get"]


def test_schema_is_exact_for_the_served_model(predictor):
    schema = openapi(predictor, queue_size=8)
    components = schema["components"]["schemas"]
    obj = components["ObjectIn"]["properties"]
    assert obj["shape"]["enum"] == list(predictor.shapes.names)
    ws = predictor.world.workspace
    x, _, z = obj["position"]["prefixItems"]
    assert (x["minimum"], x["maximum"], z["minimum"], z["maximum"]) == (*ws.x, *ws.z)
    assert obj["position"]["minItems"] == obj["position"]["maxItems"] == 3
    assert obj["yaw_deg"]["maximum"] == -obj["yaw_deg"]["minimum"]
    # as many objects as an answer may hold (what /infer returns, /render takes)
    assert components["SceneIn"]["properties"]["objects"]["maxItems"] == predictor.max_objects
    assert components["SceneIn"]["examples"]
    images = components["Body_infer_batch_infer_batch_post"]["properties"]["images"]
    assert (images["minItems"], images["maxItems"]) == (1, 8)
    for path, codes in {"/infer": "400 413 415 422 503", "/render": "400 413 422 503"}.items():
        responses = schema["paths"][path]["post"]["responses"]
        for code in codes.split():
            assert responses[code]["content"]["application/json"]["schema"]["$ref"].endswith(
                "/ErrorOut"
            ), (path, code)
