"""Contract KPIs of one site over a period (DOMAIN.md "KPI formulas"), each with numerator, denominator and target.

Work-order KPIs come from the database (facmon.reports.kpi over facmon.reports.kpi_data rows). The fire equipment
intact rate comes
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
from facmon.reports.common import month_bounds, parse_month, previous_month
from facmon.reports.kpi import KpiTargets, Ratio, arrival_compliance, follow_up_rate, repair_timeliness
from facmon.reports.kpi_data import Entrapments, InfluxReader, entrapment_intervals, kpi_rows
from facmon.reports.kpi_period import AVAILABILITY_NOTE, availability_value, period_availability, period_intact

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
    panels: list[PanelIntactPublic] = Field(default_factory=list)


class ElevatorAvailabilityPublic(_Public):
    device: str
    role: str
    scheduled_hours: float
    downtime_hours: float
    unknown_hours: float = Field(description="scheduled hours without a reading: not counted as down")
    value: float | None = Field(description="(scheduled - downtime) / scheduled; null when nothing is scheduled")
    met: bool | None


class AvailabilityPublic(_Public):
    available: bool
    reason: str | None = None
    target: float
    numerator_hours: float | None = Field(default=None, description="scheduled hours - fault downtime")
    denominator_hours: float | None = Field(default=None, description="scheduled hours")
    value: float | None = None
    met: bool | None = None
    downtime_hours: float | None = None
    unknown_hours: float | None = None
    note: str | None = None
    elevators: list[ElevatorAvailabilityPublic] = Field(default_factory=list)


class KpisPublic(_Public):
    site: str
    from_: datetime = Field(alias="from")
    to: datetime
    generated_at: datetime
    elevator_arrival_compliance: RatioPublic
    repair_timeliness: RatioPublic
    follow_up_visit_rate: RatioPublic
    fire_equipment_intact_rate: IntactPublic
    elevator_availability: AvailabilityPublic


def _ratio(r: Ratio) -> RatioPublic:
    return RatioPublic(numerator=r.numerator, denominator=r.denominator, value=r.value, target=r.target, met=r.met)


async def _intact(
    influx: InfluxReader | None, site: str, start: datetime, end: datetime, target: float
) -> IntactPublic:
    if influx is None:
        return IntactPublic(available=False, reason="the API is not connected to InfluxDB", target=target)
    figure = await period_intact(influx, site, start, end, target)
    if not figure.available:
        return IntactPublic(available=False, reason=figure.reason, target=target)
    assert figure.current is not None  # available figures have one
    return IntactPublic(
        available=True,
        target=target,
        current=_ratio(figure.current),
        current_at=figure.current_at,
        period_mean=figure.period_mean,
        period_covered_s=figure.period_covered_s,
        panels=[PanelIntactPublic.model_validate(p, from_attributes=True) for p in figure.panels],
    )


def _hours(seconds: float) -> float:
    return round(seconds / 3600.0, 6)


async def _availability(
    influx: InfluxReader | None,
    site: Site | None,
    start: datetime,
    end: datetime,
    target: float,
    entrapments: Entrapments,
) -> AvailabilityPublic:
    def unavailable(reason: str) -> AvailabilityPublic:
        return AvailabilityPublic(available=False, reason=f"not computed: {reason}", target=target)

    if influx is None:
        return unavailable("fault downtime comes from the cars' readings, and the API is not connected to InfluxDB")
    if site is None:
        return unavailable("no site file for this site, so no elevator roles to schedule")
    figure = await period_availability(influx, site, start, end, target, entrapments)
    if not figure.available:
        return unavailable(figure.reason or "")
    scheduled_s, down_s, value = figure.scheduled_s, figure.down_s, figure.value
    return AvailabilityPublic(
        available=True,
        target=target,
        numerator_hours=_hours(scheduled_s - down_s),
        denominator_hours=_hours(scheduled_s),
        value=value,
        met=figure.met,
        downtime_hours=_hours(down_s),
        unknown_hours=_hours(figure.unknown_s),
        note=AVAILABILITY_NOTE,
        elevators=[
            ElevatorAvailabilityPublic(
                device=f.device,
                role=f.role,
                scheduled_hours=_hours(f.scheduled_s),
                downtime_hours=_hours(f.down_s),
                unknown_hours=_hours(f.unknown_s),
                value=(v := availability_value(f.scheduled_s, f.down_s)),
                met=None if v is None else v >= target,
            )
            for f in figure.elevators
        ],
    )


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
    if from_ is None and to is None:
        # The last complete calendar month on the site's wall clock (UTC for a site no file describes).
        tz = known.tz if known is not None else ZoneInfo("UTC")
        from_, to = month_bounds(*parse_month(previous_month(clock.now(), tz)), tz)
    if from_ is None or to is None:
        missing = "from" if from_ is None else "to"
        error = {"type": "missing", "loc": ("query", missing), "msg": "give both 'from' and 'to', or neither"}
        raise RequestValidationError([error | {"input": None}])
    if to <= from_:
        error = {"type": "value_error", "loc": ("query", "to"), "msg": "'to' must be after 'from'", "input": str(to)}
        raise RequestValidationError([error])
    now = clock.now()
    # A sync session in an async route: the query runs in a thread, so the event loop keeps serving.
    rows = await asyncio.to_thread(kpi_rows, session, site, from_, to)
    end = min(to, now)
    intact = (
        await _intact(influx, site, from_, end, targets.fire_intact_rate)
        if end > from_
        else IntactPublic(available=False, reason="the period has not started yet", target=targets.fire_intact_rate)
    )
    entrapments = await asyncio.to_thread(entrapment_intervals, session, site, from_, end)
    availability = await _availability(influx, known, from_, end, targets.elevator_availability, entrapments)
    return KpisPublic.model_validate(
        {
            "site": site,
            "from": from_,
            "to": to,
            "generated_at": now,
            "elevator_arrival_compliance": _ratio(arrival_compliance(rows, from_, to, now, targets)),
            "repair_timeliness": _ratio(repair_timeliness(rows, from_, to, now, targets)),
            "follow_up_visit_rate": _ratio(follow_up_rate(rows, from_, to, targets)),
            "fire_equipment_intact_rate": intact,
            "elevator_availability": availability,
        }
    )
