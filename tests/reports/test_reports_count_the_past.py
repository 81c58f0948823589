"""Reports count only the past (docs/kpis.md, "Reports"): what is still open is counted up to the earlier of the
report's as-of time and now, never to the end of a day that has not ended. And the entrapment work orders that
availability counts as down, read from a real SQLite file made through the rules store and the workflow."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from api import create_app
from api.accounts.models import Role
from api.deps import get_clock
from facmon.kernel.clock import FakeClock
from facmon.reports.insurance import insurance_report
from facmon.reports.insurance_models import ElevatorEntry, InsuranceReport
from facmon.reports.kpi_data import entrapment_intervals
from facmon.reports.kpi_monthly import kpi_monthly_report
from facmon.workorders.tables import WorkOrderStatus
from tests.api.accounts import bearer
from tests.reports.support import SITE, Seeder, at

AS_OF = date(2026, 10, 31)  # in Shanghai (UTC+8): 2026-10-30 16:00 to 2026-10-31 16:00 UTC
# 20:00 site time on the as-of day: the day has four hours to go.
NOW = at("2026-10-31 12:00")
LATER = at("2026-11-05 02:00")


@pytest.fixture
def seeder(engine: Engine) -> Seeder:
    """old1 trapped three minutes ago, nobody there yet; a door fault of old2 earlier in the day, resolved."""
    s = Seeder(engine)
    s.fault("trapped", "old1", "entrapment", NOW - timedelta(minutes=3))
    s.life("door", "old2", "2", at("2026-10-31 02:00"), ack=2, on_site=15, resolved=60)
    return s


def report(engine: Engine, as_of: date, now: datetime) -> InsuranceReport:
    with Session(engine) as session:
        return insurance_report(session, SITE, as_of, now)


def car(found: InsuranceReport, device: str) -> ElevatorEntry:
    return next(e for e in found.elevators if e.device == device)


def test_an_entrapment_three_minutes_old_is_three_minutes_down(engine: Engine, seeder: Seeder) -> None:
    today = report(engine, AS_OF, NOW)
    old1 = car(today, "old1")
    assert (old1.faults, old1.entrapments, old1.downtime_hours) == (1, 1, 0.05)
    assert [(i.status, i.response_min, i.arrival_min) for i in old1.incidents] == [("open", None, None)]
    assert [d.work_order_id for d in old1.open_defects] == [seeder.ids["trapped"]]
    # A resolved fault is what it was.
    assert car(today, "old2").downtime_hours == 1.0
    # The same day asked for after it ended: the work order, still open, counts to the day's end (16:00 UTC).
    assert car(report(engine, AS_OF, LATER), "old1").downtime_hours == 4.05


def test_visit_gaps_end_at_now(engine: Engine, seeder: Seeder) -> None:
    # edge has no visit recorded: one gap from the period's start to now, 4 hours short of 365 days.
    assert car(report(engine, AS_OF, NOW), "edge").longest_visit_gap_days == 364.8
    assert car(report(engine, AS_OF, LATER), "edge").longest_visit_gap_days == 365.0


def test_a_past_day_is_the_same_whenever_it_is_asked_for(engine: Engine, seeder: Seeder) -> None:
    # The day before: its 12 months ended before anything above happened, so now changes nothing.
    yesterday = AS_OF - timedelta(days=1)
    first, again = report(engine, yesterday, NOW), report(engine, yesterday, LATER)
    assert first.model_dump(exclude={"generated_at"}) == again.model_dump(exclude={"generated_at"})
    assert [(e.device, e.faults, e.downtime_hours, e.open_defects) for e in first.elevators] == [
        ("old2", 0, 0.0, []),
        ("old1", 0, 0.0, []),
    ]
    # Today's report made at the day's very end and any time later agree too.
    end_of_day = at("2026-10-31 16:00")
    assert report(engine, AS_OF, end_of_day).model_dump(exclude={"generated_at"}) == report(
        engine, AS_OF, LATER
    ).model_dump(exclude={"generated_at"})


async def test_the_insurance_route_counts_to_the_api_clock(engine: Engine, seeder: Seeder) -> None:
    app = create_app(sites=[SITE], engine=engine)
    app.dependency_overrides[get_clock] = lambda: FakeClock(NOW)
    transport = httpx.ASGITransport(app=app)
    headers = bearer(engine, Role.REPORTER, username="insurer")
    async with httpx.AsyncClient(transport=transport, base_url="http://facmon.test/api/v1/reports") as client:
        # No as-of date: today on the site's clock, 2026-10-31.
        answer = await client.get("/insurance", params={"site": "maple"}, headers=headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["as_of"] == "2026-10-31"
    assert {e["device"]: e["downtime_hours"] for e in body["elevators"]} == {"old2": 1.0, "edge": 0.0, "old1": 0.05}


def test_entrapment_intervals(engine: Engine, seeder: Seeder) -> None:
    start, now = at("2026-10-30 16:00"), NOW
    seeder.life("trapped-before", "old2", "entrapment", at("2026-10-30 15:00"), ack=1, on_site=10, resolved=90)
    seeder.life("trapped-done", "old2", "entrapment", at("2026-10-31 08:00"), on_site=10, resolved=20)
    seeder.fault("false-alarm", "edge", "entrapment", at("2026-10-31 09:00"))
    seeder.move("false-alarm", WorkOrderStatus.CANCELLED, at("2026-10-31 09:02"))
    seeder.fault("button", "edge", "15", at("2026-10-31 10:00"))  # the alarm button: not an entrapment
    seeder.fault("long-ago", "young", "entrapment", at("2026-10-01 10:00"))  # still open
    with Session(engine) as session:
        found = entrapment_intervals(session, "maple", start, now)
        elsewhere = entrapment_intervals(session, "elsewhere", start, now)
    assert {device: sorted(spans) for device, spans in found.items()} == {
        # Open: up to the end given (the period's end or now).
        "old1": [(NOW - timedelta(minutes=3), NOW)],
        # Resolved at 16:30, reaching into the period; resolved at 08:20.
        "old2": [(at("2026-10-30 15:00"), at("2026-10-30 16:30")), (at("2026-10-31 08:00"), at("2026-10-31 08:20"))],
        "young": [(at("2026-10-01 10:00"), NOW)],
    }
    assert elsewhere == {}
    assert all(lo.tzinfo is UTC or lo.utcoffset() == timedelta(0) for spans in found.values() for lo, _ in spans)


async def test_monthly_lateness_ends_at_the_month_end(engine: Engine, seeder: Seeder) -> None:
    # Detected at 23:50 on 31 October (site time), nobody yet on 5 November: the 20-min deadline (00:10) falls in
    # November, so October's report shows the miss 0 min late; the entrapment of 11:57 UTC, due at 12:17 (12:27 by
    # its statutory clock), is 223 (213) min late at the month's end (16:00 UTC), not 5 days. The door fault has no
    # statutory clock, so it is not in the statutory figure.
    seeder.fault("midnight", "old2", "3", at("2026-10-31 15:50"))
    with Session(engine) as session:
        report = await kpi_monthly_report(session, SITE, "2026-10", LATER, None)
    twenty, thirty = report.kpis[0], report.kpis[1]
    assert {m.id: m.late_min for m in twenty.misses} == {seeder.ids["trapped"]: 223.0, seeder.ids["midnight"]: 0.0}
    assert {m.id: m.late_min for m in thirty.misses} == {seeder.ids["trapped"]: 213.0}
