"""The monthly KPI report for the property manager (docs/kpis.md, against the contract targets): one month of one
site, on the site's wall clock, each KPI with its target, value, coverage and verdict, the work orders behind a miss,
and the work orders cancelled in the month.

The figures are the same as the API's `/kpis` (facmon.reports.kpi_figures over facmon.reports.kpi_data rows; fire
intact and availability through facmon.reports.kpi_period): a report and the dashboard cannot disagree. InfluxDB not
reachable (or not configured) makes those two KPIs "unavailable", with the reason, and leaves the work-order KPIs'
coverage unknown ("insufficient data"); the rest of the report stands.

The work orders behind a miss of the work-order KPIs: facmon.reports.kpi_lines. Of the others:

- fire equipment intact rate: the fire work orders open at some time in the month;
- elevator availability: the repair work orders, open at some time in the month, of the cars below target.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from facmon.estate.site import Site
from facmon.kernel.model import DeviceKind
from facmon.reports.common import month_bounds, parse_month
from facmon.reports.kpi import KpiTargets
from facmon.reports.kpi_cancellations import cancellations
from facmon.reports.kpi_coverage import work_order_coverage
from facmon.reports.kpi_data import Entrapments, InfluxReader, entrapment_intervals, kpi_rows
from facmon.reports.kpi_figures import Judgement, judge_figure, work_order_figures
from facmon.reports.kpi_lines import work_order_lines
from facmon.reports.kpi_models import (
    CancelledWorkOrder,
    ClockCount,
    KpiLine,
    KpiMonthlyReport,
    Unit,
    WorkOrderMiss,
)
from facmon.reports.kpi_period import (
    AVAILABILITY_NOTE,
    AvailabilityFigure,
    IntactFigure,
    period_availability,
    period_intact,
)
from facmon.workorders.tables import Category, WorkOrder, WorkOrderStatus

__all__ = [
    "CancelledWorkOrder",
    "ClockCount",
    "KpiLine",
    "KpiMonthlyReport",
    "WorkOrderMiss",
    "kpi_monthly_report",
]


def _reason(*parts: str | None) -> str | None:
    return "; ".join(p for p in parts if p) or None


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
        key=key, name=name, target=figure.target, value=None, unit=unit, verdict="unavailable", reason=figure.reason
    )


def _intact_line(figure: IntactFigure, judged: Judgement, behind: list[WorkOrder]) -> KpiLine:
    name = "Fire equipment intact rate (消防设施、设备完好率)"
    if not figure.available:
        return _unavailable("fire_intact_rate", name, figure, "ratio")
    met = figure.met
    covered = None if figure.period_covered_s is None else f"time-weighted mean over {figure.period_covered_s:.0f} s"
    if figure.period_mean is None and figure.reason:
        covered = figure.reason  # InfluxDB holds no figure: nothing to count
    return KpiLine(
        key="fire_intact_rate",
        name=name,
        target=figure.target,
        value=figure.period_mean,
        unit="ratio",
        coverage=judged.coverage.share,
        verdict=judged.verdict,
        reason=_reason(judged.reason, covered),
        misses=[_open_miss(wo) for wo in behind if wo.kind == DeviceKind.FIRE_PANEL] if met is False else [],
    )


def _availability_line(figure: AvailabilityFigure, judged: Judgement, behind: list[WorkOrder]) -> KpiLine:
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
        coverage=judged.coverage.share,
        verdict=judged.verdict,
        reason=_reason(
            judged.reason, f"downtime {figure.down_s / 3600.0:.2f} h, unknown {figure.unknown_s / 3600.0:.2f} h"
        ),
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


def _notes(site: Site, start: datetime, end: datetime, targets: KpiTargets) -> list[str]:
    return [
        f"month {start.astimezone(site.tz):%Y-%m-%d %H:%M} to {end.astimezone(site.tz):%Y-%m-%d %H:%M} "
        f"({site.site.timezone}); every figure as docs/kpis.md defines it",
        "each work order is judged by its own clocks (the deadlines it got when it opened); a clock still running is "
        "counted as pending, in no figure",
        "arrival compliance: elevator work orders detected in the month, by their contract on-site clock and, apart, "
        "by their statutory clock (those without one are not in the statutory figure)",
        "repair timeliness: work orders whose repair clock falls due in the month",
        "follow-up visit rate: work orders resolved in the month with at least one follow-up recorded",
        "a cancellation takes out only the clocks still running; a deadline missed before it stays missed",
        f"coverage: the share of the month with data; below {targets.min_coverage:.0%} the verdict is "
        "'insufficient data', never 'met'",
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
    until = min(end, now)
    entrapments = entrapment_intervals(session, site.id, start, until)
    intact, availability = await _influx_figures(influx, site, start, until, targets, entrapments)
    coverage = await work_order_coverage(influx, site, start, until)
    # Lateness of a work order still waiting runs up to the month's end or now, whichever is earlier.
    lines = work_order_lines(work_order_figures(rows, start, end, now, targets, coverage), until)
    return KpiMonthlyReport(
        site=site.id,
        site_name=site.site.name or site.id,
        timezone=site.site.timezone,
        month=f"{year:04d}-{number:02d}",
        period_start=start,
        period_end=end,
        generated_at=now,
        kpis=[
            lines["arrival_compliance"],
            lines["arrival_compliance_statutory"],
            _intact_line(intact, judge_figure(intact, targets.min_coverage), active),
            lines["repair_timeliness"],
            lines["follow_up_rate"],
            _availability_line(availability, judge_figure(availability, targets.min_coverage), active),
        ],
        cancellations=[CancelledWorkOrder.of(c) for c in cancellations(session, site.id, start, end)],
        notes=_notes(site, start, end, targets),
    )
