"""Nothing a disabled user signed still acts, through the real server: an acknowledge link of a technician whose
account is disabled, removed, or no longer of a role that changes work orders, or who left the site, is refused with
the reason (and the work order stays open); a supervisor's or manager's link, only while they still are; a disabled
user's session stops working at the next request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, delete, update
from sqlalchemy.orm import Session

from api import create_app
from api.accounts.models import ApiToken, Role, User
from api.deps import get_clock
from facmon.estate.site import Site
from facmon.kernel.clock import FakeClock
from facmon.notifier.tokens import issue
from tests.api.accounts import bearer
from tests.api.test_auth import KEY, NORTH, PASSWORD, START, fault, user
from tests.api.test_login_throttle import server  # noqa: F401  (fixture: the app in uvicorn on a free port)

PROBLEM = "application/problem+json"
MANAGER_PHONE = "+86 138 0000 0009"
# NORTH with a manager who is a contact, not a technician.
NORTH_WITH_MANAGER = Site.model_validate(
    NORTH.model_dump(mode="json", exclude_none=True) | {"manager": {"name": "Chen Jing", "phone": MANAGER_PHONE}}
)
# NORTH as its site file reads after li-ming left it.
NORTH_WITHOUT_LI = Site.model_validate(NORTH.model_dump(mode="json", exclude_none=True) | {"technicians": []})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def sites() -> list[Site]:
    return [NORTH_WITH_MANAGER]


@pytest.fixture
def app(engine: Engine, clock: FakeClock, sites: list[Site]) -> FastAPI:
    app = create_app(sites=sites, engine=engine, ack_secret=KEY)
    app.dependency_overrides[get_clock] = lambda: clock
    return app


@pytest.fixture
async def client(server: str) -> AsyncIterator[httpx.AsyncClient]:  # noqa: F811
    # What a phone's browser sends when a person taps the link.
    async with httpx.AsyncClient(base_url=server, headers={"Sec-Fetch-User": "?1"}, timeout=60) as client:
        yield client


def set_user(engine: Engine, username: str, **values: object) -> None:
    with Session(engine) as session, session.begin():
        session.execute(update(User).where(User.username == username).values(**values))


async def refused(client: httpx.AsyncClient, engine: Engine, wo_id: int, url: str) -> tuple[int, str, str]:
    """Tap and POST the link; both refused alike; the work order still open. (status, reason, detail)."""
    tap, post = await client.get(url), await client.post(url)
    assert (tap.status_code, tap.headers["content-type"]) == (post.status_code, PROBLEM), tap.text
    assert tap.json()["reason"] == post.json()["reason"]
    status = (await client.get(f"/work-orders/{wo_id}", headers=bearer(engine))).json()["status"]
    assert status == "open"
    return tap.status_code, tap.json()["reason"], tap.json()["detail"]


async def test_a_link_acts_while_its_technician_has_an_active_account(
    client: httpx.AsyncClient, engine: Engine, clock: FakeClock
) -> None:
    user(engine, "li-ming", Role.TECHNICIAN, technician="li-ming")
    wo_id = fault(engine, clock)
    answer = await client.get(f"/ack/{issue(KEY, wo_id, 'li-ming', now=clock.now())}")
    assert (answer.status_code, answer.json()["outcome"]) == (200, "acknowledged")


async def test_a_disabled_technicians_link_is_refused(
    client: httpx.AsyncClient, engine: Engine, clock: FakeClock
) -> None:
    user(engine, "li-ming", Role.TECHNICIAN, technician="li-ming")
    wo_id = fault(engine, clock)
    url = f"/ack/{issue(KEY, wo_id, 'li-ming', now=clock.now())}"  # sent while the account was active
    set_user(engine, "li-ming", active=False)
    assert await refused(client, engine, wo_id, url) == (
        403,
        "account_disabled",
        "the account of li-ming is disabled",
    )


async def test_a_link_of_a_technician_now_in_a_role_that_changes_nothing_is_refused(
    client: httpx.AsyncClient, engine: Engine, clock: FakeClock
) -> None:
    user(engine, "li-ming", Role.TECHNICIAN, technician="li-ming")
    wo_id = fault(engine, clock)
    url = f"/ack/{issue(KEY, wo_id, 'li-ming', now=clock.now())}"
    set_user(engine, "li-ming", role=Role.VIEWER.value)
    assert await refused(client, engine, wo_id, url) == (
        403,
        "role_changed",
        "li-ming is now viewer, which does not change work orders",
    )


async def test_a_link_of_a_removed_account_is_gone(client: httpx.AsyncClient, engine: Engine, clock: FakeClock) -> None:
    user(engine, "li-ming", Role.TECHNICIAN, technician="li-ming")
    wo_id = fault(engine, clock)
    url = f"/ack/{issue(KEY, wo_id, 'li-ming', now=clock.now())}"
    with Session(engine) as session, session.begin():
        session.execute(delete(ApiToken))
        session.execute(delete(User).where(User.username == "li-ming"))
    status, reason, _ = await refused(client, engine, wo_id, url)
    assert (status, reason) == (410, "no_account")


@pytest.mark.parametrize("sites", [[NORTH_WITHOUT_LI]])
async def test_a_link_of_a_technician_who_left_the_site_is_gone(
    client: httpx.AsyncClient, engine: Engine, clock: FakeClock
) -> None:
    user(engine, "li-ming", Role.TECHNICIAN, technician="li-ming")
    wo_id = fault(engine, clock)
    url = f"/ack/{issue(KEY, wo_id, 'li-ming', now=clock.now())}"
    assert await refused(client, engine, wo_id, url) == (
        410,
        "recipient_gone",
        "li-ming is no longer a technician of site north",
    )


async def test_a_managers_link_acts_while_they_are_the_sites_manager(
    client: httpx.AsyncClient, engine: Engine, clock: FakeClock
) -> None:
    wo_id = fault(engine, clock)
    former = f"/ack/{issue(KEY, wo_id, 'contact:8613800000001', now=clock.now())}"
    status, reason, _ = await refused(client, engine, wo_id, former)
    assert (status, reason) == (410, "recipient_gone")
    manager = "contact:" + "".join(ch for ch in MANAGER_PHONE if ch.isdigit())
    answer = await client.post(f"/ack/{issue(KEY, wo_id, manager, now=clock.now())}")
    assert (answer.status_code, answer.json()["outcome"]) == (200, "acknowledged")


async def test_a_disabled_users_session_stops_at_once(client: httpx.AsyncClient, engine: Engine) -> None:
    user(engine, "ann", Role.ENGINEER)
    signed_in = await client.post("/auth/login", json={"username": "ann", "password": PASSWORD})
    session = {"Authorization": f"Bearer {signed_in.json()['access_token']}"}
    assert (await client.get("/work-orders", headers=session)).status_code == 200
    disabled = await client.patch("/users/ann", json={"active": False}, headers=bearer(engine, Role.ADMIN))
    assert disabled.status_code == 200, disabled.text
    after = await client.get("/work-orders", headers=session)
    assert (after.status_code, after.headers["content-type"]) == (401, PROBLEM)
    # Even if its tokens were not revoked (a database edited by hand), an inactive user's token is refused.
    user(engine, "bob", Role.ENGINEER)
    api_token = bearer(engine, Role.ENGINEER, username="bob")
    set_user(engine, "bob", active=False)
    assert (await client.get("/work-orders", headers=api_token)).status_code == 401
