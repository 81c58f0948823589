"""The monthly KPI report for the property manager (DOMAIN.md "KPI formulas" against the contract targets): one
month of one site, on the site's wall clock, each KPI with its target, value, met or missed, and the work orders
behind a miss.

The figures are the same as the API's `/kpis` (facmon.reports.kpi over facmon.reports.kpi_data rows; fire intact and
availability
through facmon.reports.kpi_period): a report and the dashboard cannot disagree. InfluxDB not reachable (or not
configured)
makes those two KPIs "unavailable", with the reason, and the rest of the report stands.

The work orders behind a miss:

- arrival compliance (20 and 30 min): the elevator work orders whose technician came late, or not yet;
- repair timeliness: the work orders repaired after their deadline, or still not repaired past it;
- follow-up visit rate: the resolved work orders without a follow-up;
- fire equipment intact rate: the fire work orders open at some time in the month;
- elevator availability: the repair work orders, open at some time in the month, of the cars below target.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from facmon.estate.site import Site
from facmon.kernel.model import DeviceKind
from facmon.reports.common import month_bounds, parse_month
from facmon.reports.kpi import (
    Decided,
    KpiRow,
    KpiTargets,
    Ratio,
    arrival_decisions,
    follow_up_decisions,
    repair_decisions,
)
from facmon.reports.kpi_data import Entrapments, InfluxReader, entrapment_intervals, kpi_rows
from facmon.reports.kpi_period import (
    AVAILABILITY_NOTE,
    AvailabilityFigure,
    IntactFigure,
    period_availability,
    period_intact,
)
from facmon.workorders.tables import Category, WorkOrder, WorkOrderStatus

Status = Literal["met", "missed", "no data", "unavailable"]
Unit = Literal["work orders", "hours", "ratio"]
STATUTORY_ARRIVAL = timedelta(minutes=30)


class WorkOrderMiss(BaseModel):
    id: int
    device: str
    title: str
    detected_at: datetime
    late_min: float | None = Field(
        description="minutes past the deadline (while still open: up to the month's end or now, the earlier); null "
        "when lateness does not apply"
    )
    detail: str


class KpiLine(BaseModel):
    key: str
    name: str
    target: float
    value: float | None
    numerator: float | None = None
    denominator: float | None = None
    unit: Unit
    status: Status
    reason: str | None = None
    misses: list[WorkOrderMiss] = Field(default_factory=list)


class KpiMonthlyReport(BaseModel):
    site: str
    site_name: str
    timezone: str
    month: str
    period_start: datetime
    period_end: datetime
    generated_at: datetime
    kpis: list[KpiLine]
    notes: list[str]


def _status(met: bool | None) -> Status:
    return "no data" if met is None else "met" if met else "missed"


def _late(later: datetime, deadline: datetime) -> float:
    return round((later - deadline).total_seconds() / 60.0, 1)


def _arrival_line(
    key: str, name: str, decided: Sequence[Decided], within: timedelta, target: float, now: datetime
) -> KpiLine:
    ratio = Ratio(sum(d.ok for d in decided), len(decided), target)
    misses = []
    for d in decided:
        if d.ok:
            continue
        r, deadline = d.row, d.row.detected_at + within
        if r.on_site_at is not None:
            late, detail = _late(r.on_site_at, deadline), f"on site {_late(r.on_site_at, r.detected_at)} min after"
        else:
            # Still open: late up to `now`, here the month's end or now, the earlier (not below 0 when the
            # deadline falls after the month).
            late, detail = _late(max(now, deadline), deadline), "no technician on site yet"
        misses.append(_miss(r, late, detail))
    return _ratio_line(key, name, ratio, misses)


def _miss(r: KpiRow, late: float | None, detail: str) -> WorkOrderMiss:
    return WorkOrderMiss(
        id=r.id, device=r.device, title=r.title, detected_at=r.detected_at, late_min=late, detail=detail
    )


def _ratio_line(key: str, name: str, ratio: Ratio, misses: list[WorkOrderMiss]) -> KpiLine:
    return KpiLine(
        key=key,
        name=name,
        target=ratio.target,
        value=ratio.value,
        numerator=ratio.numerator,
        denominator=ratio.denominator,
        unit="work orders",
        status=_status(ratio.met),
        misses=misses if ratio.met is False else [],
    )


def _repair_line(decided: Sequence[Decided], target: float, now: datetime) -> KpiLine:
    misses = []
    for d in decided:
        if d.ok:
            continue
        r = d.row
        if r.resolved_at is not None:
            misses.append(_miss(r, _late(r.resolved_at, r.repair_due_at), "repaired after its deadline"))
        else:
            misses.append(_miss(r, _late(now, r.repair_due_at), "not repaired yet"))
    ratio = Ratio(sum(d.ok for d in decided), len(decided), target)
    return _ratio_line("repair_timeliness", "Repair timeliness (零修、急修及时率)", ratio, misses)


def _follow_up_line(decided: Sequence[Decided], target: float) -> KpiLine:
    misses = [_miss(d.row, None, "resolved, no follow-up recorded") for d in decided if not d.ok]
    ratio = Ratio(sum(d.ok for d in decided), len(decided), target)
    return _ratio_line("follow_up_rate", "Follow-up visit rate (维修服务回访率)", ratio, misses)


def _active(session: Session, site: str, start: datetime, end: datetime) -> list[WorkOrder]:
    """The site's work orders open at some time in [start, end), not cancelled."""
    query = (
        select(WorkOrder)
        .where(
            WorkOrder.site == site,
            WorkOrder.detected_at < end,
            or_(WorkOrder.resolved_at.is_(None), WorkOrder.resolved_at >= start),
            WorkOrder.status != WorkOrderStatus.CANCELLED.value,
        )
        .order_by(WorkOrder.detected_at, WorkOrder.id)
    )
    return list(session.execute(query).scalars())


def _open_miss(wo: WorkOrder) -> WorkOrderMiss:
    detail = f"{wo.status}" + (f", resolved {wo.resolved_at:%Y-%m-%d %H:%M} UTC" if wo.resolved_at else "")
    return WorkOrderMiss(
        id=wo.id, device=wo.device, title=wo.title, detected_at=wo.detected_at, late_min=None, detail=detail
    )


def _unavailable(key: str, name: str, figure: IntactFigure | AvailabilityFigure, unit: Unit) -> KpiLine:
    """The line of a KPI whose figure could not be made, with the reason why."""
    return KpiLine(
        key=key, name=name, target=figure.target, value=None, unit=unit, status="unavailable", reason=figure.reason
    )


def _intact_line(figure: IntactFigure, behind: list[WorkOrder]) -> KpiLine:
    name = "Fire equipment intact rate (消防设施、设备完好率)"
    if not figure.available:
        return _unavailable("fire_intact_rate", name, figure, "ratio")
    met = figure.met
    return KpiLine(
        key="fire_intact_rate",
        name=name,
        target=figure.target,
        value=figure.period_mean,
        unit="ratio",
        status=_status(met),
        reason=None if figure.period_covered_s is None else f"time-weighted mean over {figure.period_covered_s:.0f} s",
        misses=[_open_miss(wo) for wo in behind if wo.kind == DeviceKind.FIRE_PANEL] if met is False else [],
    )


def _availability_line(figure: AvailabilityFigure, behind: list[WorkOrder]) -> KpiLine:
    name = "Elevator availability"
    if not figure.available:
        return _unavailable("elevator_availability", name, figure, "hours")
    below = {
        f.device
        for f in figure.elevators
        if f.scheduled_s > 0 and (f.scheduled_s - f.down_s) / f.scheduled_s < figure.target
    }
    met = figure.met
    return KpiLine(
        key="elevator_availability",
        name=name,
        target=figure.target,
        value=figure.value,
        numerator=round((figure.scheduled_s - figure.down_s) / 3600.0, 3),
        denominator=round(figure.scheduled_s / 3600.0, 3),
        unit="hours",
        status=_status(met),
        reason=f"downtime {figure.down_s / 3600.0:.2f} h, unknown {figure.unknown_s / 3600.0:.2f} h",
        misses=[_open_miss(wo) for wo in behind if wo.device in below and wo.category == Category.REPAIR]
        if met is False
        else [],
    )


async def _influx_figures(
    influx: InfluxReader | None,
    site: Site,
    start: datetime,
    until: datetime,
    targets: KpiTargets,
    entrapments: Entrapments,
) -> tuple[IntactFigure, AvailabilityFigure]:
    """The fire intact rate and elevator availability of [start, until), from InfluxDB's readings."""
    if influx is None:
        reason = "InfluxDB is not configured (FACMON_INFLUX_URL)"
    elif until <= start:
        reason = "the month has not started yet"
    else:
        intact = await period_intact(influx, site.id, start, until, targets.fire_intact_rate)
        availability = await period_availability(influx, site, start, until, targets.elevator_availability, entrapments)
        return intact, availability
    return (
        IntactFigure(available=False, reason=reason, target=targets.fire_intact_rate),
        AvailabilityFigure(available=False, reason=reason, target=targets.elevator_availability),
    )


def _arrival_lines(
    rows: Sequence[KpiRow], start: datetime, end: datetime, now: datetime, targets: KpiTargets
) -> list[KpiLine]:
    """Arrival compliance against the contract's window and against the statutory 30 minutes."""
    within = int(targets.arrival_within.total_seconds() // 60)
    statutory = targets.model_copy(update={"arrival_within": STATUTORY_ARRIVAL})
    return [
        _arrival_line(
            "arrival_compliance",
            f"Elevator arrival compliance ({within} min)",
            arrival_decisions(rows, start, end, now, targets),
            targets.arrival_within,
            targets.arrival_compliance,
            min(end, now),
        ),
        _arrival_line(
            "arrival_compliance_statutory",
            "Elevator arrival compliance (30 min, statutory)",
            arrival_decisions(rows, start, end, now, statutory),
            STATUTORY_ARRIVAL,
            targets.arrival_compliance,
            min(end, now),
        ),
    ]


def _notes(site: Site, start: datetime, end: datetime) -> list[str]:
    return [
        f"month {start.astimezone(site.tz):%Y-%m-%d %H:%M} to {end.astimezone(site.tz):%Y-%m-%d %H:%M} "
        f"({site.site.timezone}); cancelled work orders count nowhere",
        "arrival compliance: elevator work orders detected in the month; one still inside its window is left out",
        "repair timeliness: work orders whose repair deadline falls in the month and has passed",
        "follow-up visit rate: work orders resolved in the month with at least one follow-up recorded",
        "fire intact rate: time-weighted mean of the site's fire_intact figures over the month",
        "availability: " + AVAILABILITY_NOTE,
    ]


async def kpi_monthly_report(
    session: Session,
    site: Site,
    month: str,
    now: datetime,
    influx: InfluxReader | None,
    targets: KpiTargets | None = None,
) -> KpiMonthlyReport:
    targets = targets or KpiTargets()
    year, number = parse_month(month)
    start, end = month_bounds(year, number, site.tz)
    rows = kpi_rows(session, site.id, start, end)
    active = _active(session, site.id, start, end)
    entrapments = entrapment_intervals(session, site.id, start, min(end, now))
    intact, availability = await _influx_figures(influx, site, start, min(end, now), targets, entrapments)
    return KpiMonthlyReport(
        site=site.id,
        site_name=site.site.name or site.id,
        timezone=site.site.timezone,
        month=f"{year:04d}-{number:02d}",
        period_start=start,
        period_end=end,
        generated_at=now,
        kpis=[
            *_arrival_lines(rows, start, end, now, targets),
            _intact_line(intact, active),
            _repair_line(repair_decisions(rows, start, end, now, targets), targets.repair_timeliness, min(end, now)),
            _follow_up_line(follow_up_decisions(rows, start, end), targets.follow_up_rate),
            _availability_line(availability, active),
        ],
        notes=_notes(site, start, end),
    )
