"""Schemathesis over every operation of the app's own OpenAPI document, in process, over a seeded SQLite database.

Generated requests, valid and invalid, must never get a 500, and every answer must match what the document says
(status code, content type and body schema): bad input is a documented 4xx problem, never a crash. Then, without a
token, every operation that asks for one must answer 401 as a problem document, and the open ones stay open.

Tokens: `auth_headers` signs in as an admin made in the test database (tests.api.accounts), the same tokens the API
issues from POST /api/v1/auth/login or /api/v1/auth/tokens; an admin reaches every operation, so the fuzzing gets past
the role checks to the routes' own validation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

import httpx
import pytest
import schemathesis
from anyio.from_thread import start_blocking_portal
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis import Case, GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import Engine

from api import create_app
from api.accounts.models import Role
from api.deps import get_clock
from facmon.kernel.clock import FakeClock
from facmon.kernel.db import make_engine
from tests.api.accounts import bearer
from tests.api.test_api import NOW, OTHER, SITE, seed
from tests.api.test_auth import KEY

PROBLEM = "application/problem+json"
BASE_URL = "http://facmon.test"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Small and derandomized: the same cases every run, the whole module in well under a minute.
FUZZ = settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    seed(engine)  # three work orders on two sites
    yield engine
    engine.dispose()


@pytest.fixture
def app(engine: Engine) -> FastAPI:
    app = create_app(sites=[SITE, OTHER], engine=engine, ack_secret=KEY)
    app.dependency_overrides[get_clock] = lambda: FakeClock(NOW)
    return app


@pytest.fixture
def auth_headers(engine: Engine) -> dict[str, str]:
    return bearer(engine, Role.ADMIN)


@pytest.fixture
def api_schema(app: FastAPI) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.fixture
def valid_only_schema(app: FastAPI) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    schema.config.generation.update(modes=[GenerationMode.POSITIVE])
    return schema


fuzzed = schemathesis.pytest.from_fixture("api_schema")
fuzzed_valid_only = schemathesis.pytest.from_fixture("valid_only_schema")


Send = Callable[..., httpx.Response]


@pytest.fixture
def send(app: FastAPI) -> Iterator[Send]:
    """httpx over the in-process ASGI transport, as the other API tests call the app, from these sync tests."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # a crash is a 500 to check, not a raise
    with start_blocking_portal() as portal:
        client = httpx.AsyncClient(transport=transport, base_url=BASE_URL)
        try:
            yield lambda **kwargs: portal.call(partial(client.request, **kwargs))
        finally:
            portal.call(client.aclose)


def call(send: Send, case: Case, headers: dict[str, str]) -> httpx.Response:
    # The case as request arguments; sent with httpx rather than schemathesis's own requests transport.
    kwargs = case.as_transport_kwargs(base_url=BASE_URL, headers=dict(headers))
    data = kwargs.pop("data", None)
    body = {"content": data} if isinstance(data, str | bytes) else {} if data is None else {"data": data}
    if kwargs.get("cookies"):  # the API reads none, but a generated case may carry some
        kwargs["headers"]["Cookie"] = "; ".join(f"{k}={v}" for k, v in kwargs["cookies"].items())
    fields = ("method", "url", "params", "headers", "json")
    response = send(**{k: v for k, v in kwargs.items() if k in fields}, **body)
    case.validate_response(response, checks=CHECKS, headers=headers)
    return response


@fuzzed.parametrize()
@FUZZ
def test_no_server_errors_and_answers_match_the_document(case: Case, send: Send, auth_headers: dict[str, str]) -> None:
    call(send, case, auth_headers)


@fuzzed_valid_only.parametrize()
@settings(FUZZ, max_examples=10)
def test_without_a_token_only_401(case: Case, send: Send) -> None:
    response = call(send, case, {})
    if case.operation.definition.raw.get("security"):
        assert response.status_code == 401, response.text
        assert response.headers["content-type"] == PROBLEM
        assert response.headers["www-authenticate"] == "Bearer"
