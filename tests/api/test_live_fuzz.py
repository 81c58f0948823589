"""Schemathesis against the real HTTP server (uvicorn on a loopback port) as every role: over every operation of the
OpenAPI document, generated requests, valid and invalid, never get a 5xx, and after each one the server still
answers a plain request. A request the database cannot hold (an id past 2**63-1, an offset of 2**66) must be a 422
naming the parameter; such a request used to end in a 500 while the event loop spent seconds logging it.

`test_openapi_fuzz` holds the answers to the document in process; this one is about staying up, over the wire.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case
from sqlalchemy import Engine

from api import create_app
from api.accounts.models import Role
from api.deps import get_clock
from api.schemas import MAX_ID, MAX_OFFSET
from facmon.kernel.clock import FakeClock
from facmon.kernel.db import make_engine
from tests.api.accounts import bearer
from tests.api.test_auth import KEY, NORTH, SOUTH, START, fault
from tests.databases import Databases
from tests.support import serving_in_thread

# Each role's user; the technician works at NORTH (li-ming is its technician).
ROLES: dict[Role, dict[str, str]] = {
    Role.ADMIN: {},
    Role.ENGINEER: {},
    Role.TECHNICIAN: {"technician": "li-ming"},
    Role.VIEWER: {},
    Role.REPORTER: {},
}
# Few and derandomized: the same cases every run, every role over every operation in well under a minute.
LIVE = settings(
    max_examples=6,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
# Generous: a frozen server fails the test by this, a slow machine does not.
HTTP_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def live_engine(module_databases: Databases) -> Iterator[Engine]:
    engine = make_engine(module_databases.url())
    clock = FakeClock(START)
    for site, code in ((NORTH, "2"), (NORTH, "entrapment"), (SOUTH, "3")):
        fault(engine, clock, site, code)
        clock.advance(60)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def live_server(live_engine: Engine) -> Iterator[str]:
    app = create_app(sites=[NORTH, SOUTH], engine=live_engine, ack_secret=KEY)
    app.dependency_overrides[get_clock] = lambda: FakeClock(START)
    with serving_in_thread(app, name="live-fuzz-api") as url:
        yield url


@pytest.fixture(scope="module")
def live_http(live_server: str) -> Iterator[httpx.Client]:
    # A connection per request: on a kept-alive loopback connection each answer waited ~45 ms (Nagle's algorithm
    # against delayed ACKs), which made this module take minutes.
    with httpx.Client(base_url=live_server, timeout=HTTP_TIMEOUT_S, headers={"Connection": "close"}) as client:
        yield client


@pytest.fixture(scope="module")
def live_schema(live_server: str) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_url(f"{live_server}/openapi.json")
    # The coverage phase's boundary values (dozens per operation) cost minutes over the wire; the bounds of every
    # integer are checked one by one below instead.
    schema.config.phases.coverage.enabled = False
    return schema


class Callers:
    """Headers of each role in turn (and none), one role per generated request: every role over every operation."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.turn = 0
        self.tokens: dict[Role, dict[str, str]] = {}

    def next(self) -> tuple[Role | None, dict[str, str]]:
        order: list[Role | None] = [*ROLES, None]
        role = order[self.turn % len(order)]
        self.turn += 1
        return role, self.headers(role)

    def headers(self, role: Role | None, *, fresh: bool = False) -> dict[str, str]:
        if role is None:
            return {}
        if fresh or role not in self.tokens:
            self.tokens[role] = bearer(self.engine, role, **ROLES[role])
        return self.tokens[role]


@pytest.fixture(scope="module")
def callers(live_engine: Engine) -> Callers:
    return Callers(live_engine)


live = schemathesis.pytest.from_fixture("live_schema")


def send(http: httpx.Client, case: Case, headers: dict[str, str]) -> httpx.Response:
    kwargs = case.as_transport_kwargs(base_url=str(http.base_url), headers=headers)
    data = kwargs.pop("data", None)
    body: dict[str, Any] = (
        {"content": data} if isinstance(data, str | bytes) else {} if data is None else {"data": data}
    )
    if kwargs.get("cookies"):  # the API reads none, but a generated case may carry some
        kwargs["headers"]["Cookie"] = "; ".join(f"{k}={v}" for k, v in kwargs["cookies"].items())
    fields = ("method", "url", "params", "headers", "json")
    return http.request(**{k: v for k, v in kwargs.items() if k in fields}, **body)


@live.parametrize()
@LIVE
def test_no_role_gets_a_server_error_and_the_server_keeps_answering(
    case: Case, live_http: httpx.Client, callers: Callers
) -> None:
    role, headers = callers.next()
    try:
        response = send(live_http, case, headers)
        if response.status_code == 401 and role is not None:  # an earlier case revoked the token (logout, DELETE)
            response = send(live_http, case, callers.headers(role, fresh=True))
    except httpx.LocalProtocolError:  # a header no HTTP client sends (e.g. "Bearer "): it never reaches the server
        return
    assert response.status_code < 500, (role, case.method, case.formatted_path, response.status_code, response.text)
    assert live_http.get("/api/v1/health").status_code == 200


def _integer_parameters(spec: dict[str, Any]) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            for parameter in operation.get("parameters", []):
                if parameter["schema"].get("type") == "integer":
                    yield method.upper(), path, parameter["in"], parameter


def test_every_integer_parameter_has_bounds_the_database_can_hold(live_http: httpx.Client) -> None:
    found = list(_integer_parameters(live_http.get("/openapi.json").json()))
    assert len(found) >= 10  # work order ids, alarm and token ids, offsets, limits, points, ...
    for method, path, _, parameter in found:
        schema = parameter["schema"]
        assert schema.get("maximum", MAX_ID + 1) <= MAX_ID, (method, path, parameter["name"])
        assert schema.get("minimum", -1) >= 0, (method, path, parameter["name"])
    assert {p["schema"]["maximum"] for *_, p in found if p["name"] == "offset"} == {MAX_OFFSET}


@pytest.mark.parametrize("value", [MAX_ID + 1, 73786976294838206464, -(2**63) - 1])
def test_an_integer_out_of_range_is_a_422_naming_it(live_http: httpx.Client, live_engine: Engine, value: int) -> None:
    headers = bearer(live_engine, Role.ADMIN)
    spec = live_http.get("/openapi.json").json()
    for method, path, where, parameter in _integer_parameters(spec):
        name = parameter["name"]
        url = path.replace(f"{{{name}}}", str(value)).replace("{site}", "north").replace("{device}", "e1")
        params = {name: str(value)} if where == "query" else {}
        response = live_http.request(method, url, params=params, headers=headers, json={})
        assert response.status_code == 422, (method, path, name, response.status_code, response.text)
        assert f"{where}.{name}" in [e["field"] for e in response.json()["errors"]], (method, path, response.text)
    assert live_http.get("/api/v1/health").status_code == 200


def _is_time(schema: dict[str, Any]) -> bool:
    return schema.get("format") == "date-time" or any(_is_time(s) for s in schema.get("anyOf", []))


# Values for the other parameters an operation requires, so that only the time is wrong.
REQUIRED = {"site": "north", "discipline": "elevator", "field": "speed"}


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59", "1899-12-31T23:59:59Z"])
def test_a_time_out_of_range_is_a_422_naming_it(live_http: httpx.Client, live_engine: Engine, value: str) -> None:
    """Year 1 or 9999 with a UTC offset cannot be turned into UTC; such a time ended in a 500 before."""
    headers = bearer(live_engine, Role.ADMIN)
    spec = live_http.get("/openapi.json").json()
    checked = 0
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            parameters = operation.get("parameters", [])
            for parameter in (p for p in parameters if p["in"] == "query" and _is_time(p["schema"])):
                params = {
                    p["name"]: REQUIRED[p["name"]] for p in parameters if p.get("required") and p["in"] == "query"
                }
                url = path.replace("{site}", "north").replace("{device}", "e1")
                response = live_http.request(method, url, params=params | {parameter["name"]: value}, headers=headers)
                assert response.status_code == 422, (method, path, parameter["name"], response.text)
                fields = [e["field"] for e in response.json()["errors"]]
                assert f"query.{parameter['name']}" in fields, (method, path, response.text)
                checked += 1
    assert checked >= 10  # from and to of work orders' neighbours: audit, fire alarms and checks, KPIs, history, ...
    visit = {"started_at": value, "ended_at": "2026-03-02T00:45:00Z"}
    response = live_http.post("/api/v1/devices/north/e1/maintenance-visits", json=visit, headers=headers)
    assert (response.status_code, response.json()["errors"][0]["field"]) == (422, "body.started_at")
