"""A NUL character in a request is a 422 naming where, on SQLite and on PostgreSQL (which cannot store one), after
the caller was checked (401 first); text without one is served and stored."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import Engine

from api import create_app
from api.accounts.models import Role
from tests.api.accounts import bearer
from tests.api.test_api import OTHER, SITE, seed


@pytest.fixture
async def client(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    seed(engine)
    app = create_app(sites=[SITE, OTHER], engine=engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://facmon.test") as client:
        yield client


def fields(response: httpx.Response) -> list[str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return [e["field"] for e in response.json()["errors"] if "NUL character" in e["message"]]


async def test_a_nul_in_the_query_the_path_or_the_body_is_refused_naming_it(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    client.headers.update(bearer(engine, Role.ADMIN))
    assert fields(await client.get("/api/v1/kpis", params={"site": "000\x00"})) == ["query.site"]
    assert fields(await client.get("/api/v1/work-orders", params={"site": "north\x00"})) == ["query.site"]
    assert fields(await client.get("/api/v1/devices/north/e1%00")) == ["path.device"]
    note = {"to": "acknowledged", "note": "on my way\x00", "extra": [{"a": "ok"}, {"b\x00": "x"}]}
    assert fields(await client.post("/api/v1/work-orders/1/transitions", json=note)) == [
        "body.note",
        "body.extra[1].b\x00",
    ]
    assert fields(await client.post("/api/v1/auth/tokens", json={"name": "BMS\x00"})) == ["body.name"]
    assert fields(await client.post("/api/v1/auth/login", json={"username": "a\x00", "password": "p"})) == [
        "body.username"
    ]


async def test_without_a_token_it_is_401_first(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/fire-points/north%00")).status_code == 401
    assert (await client.post("/api/v1/auth/tokens", json={"name": "\x00"})).status_code == 401


async def test_text_without_a_nul_is_served_and_stored(client: httpx.AsyncClient, engine: Engine) -> None:
    client.headers.update(bearer(engine, Role.ADMIN))
    assert (await client.get("/api/v1/work-orders", params={"site": "north"})).json()["total"] == 2
    assert (await client.get("/api/v1/devices/north/e1")).status_code == 200
    made = await client.post("/api/v1/auth/tokens", json={"name": "BMS \\u0000 integration"})
    assert made.status_code == 201, made.text
    assert made.json()["name"] == "BMS \\u0000 integration"  # an escaped backslash, not a NUL
