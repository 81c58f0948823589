"""Every error is an RFC 9457 problem document (api.errors): validation, unknown routes and methods, exceptions with
headers, and unhandled errors, which answer 500 without internals and are logged with the request id.

The routes under /test are added to the real app here, so the checks do not depend on what the API's own routes
validate or who may call them.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Literal

import httpx
import pytest
import structlog
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Engine

from api import create_app
from api.errors import MAX_ERROR_CHARS, MAX_TRACEBACK_CHARS
from api.schemas import ProblemError
from facmon.shell import logs
from tests.api.test_api import SITE

PROBLEM = "application/problem+json"
SECRET_INTERNALS = "connection string postgres://admin:hunter2@db"


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: Literal["acknowledged", "on_site"]
    actor: str


def _locked() -> None:
    raise HTTPException(401, detail="sign in first", headers={"WWW-Authenticate": "Bearer"})


def _slow_down() -> None:
    raise HTTPException(429, detail="too many attempts", headers={"Retry-After": "30"})


extra_routes = APIRouter(prefix="/test")


@extra_routes.post("/items")
def post_item(body: Body, limit: Annotated[int, Query(ge=1, le=500)] = 10) -> dict[str, str]:
    return {"to": body.to}


@extra_routes.get("/range")
def bad_range() -> None:
    # As api.routes.fire_alarms does for a period that ends before it starts.
    error = {"type": "value_error", "loc": ("query", "to"), "msg": "'to' must be after 'from'", "input": "2026"}
    raise RequestValidationError([error])


@extra_routes.get("/boom")
def boom() -> None:
    raise RuntimeError(SECRET_INTERNALS)


@extra_routes.get("/huge")
def huge() -> None:
    # A big local and a deep stack: what a renderer printing locals would spend seconds and megabytes on.
    payload = "x" * 5_000_000

    def down(depth: int) -> None:
        if depth == 0:
            raise ValueError(payload)
        down(depth - 1)

    down(200)


@extra_routes.get("/locked", dependencies=[Depends(_locked)])
def locked() -> None:
    return None


@extra_routes.get("/busy", dependencies=[Depends(_slow_down)])
def busy() -> None:
    return None


@extra_routes.get("/conflict")
def conflict() -> None:
    raise ProblemError(409, "Busy", "the work order is being changed", current_status="open")


@pytest.fixture
def app(engine: Engine) -> FastAPI:
    app = create_app(sites=[SITE], engine=engine)
    app.include_router(extra_routes)
    return app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://facmon.test") as client:
        yield client


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    problem: dict[str, object] = response.json()
    assert problem["status"] == status
    assert isinstance(problem["title"], str)
    assert isinstance(problem["detail"], str)
    assert problem["type"] == "about:blank"
    return problem


async def test_validation_names_every_bad_field_in_words(client: httpx.AsyncClient) -> None:
    response = await client.post("/test/items?limit=501", json={"to": "lost", "actor": "wang", "extra": 1})
    problem = assert_problem(response, 422)
    assert problem["title"] == "Invalid request"
    assert problem["errors"] == [
        {"field": "query.limit", "message": "Input should be less than or equal to 500", "type": "less_than_equal"},
        {"field": "body.to", "message": "Input should be 'acknowledged' or 'on_site'", "type": "literal_error"},
        {"field": "body.extra", "message": "Extra inputs are not permitted", "type": "extra_forbidden"},
    ]
    assert problem["detail"] == (
        "query.limit: Input should be less than or equal to 500; body.to: Input should be 'acknowledged' or "
        "'on_site'; body.extra: Extra inputs are not permitted"
    )
    assert "lost" not in response.text  # the input is not echoed back


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (b'{"to": "on_site",', "body[17]"),  # cut short: where the JSON breaks
        (b"", "body"),  # missing
        (b"[1, 2]", "body"),  # not an object
    ],
)
async def test_malformed_bodies_are_422_naming_the_body(client: httpx.AsyncClient, content: bytes, field: str) -> None:
    response = await client.post("/test/items", content=content, headers={"content-type": "application/json"})
    problem = assert_problem(response, 422)
    assert [e["field"] for e in problem["errors"]] == [field]  # type: ignore[attr-defined]


async def test_a_check_a_route_raises_as_validation_error_has_the_same_shape(client: httpx.AsyncClient) -> None:
    problem = assert_problem(await client.get("/test/range"), 422)
    assert problem["errors"] == [{"field": "query.to", "message": "'to' must be after 'from'", "type": "value_error"}]
    assert problem["detail"] == "query.to: 'to' must be after 'from'"


async def test_unknown_route_is_404_problem(client: httpx.AsyncClient) -> None:
    problem = assert_problem(await client.get("/api/v1/nothing-here"), 404)
    assert problem["title"] == "Not Found"
    assert problem["detail"] == "nothing at /api/v1/nothing-here"


async def test_wrong_method_is_405_problem_keeping_allow(client: httpx.AsyncClient) -> None:
    response = await client.delete("/api/v1/health")
    problem = assert_problem(response, 405)
    assert response.headers["allow"] == "GET"
    assert problem["detail"] == "DELETE is not allowed on /api/v1/health; allowed: GET"


@pytest.mark.parametrize(
    ("path", "status", "header", "value"),
    [("/test/locked", 401, "www-authenticate", "Bearer"), ("/test/busy", 429, "retry-after", "30")],
)
async def test_http_exceptions_from_dependencies_keep_their_headers(
    client: httpx.AsyncClient, path: str, status: int, header: str, value: str
) -> None:
    response = await client.get(path)
    problem = assert_problem(response, status)
    assert response.headers[header] == value
    assert problem["detail"] in ("sign in first", "too many attempts")


async def test_problem_error_keeps_its_extensions(client: httpx.AsyncClient) -> None:
    problem = assert_problem(await client.get("/test/conflict"), 409)
    assert problem == {
        "type": "about:blank",
        "title": "Busy",
        "status": 409,
        "detail": "the work order is being changed",
        "current_status": "open",
    }


async def test_unhandled_error_is_500_without_internals_and_logged_with_the_request_id(
    client: httpx.AsyncClient,
) -> None:
    with structlog.testing.capture_logs() as logs:
        response = await client.get("/test/boom", headers={"X-Request-ID": "req-42"})
    problem = assert_problem(response, 500)
    assert problem["title"] == "Internal error"
    assert response.headers["x-request-id"] == "req-42"
    for leak in ("hunter2", "RuntimeError", "Traceback", "boom"):
        assert leak not in response.text
    errors = [e for e in logs if e["event"] == "unhandled error"]
    assert len(errors) == 1
    assert (errors[0]["request_id"], errors[0]["path"], errors[0]["log_level"]) == ("req-42", "/test/boom", "error")
    assert SECRET_INTERNALS in errors[0]["error"]
    # The server answers the next request as usual.
    assert (await client.get("/api/v1/health")).status_code == 200


async def test_a_huge_error_is_logged_in_bounded_size_without_locals(client: httpx.AsyncClient) -> None:
    with structlog.testing.capture_logs() as logs:
        response = await client.get("/test/huge")
    assert_problem(response, 500)
    (entry,) = [e for e in logs if e["event"] == "unhandled error"]
    assert "exc_info" not in entry  # formatted by api.errors, never by a renderer that may print locals
    assert entry["error"].startswith("ValueError: xxx")
    assert len(entry["error"]) < MAX_ERROR_CHARS + 100
    assert entry["traceback"].endswith("raise ValueError(payload)\n")  # the innermost frames are kept
    assert "in huge" not in entry["traceback"]  # the outer ones (200 calls up) are not
    assert len(entry["traceback"]) <= MAX_TRACEBACK_CHARS + 100
    assert (await client.get("/api/v1/health")).status_code == 200


def test_configured_logging_renders_exceptions_plainly_and_bounded() -> None:
    stream = io.StringIO()
    try:
        logs.configure("INFO", json_lines=True)
        logging.getLogger().handlers[0].setStream(stream)  # type: ignore[attr-defined]
        secret_local = "y" * 1_000_000
        try:
            raise RuntimeError("z" * 1_000_000)
        except RuntimeError:
            structlog.get_logger("test").exception("failed", note=secret_local)
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
    line = json.loads(stream.getvalue())
    assert line["event"] == "failed"
    assert len(line["note"]) < logs.MAX_VALUE_CHARS + 100
    assert len(line["exception"]) < logs.MAX_VALUE_CHARS + 100
    assert "secret_local" not in line["exception"]  # no locals


async def test_request_id_is_echoed_or_made(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/health", headers={"X-Request-ID": "abc-1"})).headers["x-request-id"] == "abc-1"
    made = (await client.get("/api/v1/health")).headers["x-request-id"]
    assert len(made) == 32
    odd = (await client.get("/api/v1/health", headers={"X-Request-ID": "x" * 500})).headers["x-request-id"]
    assert odd != "x" * 500  # too long (or odd characters): replaced, not logged as given


async def test_openapi_states_problem_responses(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert "ValidationError" not in schemas
    assert schemas["ValidationProblem"]["required"] == ["title", "status", "detail", "errors"]
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert PROBLEM in responses["500"]["content"], (method, path)
            if "422" in responses:
                assert responses["422"]["content"] == {
                    PROBLEM: {"schema": {"$ref": "#/components/schemas/ValidationProblem"}}
                }
            if "requestBody" in operation:
                assert PROBLEM in responses["413"]["content"], (method, path)
    post = spec["paths"]["/test/items"]["post"]["responses"]
    assert {"200", "413", "422", "500"} <= set(post)
