"""GET /on-call and /work-orders/{id}/on-call over a real SQLite file, with the clock injected."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import Engine

from api import create_app
from api.accounts.models import Role
from api.deps import get_clock
from facmon.estate.site import Site
from facmon.kernel.clock import FakeClock
from facmon.kernel.db import make_engine
from facmon.kernel.model import Event, EventType
from rules.engine import evaluate, load_rules
from rules.store import apply_event
from tests.api.accounts import bearer

TECHNICIANS = [
    {"id": "li-ming", "name": "Li Ming", "phone": "+86 138 0000 0001", "disciplines": ["elevator"]},
    {"id": "wang-fang", "name": "Wang Fang", "phone": "+86 138 0000 0003", "disciplines": ["elevator", "security"]},
]
ELEVATOR = {"id": "e1", "kind": "elevator", "model": "elev-gb-a", "address": {"host": "127.0.0.1"}}
SITE = Site.model_validate(
    {
        "site": {"id": "north"},  # Asia/Shanghai, UTC+8
        "buildings": [{"id": "b1", "devices": [ELEVATOR]}],
        "technicians": TECHNICIANS,
        "supervisor": "wang-fang",
        "manager": {"name": "Chen Jing", "phone": "+86 138 0000 0009"},
        "on_call": {
            "elevator": {
                "technicians": ["li-ming", "wang-fang"],
                "every": "daily",
                "handoff": "08:30",
                "start": "2026-01-05",
            }
        },
    }
)
ELSEWHERE = Site.model_validate({"site": {"id": "south"}, "buildings": [{"id": "b1", "devices": [ELEVATOR]}]})
# 2026-01-06 09:00 Shanghai: the second day of the rota, Wang Fang's.
NOW = datetime(2026, 1, 6, 1, 0, tzinfo=UTC)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    for site in (SITE, ELSEWHERE):  # work order 1 at north, 2 at south (no site file given to the API)
        event = Event(ref=site.ref("e1"), ts=NOW, type=EventType.FAULT_RAISED, code="entrapment")
        apply_event(engine, event, evaluate(load_rules(), event, NOW), NOW)
    yield engine
    engine.dispose()


@pytest.fixture
async def client(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(sites=[SITE], engine=engine)
    app.dependency_overrides[get_clock] = lambda: FakeClock(NOW)
    headers = bearer(engine, Role.VIEWER)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://facmon.test", headers=headers
    ) as client:
        yield client


async def test_who_is_on_call_now_with_the_escalation_chain(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/on-call", params={"site": "north", "discipline": "elevator"})
    assert response.status_code == 200
    assert response.json() == {
        "site": "north",
        "discipline": "elevator",
        "at": "2026-01-06T01:00:00Z",
        "on_call": {
            "technician": {
                "id": "wang-fang",
                "name": "Wang Fang",
                "phone": "+86 138 0000 0003",
                "email": None,
                "disciplines": ["elevator", "security"],
            },
            "from": "2026-01-06T00:30:00Z",
            "until": "2026-01-07T00:30:00Z",
            "source": "rota",
        },
        "supervisor": {"name": "Wang Fang", "phone": "+86 138 0000 0003", "email": None, "technician": "wang-fang"},
        "manager": {"name": "Chen Jing", "phone": "+86 138 0000 0009", "email": None, "technician": None},
    }


@pytest.mark.parametrize(
    ("at", "technician"),
    [("2026-01-07T08:29:59+08:00", "wang-fang"), ("2026-01-07T08:30:00+08:00", "li-ming")],
)
async def test_at_picks_the_time_and_the_handoff_is_local(client: httpx.AsyncClient, at: str, technician: str) -> None:
    response = await client.get("/api/v1/on-call", params={"site": "north", "discipline": "elevator", "at": at})
    assert response.status_code == 200
    assert response.json()["on_call"]["technician"]["id"] == technician


async def test_a_discipline_without_a_rota_has_nobody_on_call(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/on-call", params={"site": "north", "discipline": "fire"})
    assert response.status_code == 200
    assert response.json()["on_call"] is None
    assert response.json()["manager"]["name"] == "Chen Jing"


async def test_an_unknown_site_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/on-call", params={"site": "nowhere", "discipline": "elevator"})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert "nowhere" in response.json()["detail"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"site": "north", "discipline": "plumbing"}, "discipline"),
        ({"site": "north", "discipline": "elevator", "at": "2026-01-06T09:00:00"}, "at"),  # no offset
        ({"site": "north", "discipline": "elevator", "at": "tomorrow"}, "at"),
        ({"discipline": "elevator"}, "site"),
    ],
)
async def test_bad_input_is_422_naming_the_field(client: httpx.AsyncClient, params: dict[str, str], field: str) -> None:
    response = await client.get("/api/v1/on-call", params=params)
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == [f"query.{field}"]


async def test_a_work_orders_on_call_is_its_disciplines_technician_now(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/work-orders/1/on-call")
    assert response.status_code == 200
    body = response.json()
    assert (body["work_order_id"], body["site"], body["discipline"], body["at"]) == (
        1,
        "north",
        "elevator",
        "2026-01-06T01:00:00Z",
    )
    assert body["on_call"]["technician"]["id"] == "wang-fang"
    assert body["supervisor"]["technician"] == "wang-fang"


@pytest.mark.parametrize(("path", "status"), [("999", 404), ("2", 404), ("0", 422)])
async def test_unknown_work_orders_and_sites_without_a_file_are_404(
    client: httpx.AsyncClient, path: str, status: int
) -> None:
    response = await client.get(f"/api/v1/work-orders/{path}/on-call")
    assert response.status_code == status
