"""Entrapment is downtime (docs/kpis.md, "Elevator availability"), through GET /api/v1/kpis and the monthly report:
the controller's entrapment flag in normal service, and the cars' entrapment work orders from detection to
resolution (or now), unioned with the readings' down time, over real influxd readings and a real SQLite file."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from api import create_app
from api.accounts.models import Role
from api.deps import get_clock
from facmon.historian.lines import reading_line
from facmon.kernel.clock import FakeClock
from facmon.kernel.daemons import Influxd
from facmon.kernel.influx import InfluxSettings
from facmon.kernel.model import Reading
from facmon.reports.kpi_data import InfluxReader
from facmon.reports.kpi_monthly import kpi_monthly_report
from facmon.workorders.tables import WorkOrderStatus
from tests.api.accounts import bearer
from tests.api.lift_site import lift_site, local
from tests.reports.support import Seeder

SITE = lift_site("s3")


NOW = local(12)


def lines() -> list[str]:
    """A reading a minute of each car from 23:50 the evening before to now, 12:00 on 2 March.

    e1 (main, elev-gb-a): normal service and no fault code throughout, except the entrapment flag 02:00-02:20 and
    fault 2 at 05:00-05:30; silent 08:00-09:00. e2 (peak, elev-st-b, no flag): normal throughout. e3 (backup): not
    scheduled.
    """
    found = []
    at = local(23, 50, day=1)
    while at < NOW:
        for device in ("e1", "e2", "e3"):
            values: dict[str, str | int | bool]
            if device == "e2":
                values = {"service_mode": "normal", "e_code": 0, "fault_bits": 0}
            elif device == "e1" and local(8) <= at < local(9):
                continue
            else:
                trapped = device == "e1" and local(2) <= at < local(2, 20)
                code = 2 if device == "e1" and local(5) <= at < local(5, 30) else 0
                values = {"service_mode": "normal", "fault_code": code, "entrapment": trapped}
            line = reading_line(Reading(ref=SITE.ref(device), ts=at, values={**values, "moving": False}))
            assert line is not None
            found.append(line)
        at += timedelta(minutes=1)
    return found


def work_orders(engine: Engine) -> None:
    """The cars' entrapment work orders (and the ones that are not downtime)."""
    s = Seeder(engine, SITE)
    # e1: over the fault's second half and past it; over the silence; opened three minutes before now, still open.
    s.life("overlap", "e1", "entrapment", local(5, 15), on_site=10, resolved=45)
    s.life("silent", "e1", "entrapment", local(8, 30), on_site=10, resolved=40)
    s.fault("open", "e1", "entrapment", NOW - timedelta(minutes=3))
    # e2: detected from the car's state (it has no flag), 06:50-07:10, inside the 06:00-08:00 window.
    s.life("peak", "e2", "entrapment", local(6, 50), on_site=5, resolved=20)
    # e2: a false alarm, cancelled; the alarm button (not an entrapment, and its code is in no reading here).
    s.fault("false-alarm", "e2", "entrapment", local(7, 30))
    s.move("false-alarm", WorkOrderStatus.CANCELLED, local(7, 40))
    s.life("button", "e2", "15", local(7, 45), on_site=5, resolved=10)
    # e3: the backup car is not scheduled.
    s.life("backup", "e3", "entrapment", local(3), on_site=5, resolved=60)


async def test_entrapment_is_downtime_in_the_api_and_the_report(
    engine: Engine, influxd: Influxd, influx_db: str
) -> None:
    async with httpx.AsyncClient() as raw:
        written = await raw.post(f"{influxd.url}/write", params={"db": influx_db}, content="\n".join(lines()))
        written.raise_for_status()
    await asyncio.to_thread(work_orders, engine)

    reader = InfluxReader(InfluxSettings(influxd.url, influx_db))
    app = create_app(sites=[SITE], engine=engine, influx=reader)
    app.dependency_overrides[get_clock] = lambda: FakeClock(NOW)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://facmon.test/api/v1", headers=bearer(engine, Role.ENGINEER)
        ) as client:
            params = {"site": "s3", "from": "2026-03-02T00:00:00+08:00", "to": "2026-03-03T00:00:00+08:00"}
            answer = await client.get("/kpis", params=params)
        with Session(engine) as session:
            report = await kpi_monthly_report(session, SITE, "2026-03", NOW, reader)
    finally:
        await reader.aclose()
    assert answer.status_code == 200, answer.text
    availability = answer.json()["elevator_availability"]
    # e1, 12 h so far: the flag 20 min; the fault 05:00-05:30 and the work order 05:15-06:00 once, 60 min; the work
    # order 08:30-09:10, 40 min, half of it in the silence (known down); the open one 11:57 to now, 3 min: 123 min.
    # Unknown: the 07:59 reading holds 3 polls, to 08:02; then 08:02-08:30.
    # e2, 06:00-08:00 so far: 20 min.
    assert availability["elevators"] == [
        {"device": "e1", "role": "main", "scheduled_hours": 12.0, "downtime_hours": 2.05,
         "unknown_hours": 0.466667, "value": 0.829167, "coverage": 0.9611, "verdict": "missed", "met": False},
        {"device": "e2", "role": "peak", "scheduled_hours": 2.0, "downtime_hours": 0.333333, "unknown_hours": 0.0,
         "value": 0.833333, "coverage": 1.0, "verdict": "missed", "met": False},
    ]  # fmt: skip
    assert (availability["denominator_hours"], availability["downtime_hours"], availability["unknown_hours"]) == (
        14.0,
        2.383333,
        0.466667,
    )
    assert (availability["coverage"], availability["verdict"]) == (round(1 - 0.466667 / 14, 4), "missed")
    assert "entrapment work order open" in availability["note"]

    # The monthly report so far: 1 March has 28 h scheduled and readings only from 23:50 (27 h 50 min unknown), 2 March
    # as above.
    line = next(k for k in report.kpis if k.key == "elevator_availability")
    assert (line.denominator, line.numerator) == (42.0, round(42.0 - 143 / 60, 3))
    # Most of 1 March unknown: too little data for a verdict.
    assert (line.coverage, line.verdict) == (0.3262, "insufficient data")
    assert line.reason == "coverage 32.62% is below 95%; downtime 2.38 h, unknown 28.30 h"
