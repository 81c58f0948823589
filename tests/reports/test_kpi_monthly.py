"""The monthly KPI report for October 2026 (site time) over the seeded year: each KPI's figure and the work orders
behind a miss (repair timeliness against each elevator work order's repair clock, not its arrival); InfluxDB
unreachable makes its two KPIs unavailable and the coverage of the others unknown ("insufficient data"), not the
report fail."""

from __future__ import annotations

import asyncio
import csv
import io

import httpx
import pypdfium2 as pdfium
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from facmon.kernel.influx import InfluxSettings
from facmon.reports.kpi_data import InfluxReader
from facmon.reports.kpi_monthly import KpiMonthlyReport, kpi_monthly_report
from facmon.reports.kpi_output import kpi_csv, kpi_pdf
from tests.reports.support import NOW, SITE, at


def _refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


@pytest.fixture(scope="module")
def report(seeded: tuple[Engine, dict[str, int]]) -> KpiMonthlyReport:
    async def build() -> KpiMonthlyReport:
        influx = InfluxReader(
            InfluxSettings("http://influx.invalid:8086", "facmon"), transport=httpx.MockTransport(_refuse)
        )
        try:
            with Session(seeded[0]) as session:
                return await kpi_monthly_report(session, SITE, "2026-10", NOW, influx)
        finally:
            await influx.aclose()

    return asyncio.run(build())


def test_period_is_the_month_in_site_time(report: KpiMonthlyReport) -> None:
    assert (report.period_start, report.period_end) == (at("2026-09-30 16:00"), at("2026-10-31 16:00"))
    assert [k.key for k in report.kpis] == [
        "arrival_compliance",
        "arrival_compliance_statutory",
        "fire_intact_rate",
        "repair_timeliness",
        "follow_up_rate",
        "elevator_availability",
    ]


def test_arrival_compliance_and_the_late_work_orders(
    report: KpiMonthlyReport, seeded: tuple[Engine, dict[str, int]]
) -> None:
    ids = seeded[1]
    twenty, statutory = report.kpis[0], report.kpis[1]
    # October's elevator work orders, each by its 20-minute on-site clock: door-close +18, fault-5 +25, fault-13 +8,
    # edge-fault +10, young-late +15, unattended never. The coverage is unknown without InfluxDB.
    assert (twenty.numerator, twenty.denominator, twenty.value, twenty.coverage, twenty.verdict) == (
        4,
        6,
        4 / 6,
        None,
        "insufficient data",
    )
    assert twenty.reason == "coverage unknown: InfluxDB not reachable"
    assert [(c.minutes, c.work_orders) for c in twenty.clocks] == [(20, 6)]
    assert [(m.id, m.late_min, m.detail) for m in twenty.misses] == [
        (ids["fault-5"], 5.0, "on site 25.0 min after"),
        # Due 2026-10-31 15:20, still nobody on 2026-11-05 02:00: late counts to the month's end (16:00), not to
        # the report's making.
        (ids["unattended"], 40.0, "no technician on site yet"),
    ]
    # None of them was an entrapment: no statutory clock, nothing in that figure.
    assert (statutory.numerator, statutory.denominator, statutory.verdict, statutory.misses) == (0, 0, "no data", [])
    assert twenty.target == statutory.target == 1.0


def test_repair_timeliness_and_follow_ups(report: KpiMonthlyReport, seeded: tuple[Engine, dict[str, int]]) -> None:
    ids = seeded[1]
    repair, follow_up = report.kpis[3], report.kpis[4]
    # Elevator work orders' repair deadline is their 24 h repair clock (no longer the 20-minute arrival): due in
    # October are door-close (+2 h), fault-5 (+50 min), fault-13 (+15 min) and young-late (+30 h); edge-fault and
    # unattended are due on 1 November, after the month. 3 of 4 < 99 %.
    assert (repair.numerator, repair.denominator, repair.target, repair.verdict) == (3, 4, 0.99, "insufficient data")
    assert [(m.id, m.late_min, m.detail) for m in repair.misses] == [
        (ids["young-late"], 360.0, "repaired after its deadline"),  # 6 October 08:00, due 6 October 02:00
    ]
    # Resolved in October: door-close, fault-5, fault-13, young-late; fault-13 and young-late were followed up.
    # 2 of 4 >= 30 %: no list (and no verdict of "met" while the coverage is unknown).
    assert (follow_up.numerator, follow_up.denominator, follow_up.verdict, follow_up.misses) == (
        2,
        4,
        "insufficient data",
        [],
    )


def test_influx_unreachable_is_unavailable_not_a_failure(report: KpiMonthlyReport) -> None:
    intact, availability = report.kpis[2], report.kpis[5]
    for line in (intact, availability):
        assert (line.verdict, line.value, line.coverage) == ("unavailable", None, None)
        assert line.reason is not None
        assert "InfluxDB unreachable" in line.reason
    assert (intact.target, availability.target) == (1.0, 0.995)


def test_without_influx_configured(seeded: tuple[Engine, dict[str, int]]) -> None:
    with Session(seeded[0]) as session:
        report = asyncio.run(kpi_monthly_report(session, SITE, "2026-10", NOW, None))
    assert report.kpis[2].reason == "InfluxDB is not configured (FACMON_INFLUX_URL)"
    assert report.kpis[0].reason == "coverage unknown: InfluxDB not configured"


def test_bad_month() -> None:
    with pytest.raises(ValueError, match="YYYY-MM"):
        asyncio.run(kpi_monthly_report(None, SITE, "2026-13", NOW, None))  # type: ignore[arg-type]


def test_csv_and_json(report: KpiMonthlyReport, seeded: tuple[Engine, dict[str, int]]) -> None:
    ids = seeded[1]
    figures, cancelled = kpi_csv(report).split("\n\n")
    rows = {r["kpi"]: r for r in csv.DictReader(io.StringIO(figures))}
    assert (
        cancelled
        == "cancelled_work_order,kind,device,title,detected_at,cancelled_at,cancelled_by,reason,missed_clocks\n"
    )
    assert (rows["arrival_compliance"]["value"], rows["arrival_compliance"]["verdict"]) == (
        str(4 / 6),
        "insufficient data",
    )
    assert rows["arrival_compliance"]["work_orders_behind_miss"] == (
        f"#{ids['fault-5']} old1 +5.0 min; #{ids['unattended']} old1 +40.0 min"
    )
    assert rows["fire_intact_rate"]["verdict"] == "unavailable"
    assert KpiMonthlyReport.model_validate_json(report.model_dump_json()) == report


def test_pdf(report: KpiMonthlyReport, seeded: tuple[Engine, dict[str, int]]) -> None:
    document = pdfium.PdfDocument(kpi_pdf(report))
    try:
        text = "\n".join(page.get_textpage().get_text_range() for page in document)
        assert len(document) in (1, 2)
    finally:
        document.close()
    assert "Monthly KPI report" in text
    assert "Maple Court" in text
    assert "insufficient data" in text
    assert "unavailable" in text
    assert f"#{seeded[1]['unattended']}" in text
