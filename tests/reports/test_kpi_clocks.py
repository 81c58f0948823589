"""The monthly KPI report of Birch Court's October (tests/reports/kpi_month.py): each work order judged by its own
clocks (a 30-minute contract, the statutory clock of an entrapment), cancellations before and after a deadline, a
work order still pending, and the coverage read from a real influxd deciding "insufficient data"."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pypdfium2 as pdfium
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from facmon.kernel.daemons import Influxd
from facmon.kernel.db import make_engine
from facmon.kernel.influx import InfluxSettings
from facmon.reports.kpi_data import InfluxReader
from facmon.reports.kpi_monthly import KpiLine, KpiMonthlyReport, kpi_monthly_report
from facmon.reports.kpi_output import kpi_csv, kpi_pdf
from facmon.shell.migrations.schema import create_schema
from tests.reports import kpi_month
from tests.reports.kpi_month import AVAILABILITY_COVERAGE, DEVICE_COVERAGE, ELEVATOR_COVERAGE, MONTH, NOW, SITE, at


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, dict[str, int]]]:
    path: Path = tmp_path_factory.mktemp("kpi-month") / "facmon.db"
    engine = make_engine(f"sqlite:///{path}")
    create_schema(engine)
    ids = kpi_month.seed(engine)
    yield engine, ids
    engine.dispose()


@pytest.fixture(scope="module")
def influx_month(influxd: Influxd) -> Iterator[InfluxSettings]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    httpx.post(f"{influxd.url}/query", data={"q": f'CREATE DATABASE "{name}"'}).raise_for_status()
    kpi_month.write_readings(influxd.url, name)
    yield InfluxSettings(influxd.url, name)
    httpx.post(f"{influxd.url}/query", data={"q": f'DROP DATABASE "{name}"'})


def build(engine: Engine, settings: InfluxSettings | None) -> KpiMonthlyReport:
    async def run() -> KpiMonthlyReport:
        influx = None if settings is None else InfluxReader(settings)
        try:
            with Session(engine) as session:
                return await kpi_monthly_report(session, SITE, MONTH, NOW, influx)
        finally:
            if influx is not None:
                await influx.aclose()

    return asyncio.run(run())


@pytest.fixture(scope="module")
def report(month: tuple[Engine, dict[str, int]], influx_month: InfluxSettings) -> KpiMonthlyReport:
    return build(month[0], influx_month)


def line(report: KpiMonthlyReport, key: str) -> KpiLine:
    return next(k for k in report.kpis if k.key == key)


def counted(k: KpiLine) -> tuple[object, ...]:
    return (k.numerator, k.denominator, k.pending, k.coverage, k.verdict)


def test_arrival_by_each_work_orders_contract_clock(
    report: KpiMonthlyReport, month: tuple[Engine, dict[str, int]]
) -> None:
    ids = month[1]
    contract = line(report, "arrival_compliance")
    # on-time and at-deadline met their 30 minutes; late (+35), entrapment (+25 against 20) and cancelled-late
    # missed; false-alarm left with its cancellation in time; pending is still inside its 30 minutes.
    assert counted(contract) == (2, 5, 1, ELEVATOR_COVERAGE, "insufficient data")
    assert contract.value == 2 / 5
    assert [(c.minutes, c.work_orders) for c in contract.clocks] == [(20, 1), (30, 4)]
    assert contract.name == "Elevator arrival within the contract clock (20 min: 1 work order, 30 min: 4)"
    assert contract.reason == "coverage 93.55% is below 95%"
    assert [(m.id, m.late_min, m.detail) for m in contract.misses] == [
        (ids["late"], 5.0, "on site 35.0 min after"),
        (ids["entrapment"], 5.0, "on site 25.0 min after"),
        (ids["cancelled-late"], 15.0, "cancelled after its deadline, nobody on site"),
    ]


def test_arrival_by_the_statutory_clock(report: KpiMonthlyReport) -> None:
    statutory = line(report, "arrival_compliance_statutory")
    # Only the entrapment has a statutory clock (the false alarm was cancelled before it ran out).
    assert counted(statutory) == (1, 1, 0, ELEVATOR_COVERAGE, "insufficient data")
    assert [(c.minutes, c.work_orders) for c in statutory.clocks] == [(30, 1)]
    assert statutory.misses == []


def test_repair_and_follow_up(report: KpiMonthlyReport, month: tuple[Engine, dict[str, int]]) -> None:
    ids = month[1]
    repair, follow_up = line(report, "repair_timeliness"), line(report, "follow_up_rate")
    # Due in October: on-time, at-deadline, late, entrapment (4 h) and gate; cancelled-late's 24 h were still
    # running when it was cancelled, so it leaves this figure. The devices' coverage is enough to judge.
    assert counted(repair) == (4, 5, 0, DEVICE_COVERAGE, "missed")
    assert [(c.minutes, c.work_orders) for c in repair.clocks] == [(240, 1), (1440, 4)]
    assert [(m.id, m.late_min, m.detail) for m in repair.misses] == [(ids["late"], 10.0, "repaired after its deadline")]
    assert counted(follow_up) == (1, 5, 0, DEVICE_COVERAGE, "missed")


def test_cancellations_are_listed(report: KpiMonthlyReport, month: tuple[Engine, dict[str, int]]) -> None:
    ids = month[1]
    assert [
        (c.id, c.device, c.detected_at, c.cancelled_at, c.cancelled_by, c.reason, c.missed_clocks)
        for c in report.cancellations
    ] == [
        (ids["false-alarm"], "e2", at("2026-10-06 02:00"), at("2026-10-06 02:02"), "Wang Fang (engineer)",
         "duplicate report", []),
        (ids["cancelled-late"], "e1", at("2026-10-07 02:00"), at("2026-10-07 02:45"), "Wang Fang (engineer)",
         "fault gone, nobody went", ["on_site"]),
    ]  # fmt: skip


def test_the_influx_figures_say_why(report: KpiMonthlyReport) -> None:
    # No fire_intact figures at this site; availability from the readings, the peak car silent for 4 days.
    intact, availability = line(report, "fire_intact_rate"), line(report, "elevator_availability")
    # InfluxDB answered and holds none: nothing to count ("no data", nothing covered), not "unavailable".
    assert (intact.verdict, intact.coverage, intact.reason) == ("no data", 0.0, "no fire panel figures for this site")
    assert (availability.coverage, availability.verdict) == (AVAILABILITY_COVERAGE, "met")


def test_without_influxdb_the_work_order_figures_keep_their_ratio(month: tuple[Engine, dict[str, int]]) -> None:
    report = build(month[0], None)
    contract, repair = line(report, "arrival_compliance"), line(report, "repair_timeliness")
    assert counted(contract) == (2, 5, 1, None, "insufficient data")
    assert counted(repair) == (4, 5, 0, None, "insufficient data")
    assert repair.reason == "coverage unknown: InfluxDB not configured"
    assert line(report, "elevator_availability").verdict == "unavailable"


def test_csv_lists_coverage_verdict_and_cancellations(
    report: KpiMonthlyReport, month: tuple[Engine, dict[str, int]]
) -> None:
    ids = month[1]
    figures, cancelled = kpi_csv(report).split("\n\n")
    rows = {r["kpi"]: r for r in csv.DictReader(io.StringIO(figures))}
    arrival = rows["arrival_compliance"]
    assert (arrival["coverage"], arrival["verdict"], arrival["pending"], arrival["clocks"]) == (
        str(ELEVATOR_COVERAGE),
        "insufficient data",
        "1",
        "20 min: 1; 30 min: 4",
    )
    assert rows["repair_timeliness"]["verdict"] == "missed"
    listed = list(csv.DictReader(io.StringIO(cancelled)))
    assert [(r["cancelled_work_order"], r["cancelled_by"], r["reason"], r["missed_clocks"]) for r in listed] == [
        (str(ids["false-alarm"]), "Wang Fang (engineer)", "duplicate report", ""),
        (str(ids["cancelled-late"]), "Wang Fang (engineer)", "fault gone, nobody went", "on_site"),
    ]
    assert KpiMonthlyReport.model_validate_json(report.model_dump_json()) == report


def test_pdf_shows_verdicts_and_cancellations(report: KpiMonthlyReport, month: tuple[Engine, dict[str, int]]) -> None:
    document = pdfium.PdfDocument(kpi_pdf(report))
    try:
        text = "\n".join(page.get_textpage().get_text_range() for page in document)
    finally:
        document.close()
    assert "insufficient data" in text
    assert "Cancelled work orders" in text
    assert "fault gone, nobody went" in text
    assert f"#{month[1]['cancelled-late']}" in text
