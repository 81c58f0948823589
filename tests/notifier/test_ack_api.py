"""/api/v1/ack/{token}: a tap (or a POST) acknowledges as the recipient, a link preview does not; idempotent;
bad or expired tokens are refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine

from api import create_app
from api.accounts.models import Role
from api.deps import get_clock
from facmon.estate.site import Site
from facmon.kernel.clock import FakeClock
from facmon.notifier.tokens import InsecureSecret, issue
from tests.api.accounts import bearer
from tests.api.test_work_order_actions import START, fault

KEY = b"9f2c4e71b8a05d3e6c17f4a29b80d5e3c6a1f7042be95d8c03a6f1e7b42d9c58"
# The site of tests.api.test_work_order_actions.fault's work orders, with the links' recipients as its technicians
# (named as their ids, so the timeline's actor is the id) and a manager who is a contact.
RECIPIENTS = ("li-ming", "li")
SITE = Site.model_validate(
    {
        "site": {"id": "s1"},
        "buildings": [
            {"id": "b1", "devices": [{"id": "e1", "kind": "elevator", "model": "elev-gb-a", "address": {"host": "h"}}]}
        ],
        "technicians": [
            {"id": name, "name": name, "phone": "+86 138 0000 0001", "disciplines": ["elevator"]} for name in RECIPIENTS
        ],
        "manager": {"name": "Chen Jing", "phone": "+86 138 0000 0009"},
    }
)
PROBLEM = "application/problem+json"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def app(engine: Engine, clock: FakeClock) -> FastAPI:
    for name in RECIPIENTS:  # a link acts only for a technician with an active account
        bearer(engine, Role.TECHNICIAN, technician=name)
    app = create_app(sites=[SITE], engine=engine, ack_secret=KEY)
    app.dependency_overrides[get_clock] = lambda: clock
    return app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    # What a phone's browser sends when a person taps the link (a preview does not).
    tap = {"Sec-Fetch-User": "?1"}
    async with httpx.AsyncClient(transport=transport, base_url="http://facmon.test/api/v1", headers=tap) as client:
        yield client


async def test_acknowledges_once_then_says_already(client: httpx.AsyncClient, engine: Engine, clock: FakeClock) -> None:
    wo_id = fault(engine, clock)
    token = issue(KEY, wo_id, "li-ming", now=clock.now())
    clock.advance(90)
    first = await client.get(f"/ack/{token}")
    assert first.status_code == 200
    assert first.json() == {
        "work_order_id": wo_id,
        "outcome": "acknowledged",
        "status": "acknowledged",
        "actor": "li-ming",
    }
    again = await client.get(f"/ack/{token}")
    assert (again.status_code, again.json()["outcome"]) == (200, "already acknowledged")
    detail = (await client.get(f"/work-orders/{wo_id}", headers=bearer(engine))).json()
    assert detail["status"] == "acknowledged"
    assert detail["acknowledged_at"] == (START + timedelta(seconds=90)).isoformat().replace("+00:00", "Z")
    acks = [e for e in detail["timeline"] if e["type"] == "transition" and e["status"] == "acknowledged"]
    assert [(e["actor"], e["source"]) for e in acks] == [("li-ming", "alert_link")]
    # The 3-minute acknowledge clock of an entrapment is met by the tap.
    clocks = {c["name"]: c for c in detail["sla"]["clocks"]}
    assert clocks["acknowledge"]["state"] == "met"


async def test_a_browser_gets_a_page(client: httpx.AsyncClient, engine: Engine, clock: FakeClock) -> None:
    wo_id = fault(engine, clock)
    page = await client.get(f"/ack/{issue(KEY, wo_id, 'li', now=clock.now())}", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert f"Work order #{wo_id} is acknowledged" in page.text


async def test_further_along_is_already_acknowledged(
    client: httpx.AsyncClient, engine: Engine, clock: FakeClock
) -> None:
    wo_id = fault(engine, clock)
    arrived = {"to": "on_site", "on_behalf_of": "li"}
    on_site = await client.post(f"/work-orders/{wo_id}/transitions", json=arrived, headers=bearer(engine))
    assert on_site.status_code == 200
    answer = await client.get(f"/ack/{issue(KEY, wo_id, 'li', now=clock.now())}")
    assert (answer.status_code, answer.json()["outcome"], answer.json()["status"]) == (
        200,
        "already acknowledged",
        "on_site",
    )


async def test_cancelled_is_a_conflict(client: httpx.AsyncClient, engine: Engine, clock: FakeClock) -> None:
    wo_id = fault(engine, clock)
    await client.post(
        f"/work-orders/{wo_id}/transitions", json={"to": "cancelled", "note": "false alarm"}, headers=bearer(engine)
    )
    answer = await client.get(f"/ack/{issue(KEY, wo_id, 'li', now=clock.now())}")
    assert (answer.status_code, answer.headers["content-type"], answer.json()["current_status"]) == (
        409,
        PROBLEM,
        "cancelled",
    )


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda wo, now: issue(KEY, wo, "li", now=now - timedelta(hours=13)), "expired"),
        (lambda wo, now: issue(b"another-key-of-at-least-32-bytes!!", wo, "li", now=now), "bad_signature"),
        (lambda wo, now: issue(KEY, wo, "li", now=now)[:-3] + "xyz", "bad_signature"),
        (lambda wo, now: "not-a-token", "malformed"),
    ],
)
async def test_bad_tokens_are_403_naming_why(
    client: httpx.AsyncClient, engine: Engine, clock: FakeClock, make: object, reason: str
) -> None:
    wo_id = fault(engine, clock)
    assert callable(make)
    answer = await client.get(f"/ack/{make(wo_id, clock.now())}")
    assert (answer.status_code, answer.headers["content-type"]) == (403, PROBLEM)
    assert answer.json()["reason"] == reason
    assert (await client.get(f"/work-orders/{wo_id}", headers=bearer(engine))).json()["status"] == "open"


async def test_unknown_work_order_is_404(client: httpx.AsyncClient, clock: FakeClock) -> None:
    answer = await client.get(f"/ack/{issue(KEY, 999, 'li', now=clock.now())}")
    assert (answer.status_code, answer.headers["content-type"]) == (404, PROBLEM)


async def test_without_a_key_the_route_is_unavailable(engine: Engine, clock: FakeClock) -> None:
    app = create_app(sites=[], engine=engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t/api/v1") as client:
        answer = await client.get(f"/ack/{issue(KEY, 1, 'li', now=clock.now())}")
    assert (answer.status_code, answer.headers["content-type"]) == (503, PROBLEM)


@pytest.mark.parametrize("secret", [b"", b"changeme", b"too-short", b"changeme" * 4, b"a" * 32])
def test_the_app_refuses_a_default_or_short_key(engine: Engine, secret: bytes) -> None:
    with pytest.raises(InsecureSecret):
        create_app(sites=[], engine=engine, ack_secret=secret)


async def test_a_link_preview_changes_nothing_and_offers_the_button(
    client: httpx.AsyncClient, engine: Engine, clock: FakeClock
) -> None:
    wo_id = fault(engine, clock)
    url = f"/ack/{issue(KEY, wo_id, 'li-ming', now=clock.now())}"
    preview = {"Sec-Fetch-User": ""}  # a chat app's unfurler: no user activation
    fetched = await client.get(url, headers=preview)
    assert fetched.json() == {"work_order_id": wo_id, "outcome": "confirm", "status": "open", "actor": "li-ming"}
    page = await client.get(url, headers=preview | {"accept": "text/html"})
    assert '<form method="post"><button type="submit">Acknowledge</button></form>' in page.text
    detail = (await client.get(f"/work-orders/{wo_id}", headers=bearer(engine))).json()
    assert detail["status"] == "open"
    pressed = await client.post(url, headers={"accept": "text/html"})
    assert (pressed.status_code, "<h1>Acknowledged</h1>" in pressed.text) == (200, True)
    again = await client.get(url, headers=preview)
    assert again.json()["outcome"] == "already acknowledged"
