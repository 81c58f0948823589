"""Transitions, follow-ups, SLA figures and the timeline through the HTTP API, on a fake clock over real SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine

from api import create_app
from api.accounts.models import Role
from api.deps import get_clock
from facmon.estate.site import Site
from facmon.kernel.clock import FakeClock
from facmon.kernel.model import Event, EventType
from facmon.workorders.breaches import record_breaches
from rules.engine import evaluate, load_rules
from rules.store import apply_event
from tests.api.accounts import bearer
from tests.rules.support import elevator

START = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)
RULES = load_rules()
PROBLEM = "application/problem+json"


def at(minutes: float) -> str:
    return (START + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


# The site of the tests' faults, with "li" as its elevator technician and "zhao" as its fire technician.
SITE = Site.model_validate(
    {
        "site": {"id": "s1"},
        "buildings": [
            {
                "id": "b1",
                "devices": [
                    {"id": d, "kind": "elevator", "model": "elev-gb-a", "address": {"host": "127.0.0.1"}}
                    for d in ("e1", "e2")
                ],
            }
        ],
        "technicians": [
            {"id": "li", "name": "Li", "phone": "+86 138 0000 0000", "disciplines": ["elevator"]},
            {"id": "zhao", "name": "Zhao", "phone": "+86 138 0000 0001", "disciplines": ["fire"]},
        ],
    }
)


@pytest.fixture
def app(engine: Engine, clock: FakeClock) -> FastAPI:
    app = create_app(sites=[SITE], engine=engine)
    app.dependency_overrides[get_clock] = lambda: clock
    return app


@pytest.fixture
async def client(app: FastAPI, engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    # An engineer called "li": the signed-in user is the actor of every change.
    headers = bearer(engine, Role.ENGINEER, username="li")
    async with httpx.AsyncClient(transport=transport, base_url="http://facmon.test/api/v1", headers=headers) as client:
        yield client


def fault(engine: Engine, clock: FakeClock, code: str = "entrapment", device: str = "e1") -> int:
    """A fault reported now; the id of the work order it opened (0 if it only recurred)."""
    event = Event(ref=elevator(device=device), ts=clock.now(), type=EventType.FAULT_RAISED, code=code)
    result = apply_event(engine, event, evaluate(RULES, event, clock.now()), clock.now())
    return result.opened[0] if result.opened else 0


async def move(
    client: httpx.AsyncClient, wo_id: int, to: str, headers: dict[str, str] | None = None, **body: Any
) -> httpx.Response:
    if to == "on_site" and headers is None:
        body.setdefault("on_behalf_of", "li")  # the engineer records the arrival of the site's technician
    return await client.post(f"/work-orders/{wo_id}/transitions", json={"to": to, **body}, headers=headers)


async def test_every_transition_in_order(client: httpx.AsyncClient, engine: Engine, clock: FakeClock) -> None:
    wo_id = fault(engine, clock)
    clock.advance(60)
    acked = await move(client, wo_id, "acknowledged", note="on my way")
    assert acked.status_code == 200
    body = acked.json()
    assert (body["status"], body["acknowledged_at"], body["next_statuses"]) == (
        "acknowledged",
        at(1),
        ["on_site", "cancelled"],
    )
    assert {c["name"]: c["state"] for c in body["sla"]["clocks"]} == {
        "acknowledge": "met",
        "on_site": "pending",
        "statutory_on_site": "pending",
        "repair": "pending",
    }
    clock.advance(15 * 60)
    assert (await move(client, wo_id, "on_site")).json()["on_site_at"] == at(16)
    clock.advance(10 * 60)
    resolved = (await move(client, wo_id, "resolved", note="reset the door operator")).json()
    assert (resolved["resolved_at"], resolved["next_statuses"], resolved["sla"]["state"]) == (at(26), ["closed"], "met")
    clock.advance(60 * 60)
    closed = (await move(client, wo_id, "closed", headers=bearer(engine, Role.ENGINEER, username="wang"))).json()
    assert (closed["status"], closed["closed_at"], closed["next_statuses"]) == ("closed", at(86), [])
    assert [(e["type"], e["status"], e["actor"], e["source"], e["note"], e["at"]) for e in closed["timeline"]] == [
        ("opened", "open", "elevator.fault.work-order", "rules", None, at(0)),
        ("transition", "acknowledged", "li", "api", "on my way", at(1)),
        ("transition", "on_site", "li", "api", None, at(16)),
        ("transition", "resolved", "li", "api", "reset the door operator", at(26)),
        ("transition", "closed", "wang", "api", None, at(86)),
    ]
    assert (await client.get(f"/work-orders/{wo_id}")).json() == closed


async def test_arrival_before_acknowledgement_records_it_as_implied(
    client: httpx.AsyncClient, engine: Engine, clock: FakeClock
) -> None:
    wo_id = fault(engine, clock)
    clock.advance(150)
    body = (await move(client, wo_id, "on_site", note="came up the stairs")).json()
    assert body["acknowledged_at"] == body["on_site_at"] == at(2.5)
    assert [(e["status"], e["detail"], e["note"]) for e in body["timeline"][1:]] == [
        ("acknowledged", {"from": "open", "implied": True}, None),
        ("on_site", {"from": "acknowledged", "implied": False}, "came up the stairs"),
    ]
    # The arrival meets every clock but the repair one, which waits for the resolution.
    assert {c["name"]: c["state"] for c in body["sla"]["clocks"]} == {
        "acknowledge": "met",
        "on_site": "met",
        "statutory_on_site": "met",
        "repair": "pending",
    }
    assert body["sla"]["state"] == "pending"


async def test_cancelling_needs_a_reason_and_stops_the_clocks(
    client: httpx.AsyncClient, engine: Engine, clock: FakeClock
) -> None:
    wo_id = fault(engine, clock, code="15")
    clock.advance(60)
    refused = await move(client, wo_id, "cancelled")
    assert refused.status_code == 422
    assert [e["field"] for e in refused.json()["errors"]] == ["body.note"]
    body = (await move(client, wo_id, "cancelled", note="false alarm: child pressed the button")).json()
    assert (body["status"], body["cancelled_at"], body["next_statuses"]) == ("cancelled", at(1), [])
    assert body["sla"]["state"] == "cancelled"
    clock.advance(3600)
    assert record_breaches(engine, clock.now()) == []


@pytest.mark.parametrize(
    ("before", "to", "current", "allowed", "reason"),
    [
        ([], "resolved", "open", ["acknowledged", "on_site", "cancelled"], "needs a technician on site first"),
        ([], "closed", "open", ["acknowledged", "on_site", "cancelled"], "only a resolved work order can be closed"),
        (["acknowledged"], "acknowledged", "acknowledged", ["on_site", "cancelled"], "already acknowledged"),
        (["on_site"], "acknowledged", "on_site", ["resolved", "cancelled"], "cannot go back to acknowledged"),
        (["on_site", "resolved"], "cancelled", "resolved", ["closed"], "it can only be closed"),
        (["on_site", "resolved", "closed"], "on_site", "closed", [], "closed, which is final"),
        (["cancelled"], "acknowledged", "cancelled", [], "cancelled, which is final"),
    ],
)
async def test_illegal_transitions_are_409_naming_current_and_allowed(
    client: httpx.AsyncClient,
    engine: Engine,
    clock: FakeClock,
    before: list[str],
    to: str,
    current: str,
    allowed: list[str],
    reason: str,
) -> None:
    wo_id = fault(engine, clock)
    for step in before:
        assert (await move(client, wo_id, step, note="x")).status_code == 200
    entries = len((await client.get(f"/work-orders/{wo_id}")).json()["timeline"])
    response = await move(client, wo_id, to, note="x")
    assert response.status_code == 409
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert (problem["title"], problem["status"], problem["current_status"], problem["allowed"]) == (
        "Transition not allowed",
        409,
        current,
        allowed,
    )
    assert problem["detail"].startswith(f"work order {wo_id} is {current} and cannot become {to}: ")
    assert reason in problem["detail"]
    assert f"Allowed next: {', '.join(allowed) or 'none (final)'}." in problem["detail"]
    after = (await client.get(f"/work-orders/{wo_id}")).json()
    assert (after["status"], len(after["timeline"])) == (current, entries)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/work-orders/1/transitions", {"to": "open"}, "to"),
        ("/work-orders/1/transitions", {"to": "flying"}, "to"),
        ("/work-orders/1/transitions", {"note": "x"}, "to"),
        ("/work-orders/1/transitions", {"to": "acknowledged", "actor": "li"}, "actor"),
        ("/work-orders/1/transitions", {"to": "acknowledged", "note": "n" * 2001}, "note"),
        ("/work-orders/1/transitions", {"to": "acknowledged", "source": "card_read"}, "source"),
        ("/work-orders/abc/transitions", {"to": "acknowledged"}, "work_order_id"),
        ("/work-orders/0/transitions", {"to": "acknowledged"}, "work_order_id"),
        ("/work-orders/1/follow-ups", {"outcome": "happy"}, "outcome"),
        ("/work-orders/1/follow-ups", {"outcome": "satisfied", "actor": "zhao"}, "actor"),
        (
            "/work-orders/1/follow-ups",
            {"outcome": "satisfied", "visited_at": "2026-02-01T10:00"},
            "visited_at",
        ),
    ],
)
async def test_bad_requests_are_422_naming_the_field(
    client: httpx.AsyncClient, engine: Engine, clock: FakeClock, path: str, body: dict[str, Any], field: str
) -> None:
    fault(engine, clock)
    response = await client.post(path, json=body)
    assert response.status_code == 422, response.text
    assert [error["field"].rsplit(".", 1)[-1] for error in response.json()["errors"]] == [field]


async def test_unknown_work_order_is_404(client: httpx.AsyncClient) -> None:
    for path, body in (
        ("/work-orders/77/transitions", {"to": "acknowledged"}),
        ("/work-orders/77/follow-ups", {"outcome": "satisfied"}),
    ):
        response = await client.post(path, json=body)
        assert (response.status_code, response.headers["content-type"]) == (404, PROBLEM)
        assert response.json()["detail"] == "no work order with id 77"


async def test_follow_ups_on_resolved_and_closed_work_orders(
    client: httpx.AsyncClient, engine: Engine, clock: FakeClock
) -> None:
    wo_id = fault(engine, clock, code="2")
    url = f"/work-orders/{wo_id}/follow-ups"
    early = await client.post(url, json={"outcome": "satisfied"})
    assert (early.status_code, early.headers["content-type"]) == (409, PROBLEM)
    assert early.json()["current_status"] == "open"
    assert "recorded on resolved or closed work orders" in early.json()["detail"]
    await move(client, wo_id, "on_site")
    clock.advance(30 * 60)
    await move(client, wo_id, "resolved")
    clock.advance(24 * 3600)
    for visited_at in (at(29), at(24 * 60 + 31)):  # before the repair; in the future
        response = await client.post(url, json={"outcome": "satisfied", "visited_at": visited_at})
        assert response.status_code == 422
        assert [e["field"] for e in response.json()["errors"]] == ["body.visited_at"]
    created = await client.post(url, json={"outcome": "dissatisfied", "note": "still noisy", "visited_at": at(24 * 60)})
    assert created.status_code == 201
    follow_up = created.json()
    assert {k: v for k, v in follow_up.items() if k != "id"} == {
        "visited_at": at(24 * 60),
        "actor": "li",
        "outcome": "dissatisfied",
        "note": "still noisy",
        "recorded_at": at(24 * 60 + 30),
    }
    await move(client, wo_id, "closed")
    second = await client.post(url, json={"outcome": "satisfied"})
    assert (second.status_code, second.json()["visited_at"]) == (201, at(24 * 60 + 30))
    detail = (await client.get(f"/work-orders/{wo_id}")).json()
    assert [f["outcome"] for f in detail["follow_ups"]] == ["dissatisfied", "satisfied"]
    assert [(e["type"], e["status"], e["note"]) for e in detail["timeline"] if e["type"] == "follow_up"] == [
        ("follow_up", "resolved", "still noisy"),
        ("follow_up", "closed", None),
    ]


async def test_timeline_shows_occurrences_clears_and_breaches_and_the_sla_object_follows_the_clock(
    client: httpx.AsyncClient, engine: Engine, clock: FakeClock
) -> None:
    wo_id = fault(engine, clock)
    clock.advance(30)
    cleared = Event(ref=elevator(), ts=clock.now(), type=EventType.FAULT_CLEARED, code="entrapment")
    apply_event(engine, cleared, evaluate(RULES, cleared, clock.now()), clock.now())
    clock.advance(30)
    fault(engine, clock)
    clock.advance(150)
    record_breaches(engine, clock.now())  # 3.5 min: what the worker's monitor does every second
    detail = (await client.get(f"/work-orders/{wo_id}")).json()
    assert [(e["type"], e["at"]) for e in detail["timeline"]] == [
        ("opened", at(0)),
        ("fault_cleared", at(0.5)),
        ("recurred", at(1)),
        ("sla_breached", at(3.5)),
    ]
    assert detail["timeline"][-1]["detail"] == {
        "clock": "acknowledge",
        "milestone": "acknowledged",
        "due_at": (START + timedelta(minutes=3)).isoformat(),
        "met_at": None,
    }
    assert (detail["sla"]["state"], detail["sla"]["clocks"][0]["overdue_s"]) == ("breached", 30.0)
    assert detail["sla"]["clocks"][1]["time_left_s"] == 16.5 * 60
    clock.advance(60)  # only the clock moved: the figures follow it
    listed = (await client.get("/work-orders")).json()["items"][0]
    assert listed["sla"]["clocks"][1]["time_left_s"] == 15.5 * 60


async def test_a_recurrence_after_closing_links_the_previous_work_order(
    client: httpx.AsyncClient, engine: Engine, clock: FakeClock
) -> None:
    first = fault(engine, clock, code="2")
    for step in ("on_site", "resolved", "closed"):
        await move(client, first, step)
    clock.advance(3600)
    second = fault(engine, clock, code="2")
    body = (await client.get(f"/work-orders/{second}")).json()
    assert (body["previous_id"], body["status"], body["sla"]["profile"]) == (first, "open", "elevator.fault")


async def test_the_signed_in_user_is_the_actor_and_the_body_cannot_say_otherwise(
    client: httpx.AsyncClient, engine: Engine, clock: FakeClock
) -> None:
    wo_id = fault(engine, clock)
    refused = await move(client, wo_id, "acknowledged", actor="someone else")
    assert (refused.status_code, [e["field"] for e in refused.json()["errors"]]) == (422, ["body.actor"])
    body = (await move(client, wo_id, "acknowledged", headers=bearer(engine, Role.ENGINEER, username="wang"))).json()
    assert body["timeline"][-1]["actor"] == "wang"


async def test_openapi_documents_the_conflict_problem(client: httpx.AsyncClient) -> None:
    spec = (await client.get("http://facmon.test/openapi.json")).json()
    post = spec["paths"]["/api/v1/work-orders/{work_order_id}/transitions"]["post"]
    conflict = post["responses"]["409"]["content"][PROBLEM]["schema"]["$ref"]
    assert conflict.endswith("/TransitionProblem")
    assert set(spec["components"]["schemas"]["TransitionProblem"]["properties"]) >= {"current_status", "allowed"}
    body = spec["components"]["schemas"]["TransitionCreate"]["properties"]["to"]
    assert body["enum"] == ["acknowledged", "on_site", "resolved", "closed", "cancelled"]


async def test_arrival_is_proved_only_by_a_qualified_technician(
    client: httpx.AsyncClient, engine: Engine, clock: FakeClock
) -> None:
    wo_id = fault(engine, clock)
    fire_technician = bearer(engine, Role.TECHNICIAN, technician="zhao")
    refused = await move(client, wo_id, "on_site", headers=fire_technician)
    assert refused.status_code == 403
    assert refused.json()["title"] == "Not qualified"
    assert "zhao is not a technician of s1 covering elevator work" in refused.json()["detail"]
    # An engineer records it only on behalf of the technician who arrived, and only a qualified one.
    unnamed = await client.post(f"/work-orders/{wo_id}/transitions", json={"to": "on_site"})
    assert (unnamed.status_code, unnamed.json()["title"]) == (403, "Arrival needs the technician")
    unqualified = await move(client, wo_id, "on_site", on_behalf_of="zhao")
    assert (unqualified.status_code, unqualified.json()["title"]) == (403, "Not qualified")
    stranger = await move(client, wo_id, "on_site", on_behalf_of="nobody")
    assert stranger.status_code == 403
    boss = bearer(engine, Role.ENGINEER, username="boss")
    recorded = await move(client, wo_id, "on_site", headers=boss, on_behalf_of="li")
    assert recorded.status_code == 200
    entry = recorded.json()["timeline"][-1]
    assert (entry["status"], entry["actor"], entry["detail"]["recorded_by"]) == ("on_site", "li", "boss")
    # A technician records only their own arrival.
    other = fault(engine, clock, device="e2")
    li = bearer(engine, Role.TECHNICIAN, username="li-phone", technician="li")
    assert (await move(client, other, "on_site", headers=li, on_behalf_of="zhao")).status_code == 403
    mine = await move(client, other, "on_site", headers=li)
    assert mine.status_code == 200, mine.json()
