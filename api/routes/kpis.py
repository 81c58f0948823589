"""Contract KPIs of one site over a period (DOMAIN.md "KPI formulas"), each with numerator, denominator and target.

Work-order KPIs come from the database (rules.kpi over rules.kpi_data rows). The fire equipment intact rate comes
from InfluxDB (`fire_intact`, written by the rules worker): the current figure and the period's time-weighted mean;
when the API has no InfluxDB, or it does not answer, the KPI says so instead of failing the whole report. Elevator
availability is left out with the reason.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import AwareDatetime, Field

from api.deps import SessionDep
from api.routes.work_orders import ClockDep
from api.schemas import _Public
from rules.kpi import KpiTargets, Ratio, arrival_compliance, follow_up_rate, repair_timeliness, time_weighted_mean
from rules.kpi_data import InfluxReader, InfluxUnavailable, kpi_rows

router = APIRouter(prefix="/kpis", tags=["kpis"])

AVAILABILITY_REASON = (
    "not computed: fault downtime needs each car's out-of-service time from its service-mode history, and the "
    "scheduled hours per elevator role; work-order durations are not downtime"
)


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


class UnavailablePublic(_Public):
    available: bool = False
    reason: str


class KpisPublic(_Public):
    site: str
    from_: datetime = Field(alias="from")
    to: datetime
    generated_at: datetime
    elevator_arrival_compliance: RatioPublic
    repair_timeliness: RatioPublic
    follow_up_visit_rate: RatioPublic
    fire_equipment_intact_rate: IntactPublic
    elevator_availability: UnavailablePublic


def _ratio(r: Ratio) -> RatioPublic:
    return RatioPublic(numerator=r.numerator, denominator=r.denominator, value=r.value, target=r.target, met=r.met)


async def _intact(
    influx: InfluxReader | None, site: str, start: datetime, end: datetime, target: float
) -> IntactPublic:
    if influx is None:
        return IntactPublic(available=False, reason="the API is not connected to InfluxDB", target=target)
    try:
        now_figure = await influx.site_intact(site, end)
        panels = await influx.panels_intact(site, end)
        samples = await influx.site_intact_samples(site, start, end)
    except InfluxUnavailable as exc:
        return IntactPublic(available=False, reason=str(exc), target=target)
    if now_figure is None:
        return IntactPublic(available=False, reason="no fire panel figures for this site yet", target=target)
    mean = time_weighted_mean(samples, start, end)
    current = Ratio(now_figure.points_intact, now_figure.points_present, target)
    return IntactPublic(
        available=True,
        target=target,
        current=_ratio(current),
        current_at=now_figure.at,
        period_mean=None if mean.mean is None else round(mean.mean / 100.0, 6),
        period_covered_s=mean.covered_s,
        panels=[PanelIntactPublic.model_validate(p, from_attributes=True) for p in panels],
    )


@router.get("", response_model_by_alias=True)
async def read_kpis(
    session: SessionDep,
    clock: ClockDep,
    targets: Annotated[KpiTargets, Depends(get_kpi_targets)],
    influx: Annotated[InfluxReader | None, Depends(get_influx)],
    site: Annotated[str, Query(min_length=1, max_length=64)],
    from_: Annotated[AwareDatetime, Query(alias="from")],
    to: AwareDatetime,
) -> KpisPublic:
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
            "elevator_availability": UnavailablePublic(reason=AVAILABILITY_REASON),
        }
    )
