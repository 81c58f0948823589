"""Authentication, roles and the audit log, through the real app over a real SQLite file.

Every route is found from the app itself, so a route added later without protection or without an audit entry
fails here rather than slipping through.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from api import create_app
from api.accounts.models import ApiToken, AuditEntry, Role, User
from api.accounts.store import create_user
from api.deps import get_clock
from facmon.estate.site import Site
from facmon.kernel.clock import FakeClock
from facmon.kernel.model import Event, EventType
from facmon.notifier.tokens import issue
from rules.engine import evaluate, load_rules
from rules.store import apply_event
from tests.api.accounts import bearer

START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
PROBLEM = "application/problem+json"
KEY = b"3b7e0a9d4c61f28e5a0b3d7c9e14f6a28b5d0c3e7f1a9b46d2e8c05f7a3b1d96"
PASSWORD = "a long enough password"
RULES = load_rules()


def _site(site_id: str, technician: str) -> Site:
    return Site.model_validate(
        {
            "site": {"id": site_id},
            "buildings": [
                {
                    "id": "b1",
                    "devices": [
                        {"id": "e1", "kind": "elevator", "model": "elev-gb-a", "address": {"host": "127.0.0.1"}},
                        {
                            "id": "fp1",
                            "kind": "fire_panel",
                            "model": "fire-gb-a",
                            "address": {"host": "127.0.0.1"},
                            "points": ["1-001..1-010"],
                        },
                    ],
                }
            ],
            "technicians": [
                {
                    "id": technician,
                    "name": technician.title(),
                    "phone": "+86 138 0000 0000",
                    "disciplines": ["elevator"],
                }
            ],
        }
    )


NORTH, SOUTH = _site("north", "li-ming"), _site("south", "zhao-lei")


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
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://facmon.test/api/v1") as client:
        yield client


def fault(engine: Engine, clock: FakeClock, site: Site = NORTH, code: str = "2") -> int:
    event = Event(ref=site.ref("e1"), ts=clock.now(), type=EventType.FAULT_RAISED, code=code)
    result = apply_event(engine, event, evaluate(RULES, event, clock.now()), clock.now())
    return result.opened[0]


def user(engine: Engine, username: str, role: Role, technician: str | None = None) -> None:
    with Session(engine) as session:
        create_user(session, username=username, role=role, password=PASSWORD, now=START, technician=technician)
        session.commit()


async def login(client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/auth/login", json={"username": username, "password": password})


def routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every operation of the API, from its OpenAPI document (what clients are told exists)."""
    return sorted(
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if path.startswith("/api/v1/")
        for method in operations
    )


OPEN = {
    ("GET", "/api/v1/health"),
    ("GET", "/api/v1/ack/{token}"),
    ("POST", "/api/v1/ack/{token}"),
    ("POST", "/api/v1/auth/login"),
}


def concrete(path: str) -> str:
    """A request path for a route: every path parameter filled with something well-formed."""
    values = {"{site}": "north", "{device}": "e1", "{point}": "1-001", "{username}": "nobody", "{token}": "x" * 20}
    for name, value in values.items():
        path = path.replace(name, value)
    while "{" in path:
        start, end = path.index("{"), path.index("}")
        path = path[:start] + "1" + path[end + 1 :]
    return path.removeprefix("/api/v1")


# --- authentication ------------------------------------------------------------------------------------------------


async def test_every_route_but_health_login_and_ack_links_needs_a_token(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    guarded = [r for r in routes(app) if r not in OPEN]
    assert len(guarded) >= 20
    for method, path in guarded:
        for headers in ({}, {"Authorization": "Bearer fm_not-a-token"}, {"Authorization": "Basic YTpi"}):
            response = await client.request(method, concrete(path), headers=headers, json={})
            assert response.status_code == 401, (method, path, headers, response.text)
            assert response.headers["content-type"] == PROBLEM
            assert response.headers["www-authenticate"] == "Bearer"
    assert (await client.get("/health")).status_code == 200


async def test_login_gives_a_token_that_expires_and_logout_revokes(
    client: httpx.AsyncClient, engine: Engine, clock: FakeClock
) -> None:
    user(engine, "ann", Role.ENGINEER)
    answer = await login(client, "ann")
    assert answer.status_code == 200
    body = answer.json()
    assert body["user"] == {
        "username": "ann",
        "display_name": None,
        "role": "engineer",
        "technician": None,
        "sites": None,
    }
    assert body["expires_at"] == (START + timedelta(hours=12)).isoformat().replace("+00:00", "Z")
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    assert (await client.get("/work-orders", headers=headers)).status_code == 200
    clock.advance(timedelta(hours=12))
    expired = await client.get("/work-orders", headers=headers)
    assert (expired.status_code, expired.json()["detail"]) == (
        401,
        "the token is unknown, expired or revoked; sign in again",
    )

    second = {"Authorization": f"Bearer {(await login(client, 'ann')).json()['access_token']}"}
    assert (await client.get("/auth/me", headers=second)).json()["username"] == "ann"
    assert (await client.post("/auth/logout", headers=second)).status_code == 204
    assert (await client.get("/auth/me", headers=second)).status_code == 401


async def test_wrong_passwords_and_unknown_users_get_the_same_answer(client: httpx.AsyncClient, engine: Engine) -> None:
    user(engine, "ann", Role.ENGINEER)
    wrong = await login(client, "ann", "not the password")
    unknown = await login(client, "nobody", PASSWORD)
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()


async def test_repeated_failures_are_slowed_down_twice_as_long_each_time(
    client: httpx.AsyncClient, engine: Engine, clock: FakeClock
) -> None:
    user(engine, "ann", Role.ENGINEER)
    for _ in range(5):
        assert (await login(client, "ann", "guess")).status_code == 401
    slowed = await login(client, "ann")  # even the right password waits: the guesser must not learn it was right
    assert (slowed.status_code, slowed.headers["retry-after"], slowed.headers["content-type"]) == (429, "1", PROBLEM)
    clock.advance(1)
    assert (await login(client, "ann", "guess")).status_code == 401
    assert (await login(client, "ann")).headers["retry-after"] == "2"
    clock.advance(2)
    assert (await login(client, "ann")).status_code == 200
    # Success clears the name's count, so the next mistake is free again.
    assert (await login(client, "ann", "guess")).status_code == 401


async def test_passwords_and_tokens_are_stored_only_as_hashes(client: httpx.AsyncClient, engine: Engine) -> None:
    user(engine, "ann", Role.ENGINEER)
    token = (await login(client, "ann")).json()["access_token"]
    with Session(engine) as session:
        stored = session.scalar(select(User).where(User.username == "ann"))
        assert stored is not None
        assert stored.password_hash is not None
        assert stored.password_hash.startswith("$argon2id$")
        dump = "\n".join(
            str(row) for table in ("users", "api_tokens") for row in session.execute(text(f"SELECT * FROM {table}"))
        )
    assert PASSWORD not in dump
    assert token not in dump


async def test_api_tokens_are_named_listed_and_revoked(client: httpx.AsyncClient, engine: Engine) -> None:
    user(engine, "bms", Role.VIEWER)
    session_headers = {"Authorization": f"Bearer {(await login(client, 'bms')).json()['access_token']}"}
    made = await client.post("/auth/tokens", json={"name": "BMS integration"}, headers=session_headers)
    assert made.status_code == 201
    token = made.json()["token"]
    assert token.startswith(made.json()["prefix"])
    api_headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/devices", headers=api_headers)).status_code == 200
    listed = (await client.get("/auth/tokens", headers=api_headers)).json()
    assert [(t["name"], t["kind"], "token" in t) for t in listed] == [("BMS integration", "api", False)]
    assert (await client.delete(f"/auth/tokens/{made.json()['id']}", headers=session_headers)).status_code == 204
    assert (await client.get("/devices", headers=api_headers)).status_code == 401
    others = await client.post("/auth/tokens", json={"name": "x", "username": "admin"}, headers=session_headers)
    assert others.status_code == 403


async def test_disabling_a_user_or_changing_their_password_ends_their_sessions(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    admin = bearer(engine, Role.ADMIN)
    user(engine, "ann", Role.ENGINEER)
    ann = {"Authorization": f"Bearer {(await login(client, 'ann')).json()['access_token']}"}
    changed = await client.patch("/users/ann", json={"password": "another long password"}, headers=admin)
    assert changed.status_code == 200
    assert (await client.get("/auth/me", headers=ann)).status_code == 401
    assert (await login(client, "ann")).status_code == 401
    ann = {"Authorization": f"Bearer {(await login(client, 'ann', 'another long password')).json()['access_token']}"}
    assert (await client.patch("/users/ann", json={"active": False}, headers=admin)).json()["active"] is False
    assert (await client.get("/auth/me", headers=ann)).status_code == 401
    assert (await login(client, "ann", "another long password")).status_code == 401


async def test_user_admin_refuses_weak_passwords_taken_names_and_unknown_technicians(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    admin = bearer(engine, Role.ADMIN)
    weak = await client.post("/users", json={"username": "bo", "role": "viewer", "password": "short"}, headers=admin)
    assert (weak.status_code, weak.headers["content-type"]) == (422, PROBLEM)
    assert "password" in weak.json()["detail"]
    ok = await client.post("/users", json={"username": "bo", "role": "viewer", "password": PASSWORD}, headers=admin)
    assert ok.status_code == 201
    again = await client.post("/users", json={"username": "bo", "role": "viewer", "password": PASSWORD}, headers=admin)
    assert again.status_code == 409
    tech = {"username": "t1", "role": "technician", "password": PASSWORD, "technician": "nobody"}
    unknown = await client.post("/users", json=tech, headers=admin)
    assert (unknown.status_code, "nobody" in unknown.json()["detail"]) == (422, True)
    tech["technician"] = "li-ming"
    assert (await client.post("/users", json=tech, headers=admin)).status_code == 201


# --- roles -----------------------------------------------------------------------------------------------------------


async def test_viewers_read_and_change_nothing(app: FastAPI, client: httpx.AsyncClient, engine: Engine) -> None:
    viewer = bearer(engine, Role.VIEWER)
    assert (await client.get("/work-orders", headers=viewer)).status_code == 200
    own = {
        ("POST", "/api/v1/auth/logout"),
        ("POST", "/api/v1/auth/tokens"),
        ("DELETE", "/api/v1/auth/tokens/{token_id}"),
    }
    changes = [(m, p) for m, p in routes(app) if m not in {"GET", "HEAD"} and (m, p) not in OPEN | own]
    assert len(changes) >= 6
    for method, path in changes:
        response = await client.request(method, concrete(path), headers=viewer, json={})
        assert response.status_code == 403, (method, path, response.text)
        assert response.headers["content-type"] == PROBLEM


async def test_reporters_see_reports_kpis_and_devices_only(client: httpx.AsyncClient, engine: Engine) -> None:
    insurer = bearer(engine, Role.REPORTER)
    assert (await client.get("/devices", headers=insurer)).status_code == 200
    period = {"site": "north", "from": "2026-02-01T00:00:00Z", "to": "2026-03-01T00:00:00Z"}
    assert (await client.get("/kpis", params=period, headers=insurer)).status_code == 200
    report = await client.get("/reports/insurance", params={"site": "north", "as_of": "2026-03-01"}, headers=insurer)
    assert report.status_code == 200
    for path in ("/work-orders", "/fire-alarms", "/on-call", "/users", "/audit", "/metrics"):
        assert (await client.get(path, headers=insurer)).status_code == 403, path


async def test_users_and_audit_are_for_admins(client: httpx.AsyncClient, engine: Engine) -> None:
    for role in (Role.ENGINEER, Role.TECHNICIAN, Role.VIEWER):
        headers = bearer(engine, role, technician="li-ming" if role is Role.TECHNICIAN else None)
        assert (await client.get("/users", headers=headers)).status_code == 403
        assert (await client.get("/audit", headers=headers)).status_code == 403
    assert (await client.get("/audit", headers=bearer(engine, Role.ADMIN))).status_code == 200


async def test_technicians_change_only_their_own_or_unassigned_work_orders_at_their_sites(
    client: httpx.AsyncClient, engine: Engine, clock: FakeClock
) -> None:
    li = bearer(engine, Role.TECHNICIAN, technician="li-ming")
    north, south = fault(engine, clock, NORTH), fault(engine, clock, SOUTH)
    other_site = await client.post(f"/work-orders/{south}/transitions", json={"to": "acknowledged"}, headers=li)
    assert (other_site.status_code, other_site.json()["detail"]) == (403, "li-ming does not work at south")
    mine = await client.post(f"/work-orders/{north}/transitions", json={"to": "acknowledged"}, headers=li)
    assert mine.status_code == 200
    assert mine.json()["timeline"][-1]["actor"] == "li-ming"
    engineer = bearer(engine, Role.ENGINEER)
    assert (await client.post(f"/work-orders/{north}/assign", json={"technician": None}, headers=engineer)).is_success
    with Session(engine) as session:
        session.execute(text("UPDATE work_orders SET assignee = 'wang-fang' WHERE id = :id"), {"id": north})
        session.commit()
    taken = await client.post(f"/work-orders/{north}/transitions", json={"to": "on_site"}, headers=li)
    assert (taken.status_code, taken.json()["detail"]) == (403, f"work order {north} is assigned to wang-fang")
    on_behalf = {"to": "on_site", "on_behalf_of": "li-ming"}
    assert (await client.post(f"/work-orders/{north}/transitions", json=on_behalf, headers=engineer)).is_success


# --- audit -----------------------------------------------------------------------------------------------------------


def audit_entries(engine: Engine) -> list[AuditEntry]:
    with Session(engine) as session:
        return list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))


async def test_every_change_is_in_the_audit_log_with_who_what_when_where_before_and_after(
    app: FastAPI, client: httpx.AsyncClient, engine: Engine, clock: FakeClock
) -> None:
    admin = bearer(engine, Role.ADMIN, username="boss")
    wo = fault(engine, clock)
    # One valid request per changing route; the set is checked against the app's routes below.
    calls: list[tuple[str, str, dict[str, Any] | None, str]] = [
        (
            "POST",
            f"/work-orders/{wo}/transitions",
            {"to": "acknowledged", "note": "on my way"},
            "work_order.acknowledged",
        ),
        ("POST", f"/work-orders/{wo}/assign", {"technician": "li-ming"}, "work_order.assign"),
        ("POST", f"/work-orders/{wo}/notes", {"note": "parts ordered"}, "work_order.note"),
        ("POST", f"/work-orders/{wo}/transitions", {"to": "on_site", "on_behalf_of": "li-ming"}, "work_order.on_site"),
        ("POST", f"/work-orders/{wo}/transitions", {"to": "resolved", "note": "fixed"}, "work_order.resolved"),
        ("POST", f"/work-orders/{wo}/follow-ups", {"outcome": "satisfied"}, "work_order.follow_up"),
        (
            "POST",
            "/fire-checks",
            {"site": "north", "device": "fp1", "item": "loop 1", "result": "passed"},
            "fire_check.create",
        ),
        ("POST", "/users", {"username": "cy", "role": "viewer", "password": PASSWORD}, "user.create"),
        ("PATCH", "/users/cy", {"role": "engineer"}, "user.update"),
        ("POST", "/auth/tokens", {"name": "bms"}, "token.create"),
        ("PATCH", "/devices/north/e1/assets", {"usage": "residential"}, "device.assets"),
        (
            "POST",
            "/devices/north/e1/maintenance-visits",
            {"started_at": "2026-03-02T00:00:00Z", "ended_at": "2026-03-02T00:45:00Z"},
            "maintenance_visit.create",
        ),
        ("POST", "/fire-points/north/fp1/1-001/decommission", {"reason": "removed"}, "fire_point.decommission"),
        ("POST", "/fire-points/north/fp1/1-001/recommission", {"reason": "wrong point"}, "fire_point.recommission"),
    ]
    for method, path, body, _ in calls:
        response = await client.request(method, path, json=body, headers=admin)
        assert response.is_success, (path, response.text)
    token_id = (await client.get("/auth/tokens", headers=admin)).json()[0]["id"]
    assert (await client.delete(f"/auth/tokens/{token_id}", headers=admin)).status_code == 204
    alarm = await _fire_alarm(engine, clock)
    assert (
        await client.post(f"/fire-alarms/{alarm}/outcome", json={"outcome": "false_alarm"}, headers=admin)
    ).is_success
    second = fault(engine, clock, code="3")
    bearer(engine, Role.TECHNICIAN, technician="li-ming")  # a link acts only for a technician with an account
    assert (await client.post(f"/ack/{issue(KEY, second, 'li-ming', now=clock.now())}")).status_code == 200

    entries = audit_entries(engine)
    actions = [e.action for e in entries]
    assert actions == [c[3] for c in calls] + ["token.revoke", "fire_alarm.outcome", "work_order.acknowledged"]
    ack = entries[4]
    assert (ack.actor, ack.role, ack.client, ack.at) == ("boss", "admin", "127.0.0.1", START)
    assert (ack.before or {})["status"] == "on_site"
    assert (ack.after or {})["status"] == "resolved"
    role_change = entries[8]
    assert ((role_change.before or {})["role"], (role_change.after or {})["role"]) == ("viewer", "engineer")
    assert "password_hash" not in str(entries[7].after)
    assert (entries[-1].actor, entries[-1].role) == ("Li-Ming", None)  # the ack link's recipient, by name

    covered = {(m, "/api/v1" + _template(p)) for m, p, _, _ in calls} | {
        ("DELETE", "/api/v1/auth/tokens/{token_id}"),
        ("POST", "/api/v1/fire-alarms/{alarm_id}/outcome"),
        ("POST", "/api/v1/ack/{token}"),
        ("PATCH", "/api/v1/devices/{site}/{device}/assets"),
        ("POST", "/api/v1/devices/{site}/{device}/maintenance-visits"),
        ("POST", "/api/v1/fire-points/{site}/{device}/{point}/decommission"),
        ("POST", "/api/v1/fire-points/{site}/{device}/{point}/recommission"),
    }
    changing = {(m, p) for m, p in routes(app) if m not in {"GET", "HEAD"}}
    # Sign-in and sign-out are recorded too, but as auth.* entries (see the login tests).
    assert changing - covered == {("POST", "/api/v1/auth/login"), ("POST", "/api/v1/auth/logout")}

    listed = (await client.get("/audit", params={"action": "work_order.", "limit": 2}, headers=admin)).json()
    assert listed["total"] == 7
    assert [e["action"] for e in listed["items"]] == ["work_order.acknowledged", "work_order.follow_up"]


def _template(path: str) -> str:
    parts = path.split("/")
    names = {"work-orders": "{work_order_id}", "users": "{username}"}
    return "/".join(
        names.get(parts[i - 1], part) if part.isdigit() or part == "cy" else part for i, part in enumerate(parts)
    )


async def _fire_alarm(engine: Engine, clock: FakeClock) -> int:
    from rules.engine import FireAlarmSignal
    from rules.fire import record_fire_signals

    event = Event(ref=NORTH.ref("fp1"), ts=clock.now(), type=EventType.FAULT_RAISED, code="fire", point="1-004")
    signals = [a for a in evaluate(RULES, event, clock.now()) if isinstance(a, FireAlarmSignal)]
    return record_fire_signals(engine, signals, clock.now())[0]


async def test_logins_are_audited_failed_ones_too(client: httpx.AsyncClient, engine: Engine) -> None:
    user(engine, "ann", Role.ENGINEER)
    await login(client, "ann", "wrong")
    await login(client, "ann")
    assert [(e.action, e.actor, e.client) for e in audit_entries(engine)] == [
        ("auth.login_failed", "ann", "127.0.0.1"),
        ("auth.login", "ann", "127.0.0.1"),
    ]
    with Session(engine) as session:
        assert session.scalar(select(ApiToken.kind)) == "session"


async def test_technicians_are_kept_to_their_sites_wherever_a_site_is_named(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    li = bearer(engine, Role.TECHNICIAN, technician="li-ming")
    period = {"from": "2026-02-01T00:00:00Z", "to": "2026-03-01T00:00:00Z"}
    for path, params in (("/work-orders", {}), ("/devices", {}), ("/fire-checks", {}), ("/kpis", period)):
        assert (await client.get(path, params={"site": "north", **params}, headers=li)).status_code == 200, path
        refused = await client.get(path, params={"site": "south", **params}, headers=li)
        assert (refused.status_code, refused.json()["detail"]) == (403, "li-ming does not work at south"), path
    check = {"site": "south", "device": "fp1", "item": "loop 1", "result": "passed"}
    assert (await client.post("/fire-checks", json=check, headers=li)).status_code == 403
    assert (await client.post("/fire-checks", json=check | {"site": "north"}, headers=li)).status_code == 201


async def test_technicians_listing_without_a_site_see_only_theirs(
    client: httpx.AsyncClient, engine: Engine, clock: FakeClock
) -> None:
    admin = bearer(engine, Role.ADMIN)
    for site in ("north", "south"):
        check = {"site": site, "device": "fp1", "item": "loop 1", "result": "passed"}
        assert (await client.post("/fire-checks", json=check, headers=admin)).status_code == 201
    await _fire_alarm(engine, clock)
    li = bearer(engine, Role.TECHNICIAN, technician="li-ming")
    zhao = bearer(engine, Role.TECHNICIAN, technician="zhao-lei")
    assert [c["site"] for c in (await client.get("/fire-checks", headers=li)).json()] == ["north"]
    assert len((await client.get("/fire-checks", headers=admin)).json()) == 2
    assert (await client.get("/fire-alarms", headers=li)).json()["total"] == 1
    assert (await client.get("/fire-alarms", headers=zhao)).json()["total"] == 0
