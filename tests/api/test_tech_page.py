"""The technician page (/tech) end to end: the real app in uvicorn over a real SQLite file, driven in headless
Chromium on a phone-sized screen.

The browser is Debian's Chromium (apt-get install chromium; `make test` installs it), not one Playwright downloads.
The API runs on the system clock: the page counts down to deadlines in real time, so the work orders are seeded
relative to now. The helpers here (site, seeding, serving, launching) are also what scripts/screenshot_tech_page.py
uses for the pictures in docs/.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session

from api import create_app
from api.accounts.models import Role
from api.accounts.store import create_user, get_user, revoke_all
from api.accounts.throttle import LoginThrottle
from api.routes import tech
from facmon.estate.site import Site, load_site
from facmon.kernel.model import Event, EventType
from facmon.workorders.queries import get_work_order
from facmon.workorders.tables import WorkOrder, WorkOrderStatus
from facmon.workorders.workflow import transition
from rules.engine import evaluate, load_rules
from rules.store import apply_event
from tests.support import serving_in_thread

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE: dict[str, Any] = {
    "viewport": {"width": 375, "height": 812},
    "is_mobile": True,
    "has_touch": True,
    "device_scale_factor": 2,
    "color_scheme": "dark",
}

EXAMPLES = Path(__file__).parents[2] / "examples"
DEMO = load_site(EXAMPLES / "demo-site.yaml")  # li-ming works here
# An estate li-ming does not work at: its work orders are not his to see.
OTHER = Site.model_validate(
    {
        "site": {"id": "east-court", "name": "East Court"},
        "buildings": [
            {"id": "b9", "devices": [{"id": "b9-e1", "kind": "elevator", "model": "m", "address": {"host": "h"}}]}
        ],
    }
)
TECHNICIAN = "li-ming"
USERNAME = "li-ming"
PASSWORD = "lift-lobby-at-night"


@dataclass(frozen=True)
class Seeded:
    entrapment: int  # emergency, the acknowledgement due in about a minute
    door: int  # urgent, unassigned, on site due in about 16 minutes
    elsewhere: int  # at the other estate


def seed(engine: Engine, now: datetime) -> Seeded:
    """Three work orders through the rules store, as the worker opens them, detected shortly before `now` (the
    entrapment assigned to li-ming, the door fault to nobody), and the technician's user."""
    rules = load_rules()

    def fault(site: Site, device: str, code: str, minutes_ago: float) -> int:
        at = now - timedelta(minutes=minutes_ago)
        event = Event(ref=site.ref(device), ts=at, type=EventType.FAULT_RAISED, code=code)
        result = apply_event(engine, event, evaluate(rules, event, at), at)
        (work_order_id,) = result.opened
        return work_order_id

    seeded = Seeded(
        entrapment=fault(DEMO, "b1-e1", "entrapment", 2),
        door=fault(DEMO, "b1-e2", "2", 4),
        elsewhere=fault(OTHER, "b9-e1", "3", 1),
    )
    with Session(engine) as session, session.begin():
        session.execute(update(WorkOrder).where(WorkOrder.id == seeded.entrapment).values(assignee=TECHNICIAN))
        create_user(
            session,
            username=USERNAME,
            role=Role.TECHNICIAN,
            password=PASSWORD,
            now=now,
            display_name="Li Ming",
            technician=TECHNICIAN,
        )
    return seeded


def make_app(engine: Engine) -> FastAPI:
    app = create_app(sites=[DEMO, OTHER], engine=engine)
    tech.install(app)
    return app


def serve(app: FastAPI) -> AbstractContextManager[str]:
    """The app in uvicorn on a free port, in a thread: the browser driver blocks this one."""
    return serving_in_thread(app, "tech-page-server")


def launch(playwright: Playwright) -> Browser:
    """Debian's Chromium, headless."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def sign_in(page: Page, password: str = PASSWORD) -> None:
    page.get_by_label("Username").fill(USERNAME)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


# Recorded by the page itself: what the Content-Security-Policy refused.
WATCH_CSP = (
    "window.__cspViolations = [];"
    "document.addEventListener('securitypolicyviolation',"
    " (e) => window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));"
)


# --- the tests ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.fail("Chromium is not installed: make test installs it (apt-get install chromium)")
    expect.set_options(timeout=10_000)
    with sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[tuple[Page, list[str]]]:
    context = browser.new_context(**PHONE)
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
    page.add_init_script(WATCH_CSP)
    yield page, errors
    context.close()


def no_horizontal_scroll(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the page is {width} px wide on a 375 px screen"


def drop_refusals(errors: list[str], status: int) -> None:
    """Chromium logs every answer >= 400 to the console; take out the one a step expected, and only that."""
    expected = f"the server responded with a status of {status}"
    assert any(expected in e for e in errors), errors
    errors[:] = [e for e in errors if expected not in e]


def seconds_of(countdown: str) -> int:
    """'01:05 left' -> 65, '12:04 overdue' -> -724."""
    match = re.fullmatch(r"(?:(\d+):)?(\d\d):(\d\d) (left|overdue)", countdown.strip())
    assert match, countdown
    hours, minutes, seconds, sign = match.groups()
    total = int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds)
    return total if sign == "left" else -total


def test_a_technician_works_an_entrapment_from_the_phone(
    engine: Engine, page: tuple[Page, list[str]], tmp_path: Path
) -> None:
    seeded = seed(engine, datetime.now(UTC))
    page_, errors = page
    with serve(make_app(engine)) as base:
        response = page_.goto(f"{base}/tech")
        assert response is not None
        assert response.ok
        assert "default-src 'self'" in response.headers["content-security-policy"]

        # A wrong password is said so, and nothing else happens.
        sign_in(page_, password="not-my-password")
        expect(page_.get_by_role("alert")).to_have_text("Wrong username or password.")
        expect(page_.get_by_role("heading", name="My open work orders")).to_be_hidden()
        drop_refusals(errors, 401)

        sign_in(page_)
        cards = page_.locator("#list .card-link")
        expect(cards).to_have_count(2)
        # The emergency first, highlighted; the other estate's work order is not shown.
        expect(cards.nth(0)).to_contain_text("entrapment")
        expect(cards.nth(0)).to_contain_text("Emergency")
        expect(page_.locator("#list .card.priority-emergency")).to_have_count(1)
        expect(cards.nth(1)).to_contain_text("door close fault")
        expect(cards.nth(1)).to_contain_text("Unassigned")
        expect(page_.locator("#list")).not_to_contain_text("east-court")
        expect(page_.locator("header")).to_contain_text("Li Ming")

        # The countdown runs: about a minute to acknowledge the entrapment, amber (under five minutes).
        countdown = cards.nth(0).locator(".countdown")
        expect(countdown).to_have_class(re.compile(r"\bis-soon\b"))
        expect(countdown).to_contain_text("Acknowledge")
        first = countdown.locator(".countdown-time").inner_text()
        assert 30 <= seconds_of(first) <= 65, first
        page_.wait_for_timeout(1500)  # the one fixed wait: time has to pass for a countdown to move
        second = countdown.locator(".countdown-time").inner_text()
        assert second != first
        assert 0 < seconds_of(first) - seconds_of(second) <= 3, (first, second)
        door_left = seconds_of(cards.nth(1).locator(".countdown-time").inner_text())
        assert 14 * 60 <= door_left <= 16 * 60 + 5, door_left
        no_horizontal_scroll(page_)
        page_.screenshot(path=tmp_path / "list.png", full_page=True)

        # One work order: where, what, who else, its history; acknowledge, on site, resolve with a note.
        cards.nth(0).click()
        expect(page_).to_have_url(re.compile(rf"#/wo/{seeded.entrapment}$"))
        detail = page_.locator("#detail")
        expect(detail.locator("#d-status")).to_have_text("Open")
        expect(detail.locator("#d-where")).to_contain_text("b1-e1")
        expect(detail.locator("#d-what")).to_contain_text("entrapment")
        expect(detail.locator("#d-people")).to_contain_text("Li Ming (you)")
        expect(detail.locator("#d-timeline li")).to_have_count(1)
        expect(page_.get_by_role("button", name="Resolve", exact=True)).to_be_hidden()
        no_horizontal_scroll(page_)

        page_.get_by_role("button", name="Acknowledge").click()
        expect(detail.locator("#d-status")).to_have_text("Acknowledged")
        expect(page_.get_by_role("button", name="Acknowledge")).to_be_hidden()
        page_.get_by_role("button", name="On site").click()
        expect(detail.locator("#d-status")).to_have_text("On site")

        page_.get_by_role("button", name="Resolve", exact=True).click()
        note = page_.get_by_label("What was wrong, what did you do? (required)")
        expect(note).to_be_focused()
        # The note is required.
        page_.get_by_role("button", name="Confirm resolved").click()
        expect(page_.locator("#detail-error")).to_contain_text("before resolving")
        expect(detail.locator("#d-status")).to_have_text("On site")
        note.fill("Released two passengers at floor 7; the door lock contact was dirty, cleaned and tested.")
        page_.get_by_role("button", name="Confirm resolved").click()
        expect(detail.locator("#d-status")).to_have_text("Resolved")
        expect(page_.locator("#detail-ok")).to_have_text("Resolved. Thank you.")
        # History, newest first: the resolution with its note on top.
        newest = detail.locator("#d-timeline li").first
        expect(newest).to_contain_text("Resolved")
        expect(newest).to_contain_text("door lock contact was dirty")
        expect(newest).to_contain_text("li-ming")
        expect(detail.locator("#d-actions button")).to_have_count(0)
        no_horizontal_scroll(page_)
        page_.screenshot(path=tmp_path / "detail.png", full_page=True)

        # The database has it as the page said.
        with Session(engine) as session:
            work_order = get_work_order(session, seeded.entrapment)
            assert work_order is not None
            assert work_order.status == WorkOrderStatus.RESOLVED.value
            transitions = [(e.status, e.actor, e.source) for e in work_order.timeline if e.type == "transition"]
            assert transitions == [
                ("acknowledged", "li-ming", "api"),
                ("on_site", "li-ming", "api"),
                ("resolved", "li-ming", "api"),
            ]
            assert "door lock contact was dirty" in (work_order.timeline[-1].note or "")

        # Back in the list the resolved one is gone.
        page_.get_by_role("link", name="← My work orders").click()
        expect(cards).to_have_count(1)
        expect(cards.nth(0)).to_contain_text("door close fault")

        # An unassigned one: take it, and leave a note.
        cards.nth(0).click()
        expect(detail.locator("#d-status")).to_have_text("Open")
        expect(detail.locator("#d-people")).to_contain_text("Nobody yet")
        page_.get_by_role("button", name="Take it").click()
        expect(page_.locator("#detail-ok")).to_have_text("You have it now.")
        expect(detail.locator("#d-people")).to_contain_text("Li Ming (you)")
        expect(page_.get_by_role("button", name="Take it")).to_be_hidden()
        page_.get_by_label("Note", exact=True).fill("Door operator belt worn; parts ordered.")
        door_url = f"{base}/api/v1/work-orders/{seeded.door}"
        with page_.expect_response(lambda r: r.url == door_url and r.request.method == "GET") as reloaded:
            page_.get_by_role("button", name="Add note").click()
        expect(page_.locator("#detail-ok")).to_have_text("Note added.")
        expect(detail.locator("#d-timeline li").first).to_contain_text("parts ordered")
        expect(page_.get_by_label("Note", exact=True)).to_have_value("")

        # A button drawn before someone else moved the work order: the refusal is shown in words. (The page's own
        # refreshes get the work order as it was, so one firing now cannot redraw the button away.)
        stale = reloaded.value.body()
        page_.route(door_url, lambda route: route.fulfill(status=200, content_type="application/json", body=stale))
        now = datetime.now(UTC)
        transition(engine, seeded.door, WorkOrderStatus.ACKNOWLEDGED, actor="zhao-lei", source="api", at=now)
        page_.get_by_role("button", name="Acknowledge").click()
        expect(page_.locator("#detail-error")).to_contain_text("Transition not allowed")
        expect(page_.locator("#detail-error")).to_contain_text("acknowledged")
        drop_refusals(errors, 409)
        page_.unroute(door_url)
        with Session(engine) as session:
            door = get_work_order(session, seeded.door)
            assert door is not None
            assert (door.assignee, door.status) == (TECHNICIAN, "acknowledged")
            assert [(e.actor, e.note) for e in door.timeline if e.type == "note"] == [
                ("li-ming", "Door operator belt worn; parts ordered.")
            ]

        # Log out: back to sign in, and the token is gone from the tab.
        page_.get_by_role("button", name="Log out").click()
        expect(page_.get_by_role("heading", name="Sign in")).to_be_visible()
        assert page_.evaluate("sessionStorage.length") == 0

        # A session ended elsewhere (an admin revoked it, or it expired): the next call brings sign in back.
        sign_in(page_)
        expect(cards).to_have_count(1)
        with Session(engine) as session, session.begin():
            user = get_user(session, USERNAME)
            assert user is not None
            revoke_all(user, datetime.now(UTC))
        page_.get_by_role("button", name="Refresh").click()
        expect(page_.get_by_role("heading", name="Sign in")).to_be_visible()
        expect(page_.locator("#login-error")).to_have_text("Your session has ended. Sign in again.")
        drop_refusals(errors, 401)

        assert page_.evaluate("window.__cspViolations") == []
    assert errors == [], errors


def test_too_many_failed_logins_say_how_long_to_wait(engine: Engine, page: tuple[Page, list[str]]) -> None:
    seed(engine, datetime.now(UTC))
    app = make_app(engine)
    app.state.login_throttle = LoginThrottle(free_failures=1, first_delay_s=60.0)
    page_, errors = page
    with serve(app) as base:
        page_.goto(f"{base}/tech")
        sign_in(page_, password="wrong-one")
        expect(page_.get_by_role("alert")).to_have_text("Wrong username or password.")
        sign_in(page_, password="wrong-two")
        expect(page_.get_by_role("alert")).to_have_text(re.compile(r"Too many attempts\. Wait (5\d|60) s"))
        expect(page_.get_by_role("button", name="Sign in")).to_be_disabled()
        assert page_.evaluate("window.__cspViolations") == []
    drop_refusals(errors, 401)
    drop_refusals(errors, 429)
    assert errors == [], errors
