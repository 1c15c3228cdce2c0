"""Property-based tests of the HTTP API from its own OpenAPI schema: no input gives a 5xx.

(schemathesis's pytest plugin does not load under this pytest; the operations and their
hypothesis strategies are driven directly instead.)
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tests.service.conftest import make_app

OPERATIONS = [
    ("POST", "/infer"),
    ("POST", "/infer/batch"),
    ("POST", "/render"),
    ("GET", "/shapes"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
]


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
