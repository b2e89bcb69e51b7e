"""Schemathesis: property-based requests from the API's own OpenAPI schema, for every endpoint.

No response may be a server error, and every response must match the schema it declares
(status, content type, body); a refusal must be a documented 4xx. `/v1/health` answers 503 by
design over this fixture lake (its bars are old and no broker runs), so there a 503 is checked
against the schema instead of counted as a failure. The number of requests is printed
(`pytest -s`) and must reach a floor.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance, status_code_conformance

from api.app import create_app
from core.settings import Settings
from tests.support import dashboard_lake

REQUESTS: dict[str, int] = {}


def _app():  # type: ignore[no-untyped-def]
    import shutil
    import tempfile

    lake = Path(tempfile.mkdtemp(prefix="api-schema-")) / "lake"
    dashboard_lake.build(lake)
    app = create_app(Settings().with_overrides(lake_path=str(lake), kafka_bootstrap_servers="127.0.0.1:9"))
    app.state.cleanup = lambda: shutil.rmtree(lake.parent, ignore_errors=True)
    return app


APP = _app()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(APP) as c:  # runs the lifespan: the lake snapshot
        yield c
    APP.state.cleanup()


OPERATIONS = [result.ok() for result in schema.get_all_operations()]


def _check(case: schemathesis.Case, client: TestClient) -> None:
    response = case.call(session=client)
    REQUESTS[case.operation.label] = REQUESTS.get(case.operation.label, 0) + 1
    if case.path == "/v1/health" and response.status_code == 503:
        case.validate_response(response, checks=[status_code_conformance])
        return
    assert response.status_code < 500, f"{case.operation.label} -> {response.status_code}: {response.text[:300]}"
    # Not `positive_data_acceptance`: a request the schema allows can still be refused for what the
    # schema cannot say (start after end, a range over the row cap, SQL that does not parse); those
    # refusals are the documented 400/413, which `status_code_conformance` checks.
    case.validate_response(response, excluded_checks=[positive_data_acceptance])


# One test per operation, by its label. (Not `schema.parametrize()`: its items share one node id,
# and pytest-xdist, which schedules by node id, would run only one of them.)
@pytest.mark.parametrize("operation", OPERATIONS, ids=[op.label for op in OPERATIONS])
def test_no_server_errors_and_responses_match_the_schema(operation: Any, client: TestClient) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    def run(case: schemathesis.Case) -> None:
        _check(case, client)

    run()


def test_every_endpoint_was_exercised() -> None:
    total = sum(REQUESTS.values())
    print(f"\nschemathesis: {total} requests: " + ", ".join(f"{k} {v}" for k, v in sorted(REQUESTS.items())))
    assert set(REQUESTS) >= {"GET /v1/symbols", "GET /v1/candles", "GET /v1/trades", "GET /v1/latest",
                             "GET /v1/volatility", "GET /v1/health", "POST /v1/sql"}  # fmt: skip
    assert total >= 150
