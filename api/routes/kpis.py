"""Contract KPIs of one site over a period (docs/kpis.md), each with numerator, denominator, target, coverage and
verdict, and the work orders cancelled in the period.

Work-order KPIs come from the database (facmon.reports.kpi over facmon.reports.kpi_data rows, each work order judged
by its own clocks), their coverage from the devices' readings in InfluxDB (facmon.reports.kpi_coverage); the figures
and verdicts are made by facmon.reports.kpi_figures, as for the monthly report. The fire equipment intact rate comes
from InfluxDB (`fire_intact`, written by the rules worker): the current figure and the period's time-weighted mean;
when the API has no InfluxDB, or it does not answer, the KPI says so instead of failing the whole report. Elevator
availability comes from the cars' readings in InfluxDB and the roles in the site file (facmon.reports.availability), per
site and per elevator, in hours.

The fire alarm rate (火警发生率 <= 1 %) is not reported: DOMAIN.md gives no denominator for it (alarms per point,
per household, per alarm recorded?), and a figure with a guessed denominator would mislead.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import Field

from api.deps import ClockDep, SessionDep, SitesDep
from api.schemas import Moment, _Public
from facmon.estate.site import Site
from facmon.reports.availability import ElevatorAvailability
from facmon.reports.common import month_bounds, parse_month, previous_month
from facmon.reports.kpi import KpiTargets, Ratio
from facmon.reports.kpi_cancellations import cancellations
from facmon.reports.kpi_coverage import work_order_coverage
from facmon.reports.kpi_data import Entrapments, InfluxReader, entrapment_intervals, kpi_rows
from facmon.reports.kpi_figures import Figure, judge_figure, work_order_figures
from facmon.reports.kpi_models import CancelledWorkOrder
from facmon.reports.kpi_period import (
    AVAILABILITY_NOTE,
    AvailabilityFigure,
    IntactFigure,
    availability_value,
    period_availability,
    period_intact,
)
from facmon.reports.kpi_verdict import Verdict, met_of, rounded, verdict

router = APIRouter(prefix="/kpis", tags=["kpis"])


def get_kpi_targets() -> KpiTargets:
    return KpiTargets()


def get_influx(request: Request) -> InfluxReader | None:
    reader: InfluxReader | None = getattr(request.app.state, "influx", None)
    return reader


class RatioPublic(_Public):
    numerator: int
    denominator: int
    value: float | None = Field(description="numerator / denominator; null when the denominator is 0")
    target: float
    met: bool | None


COVERAGE = "share of the period with data to judge by (0..1, 4 places); null when unknown"
VERDICT = "met, missed, insufficient data (coverage unknown or below the threshold), no data or unavailable"


class ClockFigurePublic(_Public):
    minutes: int | float = Field(description="the clock's figure: its deadline minus the detection time")
    work_orders: int = Field(description="work orders of the figure judged by a clock of this length")


class FigurePublic(RatioPublic):
    """A work-order KPI; `met` is null unless the verdict is met or missed."""

    coverage: float | None = Field(description=COVERAGE)
    verdict: Verdict = Field(description=VERDICT)
    reason: str | None = Field(default=None, description="why the verdict is insufficient data")
    pending: int = Field(description="work orders left out because their clock is still running")
    clocks: list[ClockFigurePublic] = Field(default_factory=list, description="the clocks counted, by length")


class PanelIntactPublic(_Public):
    device: str
    at: datetime
    intact_pct: float | None
    points_present: int
    points_intact: int


class IntactPublic(_Public):
    available: bool
    reason: str | None = None
    target: float
    current: RatioPublic | None = Field(default=None, description="intact points / present points, latest figure")
    current_at: datetime | None = None
    period_mean: float | None = Field(default=None, description="time-weighted mean over the period, as a ratio")
    period_covered_s: float | None = Field(default=None, description="seconds of the period the mean covers")
    coverage: float | None = Field(default=None, description=COVERAGE)
    verdict: Verdict = Field(description=VERDICT)
    panels: list[PanelIntactPublic] = Field(default_factory=list)


class ElevatorAvailabilityPublic(_Public):
    device: str
    role: str
    scheduled_hours: float
    downtime_hours: float
    unknown_hours: float = Field(description="scheduled hours without a reading: not counted as down")
    value: float | None = Field(description="(scheduled - downtime) / scheduled; null when nothing is scheduled")
    coverage: float | None = Field(description="(scheduled - unknown) / scheduled; null when nothing is scheduled")
    verdict: Verdict = Field(description=VERDICT)
    met: bool | None


class AvailabilityPublic(_Public):
    available: bool
    reason: str | None = None
    target: float
    numerator_hours: float | None = Field(default=None, description="scheduled hours - fault downtime")
    denominator_hours: float | None = Field(default=None, description="scheduled hours")
    value: float | None = None
    met: bool | None = None
    coverage: float | None = Field(default=None, description=COVERAGE)
    verdict: Verdict = Field(description=VERDICT)
    downtime_hours: float | None = None
    unknown_hours: float | None = None
    note: str | None = None
    elevators: list[ElevatorAvailabilityPublic] = Field(default_factory=list)


class KpisPublic(_Public):
    site: str
    from_: datetime = Field(alias="from")
    to: datetime
    generated_at: datetime
    elevator_arrival_compliance: FigurePublic = Field(description="on site within the contract clock")
    elevator_arrival_compliance_statutory: FigurePublic = Field(description="on site within the statutory clock")
    repair_timeliness: FigurePublic
    follow_up_visit_rate: FigurePublic
    fire_equipment_intact_rate: IntactPublic
    elevator_availability: AvailabilityPublic
    cancellations: list[CancelledWorkOrder] = Field(description="work orders cancelled in the period")


def _ratio(r: Ratio) -> RatioPublic:
    return RatioPublic(numerator=r.numerator, denominator=r.denominator, value=r.value, target=r.target, met=r.met)


def _figure(f: Figure) -> FigurePublic:
    r = f.ratio
    return FigurePublic(
        numerator=r.numerator,
        denominator=r.denominator,
        value=r.value,
        target=r.target,
        met=f.met,
        coverage=f.coverage.share,
        verdict=f.verdict,
        reason=f.reason,
        pending=f.judged.pending,
        clocks=[ClockFigurePublic(minutes=c.minutes, work_orders=c.work_orders) for c in f.judged.clocks],
    )


async def _intact(
    influx: InfluxReader | None, site: str, start: datetime, end: datetime, targets: KpiTargets
) -> IntactPublic:
    target = targets.fire_intact_rate
    if end <= start:
        figure = IntactFigure(available=False, reason="the period has not started yet", target=target)
    elif influx is None:
        figure = IntactFigure(available=False, reason="the API is not connected to InfluxDB", target=target)
    else:
        figure = await period_intact(influx, site, start, end, target)
    judged = judge_figure(figure, targets.min_coverage)
    if not figure.available:
        return IntactPublic(available=False, reason=figure.reason, target=target, verdict=judged.verdict)
    return IntactPublic(
        available=True,
        reason=figure.reason,
        target=target,
        current=None if figure.current is None else _ratio(figure.current),
        current_at=figure.current_at,
        period_mean=figure.period_mean,
        period_covered_s=figure.period_covered_s,
        coverage=judged.coverage.share,
        verdict=judged.verdict,
        panels=[PanelIntactPublic.model_validate(p, from_attributes=True) for p in figure.panels],
    )


def _hours(seconds: float) -> float:
    return round(seconds / 3600.0, 6)


async def _availability_figure(
    influx: InfluxReader | None,
    site: Site | None,
    start: datetime,
    end: datetime,
    target: float,
    entrapments: Entrapments,
) -> AvailabilityFigure:
    def unavailable(reason: str) -> AvailabilityFigure:
        return AvailabilityFigure(available=False, reason=f"not computed: {reason}", target=target)

    if influx is None:
        return unavailable("fault downtime comes from the cars' readings, and the API is not connected to InfluxDB")
    if site is None:
        return unavailable("no site file for this site, so no elevator roles to schedule")
    figure = await period_availability(influx, site, start, end, target, entrapments)
    return figure if figure.available else unavailable(figure.reason or "")


def _car(f: ElevatorAvailability, targets: KpiTargets) -> ElevatorAvailabilityPublic:
    value = availability_value(f.scheduled_s, f.down_s)
    coverage = rounded(None if f.scheduled_s == 0 else (f.scheduled_s - f.unknown_s) / f.scheduled_s)
    judgement = verdict(value, targets.elevator_availability, coverage, targets.min_coverage)
    return ElevatorAvailabilityPublic(
        device=f.device,
        role=f.role,
        scheduled_hours=_hours(f.scheduled_s),
        downtime_hours=_hours(f.down_s),
        unknown_hours=_hours(f.unknown_s),
        value=value,
        coverage=coverage,
        verdict=judgement,
        met=met_of(judgement),
    )


def _availability(figure: AvailabilityFigure, targets: KpiTargets) -> AvailabilityPublic:
    judged = judge_figure(figure, targets.min_coverage)
    if not figure.available:
        return AvailabilityPublic(available=False, reason=figure.reason, target=figure.target, verdict=judged.verdict)
    scheduled_s, down_s = figure.scheduled_s, figure.down_s
    return AvailabilityPublic(
        available=True,
        target=figure.target,
        numerator_hours=_hours(scheduled_s - down_s),
        denominator_hours=_hours(scheduled_s),
        value=figure.value,
        met=judged.met,
        coverage=judged.coverage.share,
        verdict=judged.verdict,
        downtime_hours=_hours(down_s),
        unknown_hours=_hours(figure.unknown_s),
        note=AVAILABILITY_NOTE,
        elevators=[_car(f, targets) for f in figure.elevators],
    )


def _period(
    from_: datetime | None, to: datetime | None, now: datetime, known: Site | None
) -> tuple[datetime, datetime]:
    """The period asked for; by default the last complete calendar month on the site's wall clock (UTC for a site
    no file describes)."""
    if from_ is None and to is None:
        tz = known.tz if known is not None else ZoneInfo("UTC")
        return month_bounds(*parse_month(previous_month(now, tz)), tz)
    if from_ is None or to is None:
        missing = "from" if from_ is None else "to"
        error = {"type": "missing", "loc": ("query", missing), "msg": "give both 'from' and 'to', or neither"}
        raise RequestValidationError([error | {"input": None}])
    if to <= from_:
        error = {"type": "value_error", "loc": ("query", "to"), "msg": "'to' must be after 'from'", "input": str(to)}
        raise RequestValidationError([error])
    return from_, to


@router.get("", response_model_by_alias=True)
async def read_kpis(
    session: SessionDep,
    sites: SitesDep,
    clock: ClockDep,
    targets: Annotated[KpiTargets, Depends(get_kpi_targets)],
    influx: Annotated[InfluxReader | None, Depends(get_influx)],
    site: Annotated[str, Query(min_length=1, max_length=64)],
    from_: Annotated[Moment | None, Query(alias="from", description="default: the last complete month")] = None,
    to: Annotated[Moment | None, Query(description="given with 'from'")] = None,
) -> KpisPublic:
    known = next((s for s in sites if s.id == site), None)
    now = clock.now()
    start, stop = _period(from_, to, now, known)
    # A sync session in an async route: the queries run in a thread, so the event loop keeps serving.
    rows = await asyncio.to_thread(kpi_rows, session, site, start, stop)
    cancelled = await asyncio.to_thread(cancellations, session, site, start, stop)
    # Nothing after now is counted: the figures read from InfluxDB end at the earlier of the period's end and now.
    end = min(stop, now)
    coverage = await work_order_coverage(influx, known, start, end)
    figures = work_order_figures(rows, start, stop, now, targets, coverage)
    entrapments = await asyncio.to_thread(entrapment_intervals, session, site, start, end)
    availability = await _availability_figure(influx, known, start, end, targets.elevator_availability, entrapments)
    return KpisPublic.model_validate(
        {
            "site": site,
            "from": start,
            "to": stop,
            "generated_at": now,
            "elevator_arrival_compliance": _figure(figures.arrival),
            "elevator_arrival_compliance_statutory": _figure(figures.statutory),
            "repair_timeliness": _figure(figures.repair),
            "follow_up_visit_rate": _figure(figures.follow_up),
            "fire_equipment_intact_rate": await _intact(influx, site, start, end, targets),
            "elevator_availability": _availability(availability, targets),
            "cancellations": [CancelledWorkOrder.of(c) for c in cancelled],
        }
    )
