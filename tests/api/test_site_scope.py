"""A technician sees and changes only work orders of their sites: every route that names a work order, found from the
app's own OpenAPI document (so a route added later is walked too), refuses a technician of site A a work order
of site B.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine

from api import create_app
from api.accounts.models import Role
from api.deps import get_clock
from facmon.kernel.clock import FakeClock
from tests.api.accounts import bearer
from tests.api.test_auth import KEY, NORTH, SOUTH, START, fault

# A valid body for each route that takes one, so that the refusal, not the body's validation, is what is tested.
# A new route with a body fails below until it has one here.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/v1/work-orders/{work_order_id}/transitions"): {"to": "acknowledged"},
    ("POST", "/api/v1/work-orders/{work_order_id}/follow-ups"): {"outcome": "satisfied"},
    ("POST", "/api/v1/work-orders/{work_order_id}/assign"): {"technician": "li-ming"},
    ("POST", "/api/v1/work-orders/{work_order_id}/notes"): {"note": "looked at it"},
}


def work_order_routes(app: FastAPI) -> list[tuple[str, str, str]]:
    """(method, path, parameter) of every operation with a path parameter naming a work order, from the document the
    app makes of its own routes (FastAPI's route tree is private; every route of ours is in the document)."""
    found = []
    for path, operations in app.openapi()["paths"].items():
        names = [name for name in re.findall(r"{(\w+)}", path) if "work_order" in name]
        found.extend((method.upper(), path, name) for method in operations for name in names)
    return sorted(found)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def app(engine: Engine, clock: FakeClock) -> FastAPI:
    app = create_app(sites=[NORTH, SOUTH], engine=engine, ack_secret=KEY)
    app.dependency_overrides[get_clock] = lambda: clock
    return app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://facmon.test") as client:
        yield client


def test_the_walk_finds_every_work_order_route(app: FastAPI) -> None:
    found = {(method, path) for method, path, _ in work_order_routes(app)}
    assert ("GET", "/api/v1/work-orders/{work_order_id}/deliveries") in found
    assert ("GET", "/api/v1/work-orders/{work_order_id}/on-call") in found
    assert len(found) >= 7


async def test_a_technician_of_one_site_is_refused_every_route_naming_another_sites_work_order(
    app: FastAPI, client: httpx.AsyncClient, engine: Engine, clock: FakeClock
) -> None:
    theirs = fault(engine, clock, SOUTH)  # a work order of site south
    li = bearer(engine, Role.TECHNICIAN, technician="li-ming")  # li-ming works at north only
    routes = work_order_routes(app)
    for method, path, name in routes:
        body = BODIES.get((method, path)) if method != "GET" else None
        url = path.replace(f"{{{name}}}", str(theirs))
        response = await client.request(method, url, json=body, headers=li)
        assert response.status_code == 403, (method, path, response.status_code, response.text)
        assert response.json()["detail"] == "li-ming does not work at south", (method, path)
    # The same routes answer for a work order of north, so the refusals above are about the site.
    mine = fault(engine, clock, NORTH)
    for method, path, name in routes:
        if method == "GET":
            url = path.replace(f"{{{name}}}", str(mine))
            assert (await client.get(url, headers=li)).status_code == 200, path
    assert NORTH.id != SOUTH.id
