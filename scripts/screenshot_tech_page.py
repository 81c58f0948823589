"""Take the pictures of the technician page for the docs: docs/tech-page.png (the list) and docs/tech-page-detail.png
(the entrapment, open, with its buttons), on a 375 px wide phone screen in the dark scheme.

    .venv/bin/python scripts/screenshot_tech_page.py      (or: make screenshots)

The same setup as the end-to-end test (tests/api/test_tech_page.py): a throw-away SQLite database with work orders
opened through the rules store a few minutes ago, the API in uvicorn on a free port, and Debian's Chromium headless
(apt-get install chromium). One more work order than the test, already past its deadline, so the red shows.
"""

from __future__ import annotations

import sys
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

from playwright.sync_api import expect, sync_playwright
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from facmon.kernel.clock import SystemClock  # noqa: E402
from facmon.kernel.db import make_engine  # noqa: E402
from facmon.kernel.model import Event, EventType  # noqa: E402
from facmon.shell.migrations.schema import create_schema  # noqa: E402
from facmon.workorders.tables import WorkOrder  # noqa: E402
from rules.engine import evaluate, load_rules  # noqa: E402
from rules.store import apply_event  # noqa: E402
from tests.api.test_tech_page import DEMO, PHONE, TECHNICIAN, launch, make_app, seed, serve, sign_in  # noqa: E402

DOCS = ROOT / "docs"


def overdue_fault(engine: Engine, now: datetime) -> None:
    """b2-e1 stopped 27 minutes ago: its 20-minute arrival deadline passed 7 minutes ago."""
    at = now - timedelta(minutes=27)
    event = Event(ref=DEMO.ref("b2-e1"), ts=at, type=EventType.FAULT_RAISED, code="3")
    result = apply_event(engine, event, evaluate(load_rules(), event, at), at)
    with Session(engine) as session, session.begin():
        session.execute(update(WorkOrder).where(WorkOrder.id.in_(result.opened)).values(assignee=TECHNICIAN))


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'facmon.db'}")
        create_schema(engine)
        now = SystemClock().now()
        seeded = seed(engine, now)
        overdue_fault(engine, now)
        try:
            with serve(make_app(engine)) as base, sync_playwright() as playwright:
                browser = launch(playwright)
                page = browser.new_context(**PHONE).new_page()
                page.goto(f"{base}/tech")
                sign_in(page)
                cards = page.locator("#list .card-link")
                expect(cards).to_have_count(3)
                expect(page.locator("#list .countdown.is-breached")).to_have_count(1)
                list_png = DOCS / "tech-page.png"
                page.screenshot(path=list_png)
                page.locator(f'[data-id="{seeded.entrapment}"]').click()
                expect(page.locator("#d-timeline li")).to_have_count(1)
                expect(page.get_by_role("button", name="Acknowledge")).to_be_visible()
                detail_png = DOCS / "tech-page-detail.png"
                page.screenshot(path=detail_png, full_page=True)
                browser.close()
        finally:
            engine.dispose()
    for path in (list_png, detail_png):
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
