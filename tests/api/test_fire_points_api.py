"""The fire panels' commissioned points through the HTTP API: listed with what the panels last said, decommissioned
and recommissioned by engineers and admins with a reason, every change in the audit log; real SQLite, fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from api import create_app
from api.accounts.models import AuditEntry, Role
from api.deps import get_clock
from facmon.estate.site import Site
from facmon.kernel.clock import FakeClock
from rules import fire_point_store as store
from rules.fire_intact import Pending, PointReport
from tests.api.accounts import bearer

NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
PROBLEM = "application/problem+json"


def _site(site_id: str, technician: str) -> Site:
    return Site.model_validate(
        {
            "site": {"id": site_id},
            "buildings": [
                {
                    "id": "b1",
                    "devices": [
                        {"id": "fp1", "kind": "fire_panel", "model": "fire-gb-a", "address": {"host": "10.0.0.1"},
                         "points": ["1-001..1-003", "2-128"]},
                        {"id": "e1", "kind": "elevator", "model": "elev-gb-a", "address": {"host": "10.0.0.2"}},
                    ],
                }
            ],
            "technicians": [{"id": technician, "name": "T", "phone": "+86 138 0000 0000", "disciplines": ["fire"]}],
        }
    )  # fmt: skip


SITES = [_site("s1", "li-ming"), _site("s2", "zhao-lei")]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def app(engine: Engine, clock: FakeClock) -> FastAPI:
    app = create_app(sites=SITES, engine=engine)
    app.dependency_overrides[get_clock] = lambda: clock
    return app


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://facmon.test/api/v1") as c:
        yield c


def as_(engine: Engine, role: Role, **kwargs: str) -> dict[str, str]:
    return bearer(engine, role, **kwargs)


def reported(engine: Engine) -> None:
    """What the rules worker stores: the site files' points when it starts, then fp1 reporting 1-002 in fault and
    1-007 (not listed) absent."""
    store.add_all_listed(engine, SITES, NOW - timedelta(minutes=10))
    pending = Pending()
    for point, state, intact in (("1-002", "fault", False), ("1-007", "absent", False)):
        key = ("s1", "fp1", point)
        pending.new[key] = NOW - timedelta(minutes=5)
        pending.states[key] = PointReport(key, state, intact, NOW - timedelta(minutes=5))
        pending.heard[key] = NOW - timedelta(seconds=20)
    store.save(engine, pending)


async def test_the_point_table_lists_listed_and_reported_points_with_their_state(
    http: httpx.AsyncClient, engine: Engine
) -> None:
    reported(engine)
    answer = await http.get("/fire-points/s1", headers=as_(engine, Role.VIEWER))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["commissioned"], body["decommissioned"]) == (5, 0)
    points = {p["point"]: p for p in body["items"]}
    assert list(points) == ["1-001", "1-002", "1-003", "1-007", "2-128"]
    assert points["1-001"] == {
        "site": "s1", "device": "fp1", "point": "1-001", "source": "site_file", "first_seen_at": "2026-03-02T00:50:00Z",
        "reported_at": None, "state": None, "intact": None, "state_since": None, "heard_at": None,
        "commissioned": True, "decommissioned_at": None, "decommissioned_by": None, "decommission_reason": None,
    }  # fmt: skip
    assert (points["1-002"]["source"], points["1-002"]["state"], points["1-002"]["intact"]) == (
        "site_file",
        "fault",
        False,
    )
    assert points["1-002"]["reported_at"] == "2026-03-02T00:55:00Z"
    assert (points["1-007"]["source"], points["1-007"]["state"]) == ("reported", "absent")
    assert points["1-007"]["heard_at"] == "2026-03-02T00:59:40Z"
    one = await http.get("/fire-points/s1", params={"device": "fp1"}, headers=as_(engine, Role.REPORTER))
    assert len(one.json()["items"]) == 5
    single = await http.get("/fire-points/s1/fp1/1-007", headers=as_(engine, Role.TECHNICIAN, technician="li-ming"))
    assert single.json()["state"] == "absent"


async def test_an_engineer_decommissions_a_point_and_the_audit_log_keeps_who_when_and_why(
    http: httpx.AsyncClient, engine: Engine, clock: FakeClock
) -> None:
    reported(engine)
    engineer = as_(engine, Role.ENGINEER)
    reason = "detector removed with the kitchen refit"
    answer = await http.post("/fire-points/s1/fp1/1-007/decommission", json={"reason": reason}, headers=engineer)
    assert answer.status_code == 200, answer.text
    point = answer.json()
    assert (point["commissioned"], point["decommissioned_by"], point["decommission_reason"]) == (
        False,
        "test-engineer",
        reason,
    )
    assert point["decommissioned_at"] == "2026-03-02T01:00:00Z"
    again = await http.post("/fire-points/s1/fp1/1-007/decommission", json={"reason": "twice"}, headers=engineer)
    assert (again.status_code, again.headers["content-type"]) == (409, PROBLEM)

    listed = (await http.get("/fire-points/s1", headers=engineer)).json()
    assert (listed["commissioned"], listed["decommissioned"]) == (4, 1)
    gone = await http.get("/fire-points/s1", params={"commissioned": "false"}, headers=engineer)
    assert [p["point"] for p in gone.json()["items"]] == ["1-007"]

    clock.advance(timedelta(hours=1))
    undo = await http.post(
        "/fire-points/s1/fp1/1-007/recommission", json={"reason": "wrong point"}, headers=as_(engine, Role.ADMIN)
    )
    assert undo.status_code == 200, undo.text
    assert (undo.json()["commissioned"], undo.json()["decommissioned_by"]) == (True, None)
    again = await http.post("/fire-points/s1/fp1/1-007/recommission", json={"reason": "x"}, headers=engineer)
    assert again.status_code == 409

    with Session(engine) as session:
        entries = session.scalars(select(AuditEntry).where(AuditEntry.target_type == "fire_point")).all()
    assert [(e.action, e.actor, e.role, e.target_id, e.at) for e in entries] == [
        ("fire_point.decommission", "test-engineer", "engineer", "s1/fp1/1-007", NOW),
        ("fire_point.recommission", "test-admin", "admin", "s1/fp1/1-007", NOW + timedelta(hours=1)),
    ]
    assert entries[0].before == {"decommissioned_at": None, "decommissioned_by": None, "decommission_reason": None}
    assert entries[0].after == {
        "decommissioned_at": NOW.isoformat(), "decommissioned_by": "test-engineer", "decommission_reason": reason
    }  # fmt: skip
    assert entries[1].after == {
        "decommissioned_at": None, "decommissioned_by": None, "decommission_reason": None, "reason": "wrong point"
    }  # fmt: skip


async def test_a_listed_point_never_reported_can_be_decommissioned_before_the_worker_ran(
    http: httpx.AsyncClient, engine: Engine
) -> None:
    answer = await http.post(
        "/fire-points/s1/fp1/2-128/decommission", json={"reason": "no device at 2-128"}, headers=as_(engine, Role.ADMIN)
    )
    assert answer.status_code == 200, answer.text
    assert (answer.json()["source"], answer.json()["commissioned"]) == ("site_file", False)


@pytest.mark.parametrize("role", [Role.TECHNICIAN, Role.VIEWER, Role.REPORTER])
async def test_other_roles_may_not_decommission(http: httpx.AsyncClient, engine: Engine, role: Role) -> None:
    headers = as_(engine, role, technician="li-ming") if role is Role.TECHNICIAN else as_(engine, role)
    for action in ("decommission", "recommission"):
        answer = await http.post(f"/fire-points/s1/fp1/1-001/{action}", json={"reason": "gone"}, headers=headers)
        assert (answer.status_code, answer.headers["content-type"]) == (403, PROBLEM), answer.text
        # Even without a reason: the role is refused first.
        assert (await http.post(f"/fire-points/s1/fp1/1-001/{action}", headers=headers)).status_code == 403
    with Session(engine) as session:
        assert session.scalars(select(AuditEntry).where(AuditEntry.target_type == "fire_point")).all() == []


@pytest.mark.parametrize(
    "path",
    [
        "/fire-points/nowhere/fp1/1-001/decommission",  # no such site
        "/fire-points/s1/fp9/1-001/decommission",  # no such device
        "/fire-points/s1/e1/1-001/decommission",  # not a fire panel
        "/fire-points/s1/fp1/1-099/decommission",  # not in the point table
        "/fire-points/s1/fp1/1-099/recommission",
    ],
)
async def test_an_unknown_site_panel_or_point_is_404(http: httpx.AsyncClient, engine: Engine, path: str) -> None:
    answer = await http.post(path, json={"reason": "gone"}, headers=as_(engine, Role.ENGINEER))
    assert (answer.status_code, answer.headers["content-type"]) == (404, PROBLEM), answer.text


@pytest.mark.parametrize("body", [None, {}, {"reason": ""}, {"reason": "   "}, {"reason": "x" * 501}, {"why": "x"}])
async def test_a_decommission_needs_a_reason(http: httpx.AsyncClient, engine: Engine, body: object) -> None:
    answer = await http.post("/fire-points/s1/fp1/1-001/decommission", json=body, headers=as_(engine, Role.ENGINEER))
    assert (answer.status_code, answer.headers["content-type"]) == (422, PROBLEM), answer.text
    assert (await http.get("/fire-points/s1/fp1/1-001", headers=as_(engine, Role.ENGINEER))).json()["commissioned"]


async def test_a_technician_sees_the_points_of_their_own_sites_only(http: httpx.AsyncClient, engine: Engine) -> None:
    headers = as_(engine, Role.TECHNICIAN, technician="zhao-lei")
    assert (await http.get("/fire-points/s2", headers=headers)).status_code == 200
    assert (await http.get("/fire-points/s1", headers=headers)).status_code == 403
    assert (await http.get("/fire-points/s1/fp1/1-001", headers=headers)).status_code == 403
    assert (await http.get("/fire-points/s1/fp1/1-1", headers=headers)).status_code == 422
