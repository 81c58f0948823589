"""GET /api/v1/kpis over Birch Court's October (tests/reports/kpi_month.py) with a real influxd: every work order
judged by its own clocks, the clock figures named, the cancellations listed, coverage and verdict on every figure,
and the same numbers as the monthly report."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from api import create_app
from api.accounts.models import Role
from api.deps import get_clock
from facmon.kernel.clock import FakeClock
from facmon.kernel.daemons import Influxd
from facmon.kernel.influx import InfluxSettings
from facmon.reports.kpi_data import InfluxReader
from facmon.reports.kpi_monthly import kpi_monthly_report
from tests.api.accounts import bearer
from tests.reports import kpi_month
from tests.reports.kpi_month import AVAILABILITY_COVERAGE, DEVICE_COVERAGE, ELEVATOR_COVERAGE, MONTH, NOW, SITE

FIGURES = {
    "elevator_arrival_compliance": "arrival_compliance",
    "elevator_arrival_compliance_statutory": "arrival_compliance_statutory",
    "repair_timeliness": "repair_timeliness",
    "follow_up_visit_rate": "follow_up_rate",
}


def _counted(figure: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(figure[k] for k in ("numerator", "denominator", "pending", "coverage", "verdict", "met"))


async def test_kpis_by_each_work_orders_clocks(engine: Engine, influxd: Influxd, influx_db: str) -> None:
    ids = kpi_month.seed(engine)
    kpi_month.write_readings(influxd.url, influx_db)
    reader = InfluxReader(InfluxSettings(influxd.url, influx_db))
    app = create_app(sites=[SITE], engine=engine, influx=reader)
    app.dependency_overrides[get_clock] = lambda: FakeClock(NOW)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://facmon.test/api/v1",
            headers=bearer(engine, Role.ENGINEER),
        ) as client:
            # Without a period: the last complete month on the site's wall clock (NOW is 00:05 on 1 November there).
            month = (await client.get("/kpis", params={"site": "birch"})).json()
            first_week = (
                await client.get(
                    "/kpis",
                    params={"site": "birch", "from": "2026-10-01T00:00:00+08:00", "to": "2026-10-08T00:00:00+08:00"},
                )
            ).json()
        with Session(engine) as session:
            report = await kpi_monthly_report(session, SITE, MONTH, NOW, reader)
    finally:
        await reader.aclose()

    assert (month["from"], month["to"]) == ("2026-09-30T16:00:00Z", "2026-10-31T16:00:00Z")
    contract = month["elevator_arrival_compliance"]
    assert _counted(contract) == (2, 5, 1, ELEVATOR_COVERAGE, "insufficient data", None)
    assert contract["clocks"] == [{"minutes": 20, "work_orders": 1}, {"minutes": 30, "work_orders": 4}]
    assert contract["reason"] == "coverage 93.55% is below 95%"
    assert _counted(month["elevator_arrival_compliance_statutory"]) == (
        1, 1, 0, ELEVATOR_COVERAGE, "insufficient data", None
    )  # fmt: skip
    assert _counted(month["repair_timeliness"]) == (4, 5, 0, DEVICE_COVERAGE, "missed", False)
    assert _counted(month["follow_up_visit_rate"]) == (1, 5, 0, DEVICE_COVERAGE, "missed", False)
    availability = month["elevator_availability"]
    assert (availability["coverage"], availability["verdict"], availability["met"]) == (
        AVAILABILITY_COVERAGE,
        "met",
        True,
    )
    # InfluxDB answered and holds no fire figure: nothing to count.
    assert month["fire_equipment_intact_rate"]["verdict"] == "no data"
    assert [
        (c["id"], c["device"], c["cancelled_at"], c["cancelled_by"], c["reason"], c["missed_clocks"])
        for c in month["cancellations"]
    ] == [
        (ids["false-alarm"], "e2", "2026-10-06T02:02:00Z", "Wang Fang (engineer)", "duplicate report", []),
        (ids["cancelled-late"], "e1", "2026-10-07T02:45:00Z", "Wang Fang (engineer)", "fault gone, nobody went",
         ["on_site"]),
    ]  # fmt: skip

    # The API and the report agree on every figure.
    lines = {line.key: line for line in report.kpis}
    for name, key in FIGURES.items():
        line = lines[key]
        assert (month[name]["numerator"], month[name]["denominator"]) == (line.numerator, line.denominator), name
        assert (month[name]["coverage"], month[name]["verdict"], month[name]["pending"]) == (
            line.coverage,
            line.verdict,
            line.pending,
        ), name
    assert [c["id"] for c in month["cancellations"]] == [c.id for c in report.cancellations]

    # The first week, every device heard throughout: the verdicts are the ratios'.
    assert _counted(first_week["elevator_arrival_compliance"]) == (2, 5, 0, 1.0, "missed", False)
    assert _counted(first_week["elevator_arrival_compliance_statutory"]) == (1, 1, 0, 1.0, "met", True)
    assert [c["id"] for c in first_week["cancellations"]] == [ids["false-alarm"], ids["cancelled-late"]]
