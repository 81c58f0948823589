"""Maintenance visits through the API: recorded by hand by admins, engineers and technicians (at their sites), with
the principal as actor and an audit entry; listed newest first; a recorded visit resolves the elevator's open
`maintenance_overdue` work order. A real SQLite file; the overdue work order is opened by the monitor on a fake clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from api import create_app
from api.accounts.models import AuditEntry, Role
from api.auth import FIELD_WORK, OPERATIONS, REPORTING, policy
from api.deps import get_clock
from api.routes import maintenance
from facmon.estate.site import Site
from facmon.kernel.clock import FakeClock
from facmon.workorders.tables import WorkOrder
from rules.maintenance_visits import MaintenanceMonitor
from tests.api.accounts import bearer

T0 = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
# 16 days on: both elevators' first 15-day cycle ran out a day ago.
NOW = T0 + timedelta(days=16)
PROBLEM = "application/problem+json"


def site(site_id: str, technician: str) -> Site:
    return Site.model_validate(
        {
            "site": {"id": site_id},
            "buildings": [
                {
                    "id": "b1",
                    "devices": [
                        {"id": "e1", "kind": "elevator", "model": "elev-gb-a", "address": {"host": "127.0.0.1"}},
                        {"id": "e2", "kind": "elevator", "model": "elev-gb-a", "address": {"host": "127.0.0.1"}},
                        {"id": "gate-1", "kind": "gate", "model": "barrier-a"},
                    ],
                }
            ],
            "technicians": [
                {"id": technician, "name": technician.title(), "phone": "13800000001", "disciplines": ["elevator"]}
            ],
        }
    )


S1 = site("s1", "li")
S2 = site("s2", "zhao")


@pytest.fixture
def app(engine: Engine) -> FastAPI:
    app = create_app(sites=[S1, S2], engine=engine)
    if not any(getattr(r, "path", "").endswith("/maintenance-visits") for r in app.routes):  # until api.app has it
        app.include_router(
            maintenance.router, prefix="/api/v1", dependencies=[policy(read=OPERATIONS | REPORTING, write=FIELD_WORK)]
        )
    app.dependency_overrides[get_clock] = lambda: FakeClock(NOW)
    return app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://facmon.test/api/v1") as client:
        yield client


def z(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


async def overdue(engine: Engine) -> dict[str, WorkOrder]:
    """Open the overdue work orders as the rules worker would have: scheduled at T0, overdue at T0 + 15 days."""
    clock = FakeClock(T0)
    monitor = MaintenanceMonitor(engine, clock, sites=[S1, S2])
    await monitor.tick()
    clock.advance(NOW - T0)
    assert len(await monitor.tick()) == 4
    with Session(engine) as session:
        rows = session.execute(select(WorkOrder).where(WorkOrder.site == "s1")).scalars()
        return {wo.device: wo for wo in rows}


async def test_a_technician_records_a_visit_at_their_site_and_it_resolves_the_overdue_work_order(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    orders = await overdue(engine)
    li = bearer(engine, Role.TECHNICIAN, technician="li")
    start = NOW - timedelta(hours=2)
    body = {"started_at": z(start), "ended_at": z(start + timedelta(minutes=45)), "note": "half-monthly items"}
    response = await client.post("/devices/s1/e1/maintenance-visits", json=body, headers=li)
    assert response.status_code == 201, response.text
    visit = response.json()
    assert {k: v for k, v in visit.items() if k != "id"} == {
        "site": "s1",
        "building": "b1",
        "device": "e1",
        "started_at": z(start),
        "ended_at": z(start + timedelta(minutes=45)),
        "technician": "li",  # the technician recording it, by default
        "source": "api",
        "actor": "li",
        "note": "half-monthly items",
        "recorded_at": z(NOW),
    }
    with Session(engine) as session:
        e1 = session.get(WorkOrder, orders["e1"].id)
        e2 = session.get(WorkOrder, orders["e2"].id)
        assert e1 is not None
        assert e2 is not None
        assert (e1.status, e1.on_site_at, e1.resolved_at) == ("resolved", start, start + timedelta(minutes=45))
        assert e2.status == "open"  # e2 was not visited
        [entry] = session.scalars(select(AuditEntry).where(AuditEntry.action == "maintenance_visit.create")).all()
        assert (entry.actor, entry.role, entry.target_type, entry.target_id, entry.at) == (
            "li",
            "technician",
            "maintenance_visit",
            str(visit["id"]),
            NOW,
        )
        assert entry.after is not None
        assert entry.after["technician"] == "li"
    listed = await client.get("/devices/s1/e1/maintenance-visits", headers=li)
    assert (listed.status_code, listed.json()) == (200, [visit])


async def test_an_engineer_names_the_technician_and_the_list_is_newest_first(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    ann = bearer(engine, Role.ENGINEER, username="ann")
    ids = []
    for days in (10, 3, 7):
        start = NOW - timedelta(days=days)
        body = {"started_at": z(start), "ended_at": z(start + timedelta(hours=1)), "technician": "li"}
        response = await client.post("/devices/s1/e2/maintenance-visits", json=body, headers=ann)
        assert response.status_code == 201, response.text
        assert (response.json()["actor"], response.json()["technician"]) == ("ann", "li")
        ids.append(response.json()["id"])
    # Without ended_at: it ends now.
    late = await client.post("/devices/s1/e2/maintenance-visits", json={"started_at": z(NOW)}, headers=ann)
    assert (late.status_code, late.json()["ended_at"], late.json()["technician"]) == (201, z(NOW), None)
    listed = (await client.get("/devices/s1/e2/maintenance-visits", headers=ann)).json()
    assert [v["id"] for v in listed] == [late.json()["id"], ids[1], ids[2], ids[0]]
    window = {"from": z(NOW - timedelta(days=8)), "to": z(NOW - timedelta(days=1)), "limit": "1"}
    page = (await client.get("/devices/s1/e2/maintenance-visits", params=window, headers=ann)).json()
    assert [v["id"] for v in page] == [ids[1]]
    assert (await client.get("/devices/s1/e1/maintenance-visits", headers=ann)).json() == []


async def test_who_may_record_and_read(client: httpx.AsyncClient, engine: Engine) -> None:
    body = {"started_at": z(NOW - timedelta(hours=1))}
    zhao = bearer(engine, Role.TECHNICIAN, technician="zhao")
    viewer = bearer(engine, Role.VIEWER)
    reporter = bearer(engine, Role.REPORTER)
    admin = bearer(engine, Role.ADMIN)
    # A technician of another estate: neither record nor read there.
    for method in ("POST", "GET"):
        response = await client.request(method, "/devices/s1/e1/maintenance-visits", json=body, headers=zhao)
        assert (response.status_code, response.headers["content-type"]) == (403, PROBLEM), method
    assert (await client.post("/devices/s2/e1/maintenance-visits", json=body, headers=zhao)).status_code == 201
    for reader in (viewer, reporter):
        assert (await client.post("/devices/s1/e1/maintenance-visits", json=body, headers=reader)).status_code == 403
        assert (await client.get("/devices/s1/e1/maintenance-visits", headers=reader)).status_code == 200
    assert (await client.post("/devices/s1/e1/maintenance-visits", json=body, headers=admin)).status_code == 201
    assert (await client.post("/devices/s1/e1/maintenance-visits", json=body)).status_code == 401
    with Session(engine) as session:
        entries = session.scalars(select(AuditEntry).where(AuditEntry.action == "maintenance_visit.create")).all()
        assert [(e.actor, e.role) for e in entries] == [("zhao", "technician"), ("test-admin", "admin")]


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("e1", {"started_at": "2026-03-17T00:00:00Z", "ended_at": "2026-03-17T01:00:00Z"}, 422, "body.ended_at"),
        ("e1", {"started_at": "2026-03-16T23:00:00Z", "ended_at": "2026-03-16T22:00:00Z"}, 422, "body.started_at"),
        ("e1", {"started_at": "2026-03-14T23:00:00Z", "ended_at": "2026-03-16T00:00:00Z"}, 422, "body.started_at"),
        ("e1", {"started_at": "2026-03-16T23:00:00Z", "technician": "zhao"}, 422, "body.technician"),
        ("e1", {"started_at": "2026-03-16T23:00:00"}, 422, "body.started_at"),  # no zone
        ("e1", {"started_at": "2026-03-16T23:00:00Z", "source": "inspection_mode"}, 422, "body.source"),
        ("gate-1", {"started_at": "2026-03-16T23:00:00Z"}, 422, "path.device"),
        ("nope", {"started_at": "2026-03-16T23:00:00Z"}, 404, None),
    ],
)
async def test_bad_visits(
    client: httpx.AsyncClient, engine: Engine, path: str, body: dict[str, Any], status: int, field: str | None
) -> None:
    ann = bearer(engine, Role.ENGINEER, username="ann")
    response = await client.post(f"/devices/s1/{path}/maintenance-visits", json=body, headers=ann)
    assert (response.status_code, response.headers["content-type"]) == (status, PROBLEM), response.text
    if field is not None:
        assert [e["field"] for e in response.json()["errors"]] == [field]
    with Session(engine) as session:
        assert session.scalars(select(AuditEntry).where(AuditEntry.action == "maintenance_visit.create")).all() == []
