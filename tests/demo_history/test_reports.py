"""The reports over the generated year show a past: the insurance report as of the history's last day and the
monthly KPI report of the last complete month, each figure checked against one derived here from the generated
work orders, visits and InfluxDB events."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from facmon.kernel.influx import InfluxSettings
from facmon.reports.availability import intersect, merge, scheduled_intervals, seconds
from facmon.reports.insurance import NOT_LIFT_FAULTS, insurance_report
from facmon.reports.insurance_models import InsuranceReport
from facmon.reports.kpi_data import InfluxReader
from facmon.reports.kpi_monthly import KpiLine, KpiMonthlyReport, kpi_monthly_report
from facmon.workorders.tables import FollowUp, WorkOrder, WorkOrderClock
from rules.maintenance_models import MaintenanceVisit
from tests.demo_history.conftest import Year
from tests.demo_history.support import UNTIL, query

MONTH = "2026-10"
OLD_CARS = ["b1-e1", "b1-e2", "b2-e1", "b2-e2"]


def _minutes(later: datetime, earlier: datetime) -> float:
    return round((later - earlier).total_seconds() / 60.0, 1)


@pytest.fixture(scope="module")
def insurance(year: Year) -> InsuranceReport:
    with Session(year.engine) as session:
        return insurance_report(session, year.site, UNTIL.astimezone(year.site.tz).date(), UNTIL)


@pytest.fixture(scope="module")
def kpis(year: Year) -> KpiMonthlyReport:
    async def build() -> KpiMonthlyReport:
        influx = InfluxReader(InfluxSettings(year.influx_url, year.influx_db))
        try:
            with Session(year.engine) as session:
                return await kpi_monthly_report(session, year.site, MONTH, UNTIL, influx)
        finally:
            await influx.aclose()

    return asyncio.run(build())


def _kpi(report: KpiMonthlyReport, key: str) -> KpiLine:
    return next(line for line in report.kpis if line.key == key)


def test_insurance_lists_the_old_cars_with_a_year_of_faults(year: Year, insurance: InsuranceReport) -> None:
    assert sorted(e.device for e in insurance.elevators) == OLD_CARS
    start, end = insurance.period_start, insurance.period_end
    with Session(year.engine) as session:
        for entry in insurance.elevators:
            faults = (
                session.execute(
                    select(WorkOrder).where(
                        WorkOrder.device == entry.device,
                        WorkOrder.category == "repair",
                        WorkOrder.fault.not_in(NOT_LIFT_FAULTS),
                        WorkOrder.status != "cancelled",
                        WorkOrder.detected_at >= start,
                        WorkOrder.detected_at < end,
                    )
                )
                .scalars()
                .all()
            )
            arrivals = [_minutes(wo.on_site_at, wo.detected_at) for wo in faults if wo.on_site_at]
            responses = [_minutes(wo.acknowledged_at, wo.detected_at) for wo in faults if wo.acknowledged_at]
            assert entry.faults == len(faults) >= 12, entry.device
            assert entry.entrapments == sum(wo.fault == "entrapment" for wo in faults) > 0
            assert entry.arrival_mean_min == round(sum(arrivals) / len(arrivals), 1)
            assert 10 < (entry.arrival_mean_min or 0) < 22
            assert entry.response_mean_min == round(sum(responses) / len(responses), 1)
            assert entry.arrivals_within_20_min == sum(a <= 20 for a in arrivals) < len(arrivals)
            assert entry.downtime_hours == round(
                seconds(intersect(merge((wo.detected_at, wo.resolved_at or end) for wo in faults), [(start, end)]))
                / 3600,
                2,
            )
            assert entry.open_defects == []
    assert insurance.summary.faults == sum(e.faults for e in insurance.elevators)
    assert all(month.faults > 0 for month in insurance.faults_per_month)


def test_insurance_visits_show_the_seeded_misses(year: Year, insurance: InsuranceReport) -> None:
    """Every car visited on the 15-day cycle but for the seeded misses: each of those is a cycle missed in the
    report and a maintenance_overdue check work order, resolved by the late visit."""
    start, end = insurance.period_start, insurance.period_end
    missed = {}
    with Session(year.engine) as session:
        for entry in insurance.elevators:
            visits = (
                session.execute(
                    select(MaintenanceVisit.started_at).where(
                        MaintenanceVisit.device == entry.device,
                        MaintenanceVisit.started_at >= start,
                        MaintenanceVisit.started_at < end,
                    )
                )
                .scalars()
                .all()
            )
            overdue = (
                session.execute(
                    select(WorkOrder).where(WorkOrder.device == entry.device, WorkOrder.fault == "maintenance_overdue")
                )
                .scalars()
                .all()
            )
            assert entry.maintenance_visits == len(visits) >= 23
            assert entry.maintenance_cycles_missed == len(overdue)
            assert entry.maintenance_cycle_met == (not overdue)
            assert all(wo.status == "resolved" and wo.category == "check" for wo in overdue)
            missed[entry.device] = len(overdue)
    assert sum(missed.values()) >= 1, missed


def _outcome(clock: WorkOrderClock) -> str:
    """A clock as docs/kpis.md judges it at UNTIL: met, missed, pending, or out (cancelled before its deadline)."""
    if clock.met_at is not None:
        return "met" if clock.met_at <= clock.due_at else "missed"
    if clock.cancelled_at is not None:
        return "out" if clock.cancelled_at <= clock.due_at else "missed"
    return "pending" if clock.due_at >= UNTIL else "missed"


def _verdict(line: KpiLine) -> str:
    assert line.value is not None
    if line.coverage is None or line.coverage < 0.95:
        return "insufficient data"
    return "met" if line.value >= line.target else "missed"


def test_every_kpi_of_the_last_complete_month_has_the_data_to_judge_by(kpis: KpiMonthlyReport) -> None:
    """Every device of the site is heard in every 5-minute slot (cameras aside while the history has one silent),
    the intact figure holds all month and every scheduled minute of the cars is read: no figure of a month the
    simulated estate was monitored throughout says "insufficient data" (docs/kpis.md)."""
    coverage = {line.key: line.coverage for line in kpis.kpis}
    assert all(c is not None and c >= 0.95 for c in coverage.values()), coverage
    assert [line.key for line in kpis.kpis if line.verdict == "insufficient data"] == []
    # Only a camera can be silent; the elevators, the fire figure and the scheduled hours have no gap at all.
    assert coverage["arrival_compliance"] == coverage["fire_intact_rate"] == coverage["elevator_availability"] == 1.0
    assert coverage["repair_timeliness"] == coverage["follow_up_rate"] > 0.999


def test_kpi_arrival_compliance_and_the_late_arrivals(year: Year, kpis: KpiMonthlyReport) -> None:
    """Each elevator work order by its own contract clock: the on-site clock whose deadline is its due_at."""
    with Session(year.engine) as session:
        judged = session.execute(
            select(WorkOrder.id, WorkOrderClock)
            .join(WorkOrderClock, WorkOrderClock.work_order_id == WorkOrder.id)
            .where(
                WorkOrder.kind == "elevator",
                WorkOrder.category != "check",
                WorkOrder.detected_at >= kpis.period_start,
                WorkOrder.detected_at < kpis.period_end,
                WorkOrderClock.milestone == "on_site",
                WorkOrderClock.name != "statutory_on_site",
                WorkOrderClock.due_at == WorkOrder.due_at,
            )
        ).all()
        outcomes = [(wo_id, _outcome(clock)) for wo_id, clock in judged]
    decided = [(wo_id, o) for wo_id, o in outcomes if o in ("met", "missed")]
    late = [wo_id for wo_id, o in decided if o == "missed"]
    line = _kpi(kpis, "arrival_compliance")
    assert (line.numerator, line.denominator) == (len(decided) - len(late), len(decided))
    assert len(decided) >= 5
    assert sorted(m.id for m in line.misses) == sorted(late)
    assert line.verdict == _verdict(line)


def test_kpi_repair_timeliness_and_follow_ups(year: Year, kpis: KpiMonthlyReport) -> None:
    start, end = kpis.period_start, kpis.period_end
    with Session(year.engine) as session:
        repairs = session.execute(select(WorkOrderClock).where(WorkOrderClock.milestone == "resolved")).scalars()
        due = [_outcome(clock) for clock in repairs if start <= clock.due_at < end]
        resolved = (
            session.execute(
                select(WorkOrder).where(
                    WorkOrder.status != "cancelled", WorkOrder.resolved_at >= start, WorkOrder.resolved_at < end
                )
            )
            .scalars()
            .all()
        )
        followed = set(session.execute(select(FollowUp.work_order_id)).scalars())
    repair, follow_up = _kpi(kpis, "repair_timeliness"), _kpi(kpis, "follow_up_rate")
    assert (repair.numerator, repair.denominator) == (due.count("met"), due.count("met") + due.count("missed"))
    assert len(due) >= 10
    assert (follow_up.numerator, follow_up.denominator) == (sum(wo.id in followed for wo in resolved), len(resolved))
    assert len(resolved) >= 10
    assert 0 < (follow_up.value or 0) < 1
    assert (repair.verdict, follow_up.verdict) == (_verdict(repair), _verdict(follow_up))


def test_kpi_fire_intact_rate_comes_from_the_history(year: Year, kpis: KpiMonthlyReport) -> None:
    line = _kpi(kpis, "fire_intact_rate")
    assert line.verdict in ("met", "missed")
    assert line.value is not None
    start, end = kpis.period_start, kpis.period_end
    points = _intact_points(year, start - timedelta(days=1), end)
    # The time-weighted mean of the raw points, each holding until the next for at most 5 minutes (docs/kpis.md);
    # the history writes one every 5 minutes, so the whole month is covered.
    hold = timedelta(minutes=5)
    before = [(t, v) for t, v in points if start - hold < t <= start][-1:]
    steps = [*before, *((t, v) for t, v in points if start < t < end)]
    spans = [
        (v, (min(steps[i + 1][0] if i + 1 < len(steps) else end, t + hold) - max(t, start)).total_seconds())
        for i, (t, v) in enumerate(steps)
    ]
    assert sum(s for _, s in spans) == (end - start).total_seconds()
    assert line.value == pytest.approx(sum(v * s for v, s in spans) / (end - start).total_seconds() / 100, abs=1e-5)
    assert 0.98 < line.value <= 1.0


def _intact_points(year: Year, start: datetime, end: datetime) -> list[tuple[datetime, float]]:
    found = query(
        year.influx_url,
        year.influx_db,
        f"SELECT intact_pct FROM fire_intact WHERE time >= '{start:%Y-%m-%dT%H:%M:%SZ}'"
        f" AND time < '{end:%Y-%m-%dT%H:%M:%SZ}'",
    )
    values = found[0]["values"] if found else []
    return [(datetime.fromtimestamp(ns / 1e9, start.tzinfo), float(v)) for ns, v in values]


def test_kpi_availability_matches_the_cars_events(year: Year, kpis: KpiMonthlyReport) -> None:
    """Down while an elevator's events say it is out of normal service, has a coded fault or a trapped passenger, and
    while an entrapment work order of the car is open; every scheduled minute read, so nothing is unknown."""
    line = _kpi(kpis, "elevator_availability")
    assert line.verdict in ("met", "missed")
    assert line.reason is not None
    assert "unknown 0.00 h" in line.reason
    start, end = kpis.period_start, kpis.period_end
    scheduled_s = down_s = 0.0
    for _building, car in year.site.devices():
        if car.role not in ("main", "peak"):
            continue
        scheduled = scheduled_intervals(car.role, start, end, year.site.tz)
        scheduled_s += seconds(scheduled)
        down = [*_down(year, car.id, start - timedelta(days=30), end), *_entrapments(year, car.id, end)]
        down_s += seconds(intersect(down, scheduled))
    assert line.denominator == pytest.approx(round(scheduled_s / 3600, 3))
    assert line.value == pytest.approx((scheduled_s - down_s) / scheduled_s, abs=2e-6)
    assert 0.99 < (line.value or 0) < 1.0


def _down(year: Year, device: str, start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
    found = query(
        year.influx_url,
        year.influx_db,
        "SELECT type, code, status_point, status_value FROM events WHERE kind = 'elevator' AND device = "
        f"'{device}' AND time >= '{start:%Y-%m-%dT%H:%M:%SZ}' AND time < '{end:%Y-%m-%dT%H:%M:%SZ}'",
    )
    mode, since = "normal", None
    faults: set[str] = set()
    for ns, type_, code, point, value in found[0]["values"] if found else []:
        at = datetime.fromtimestamp(ns / 1e9, start.tzinfo)
        if type_ == "status" and point == "service_mode":
            mode = value
        elif type_ in ("fault_raised", "fault_cleared") and (str(code).isdigit() or code == "entrapment"):
            (faults.add if type_ == "fault_raised" else faults.discard)(code)
        down = mode != "normal" or bool(faults)
        if down and since is None:
            since = at
        elif not down and since is not None:
            yield since, at
            since = None
    if since is not None:
        yield since, end


def _entrapments(year: Year, device: str, end: datetime) -> list[tuple[datetime, datetime]]:
    """The car's entrapment work orders, not cancelled, from detection to resolution (or `end`)."""
    with Session(year.engine) as session:
        orders = session.execute(
            select(WorkOrder).where(
                WorkOrder.device == device, WorkOrder.fault == "entrapment", WorkOrder.status != "cancelled"
            )
        ).scalars()
        return [(wo.detected_at, min(wo.resolved_at or end, end)) for wo in orders]
