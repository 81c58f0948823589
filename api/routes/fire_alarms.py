"""Fire alarms: the list (with false alarms per site and local day) and the control room's verdict on each.

A fire alarm is not a work order (rules.fire): it has no SLA clocks and no repair, only an outcome. Days are the
site's local days (its site file's `timezone`; the default zone for a site the API has no file for).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

import structlog
from fastapi import APIRouter, Query, status
from fastapi.exceptions import RequestValidationError
from pydantic import Field

from api.auth import AuditorDep
from api.auth import PrincipalDep as CurrentUserDep
from api.deps import ClockDep, EngineDep, SessionDep, SitesDep
from api.schemas import IdPath, Moment, Note, Offset, ProblemError, _Create, _Public, problem_response
from facmon.estate.entries import SiteInfo
from facmon.estate.site import Site
from rules.fire import (
    FALSE_ALARM_DAY_LIMIT,
    FalseAlarmDay,
    FireAlarmNotFound,
    day_bounds,
    false_alarm_days,
    false_alarms_between,
    list_fire_alarms,
    local_day,
    set_outcome,
)
from rules.tables import FireAlarm, FireAlarmOutcome

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/fire-alarms", tags=["fire alarms"])

DEFAULT_ZONE = ZoneInfo(SiteInfo.model_fields["timezone"].get_default())


def site_zone(sites: tuple[Site, ...], site: str) -> ZoneInfo:
    return next((s.tz for s in sites if s.id == site), DEFAULT_ZONE)


class FireAlarmPublic(_Public):
    id: int
    site: str
    building: str
    device: str
    point: str | None
    point_type: str | None
    raised_at: datetime
    cleared_at: datetime | None
    outcome: FireAlarmOutcome
    outcome_at: datetime | None
    outcome_by: str | None
    note: str | None


class FalseAlarmDayPublic(_Public):
    site: str
    day: date = Field(description="the site's local day")
    false_alarms: int
    flagged: bool = Field(description=f"more than {FALSE_ALARM_DAY_LIMIT} false alarms that day")


class FireAlarmPagePublic(_Public):
    items: list[FireAlarmPublic]
    total: int
    limit: int
    offset: int
    false_alarm_days: list[FalseAlarmDayPublic] = Field(
        description="false alarms per site and local day among the alarms matching the filters (all pages)"
    )


class OutcomeCreate(_Create):
    outcome: Literal["confirmed", "false_alarm"]
    note: Note | None = None


class OutcomePublic(_Public):
    alarm: FireAlarmPublic
    site_day: FalseAlarmDayPublic = Field(description="the false alarms of the alarm's site and local day, after it")


def _day(day: FalseAlarmDay) -> FalseAlarmDayPublic:
    return FalseAlarmDayPublic(site=day.site, day=day.day, false_alarms=day.false_alarms, flagged=day.flagged)


@router.get("")
def read_fire_alarms(
    session: SessionDep,
    sites: SitesDep,
    user: CurrentUserDep,
    site: Annotated[str | None, Query(max_length=64)] = None,
    from_: Annotated[Moment | None, Query(alias="from", description="raised at or after")] = None,
    to: Annotated[Moment | None, Query(description="raised before")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Offset = 0,
) -> FireAlarmPagePublic:
    if from_ is not None and to is not None and to <= from_:
        error = {"type": "value_error", "loc": ("query", "to"), "msg": "'to' must be after 'from'", "input": str(to)}
        raise RequestValidationError([error])

    def alarms(limit: int, offset: int = 0) -> tuple[list[FireAlarm], int]:
        return list_fire_alarms(
            session, site=site, within=user.sites, since=from_, until=to, limit=limit, offset=offset
        )

    items, total = alarms(limit, offset)
    everything, _ = alarms(1_000_000)
    tz_of = {a.site: site_zone(sites, a.site) for a in everything}
    days = false_alarm_days(((a.site, a.raised_at, a.outcome) for a in everything), tz_of)
    return FireAlarmPagePublic(
        items=[FireAlarmPublic.model_validate(a) for a in items],
        total=total,
        limit=limit,
        offset=offset,
        false_alarm_days=[_day(d) for d in days],
    )


@router.post("/{alarm_id}/outcome", responses={status.HTTP_404_NOT_FOUND: problem_response("no such fire alarm")})
def create_outcome(
    engine: EngineDep,
    session: SessionDep,
    sites: SitesDep,
    clock: ClockDep,
    user: CurrentUserDep,
    auditor: AuditorDep,
    alarm_id: IdPath,
    body: OutcomeCreate,
) -> OutcomePublic:
    """Record the control room's verdict: a confirmed fire or a false alarm (it may be corrected later)."""
    before = session.get(FireAlarm, alarm_id)
    if before is None:
        raise ProblemError(status.HTTP_404_NOT_FOUND, "Fire alarm not found", f"no fire alarm with id {alarm_id}")
    if not user.sees_site(before.site):
        raise ProblemError(
            status.HTTP_403_FORBIDDEN, "Not your site", f"{user.username} does not work at {before.site}"
        )
    snapshot = {"outcome": before.outcome, "outcome_by": before.outcome_by, "note": before.note}
    try:
        alarm = set_outcome(
            engine, alarm_id, FireAlarmOutcome(body.outcome), actor=user.actor, note=body.note, at=clock.now()
        )
    except FireAlarmNotFound as exc:
        raise ProblemError(status.HTTP_404_NOT_FOUND, "Fire alarm not found", str(exc)) from exc
    auditor.record_now(
        engine,
        "fire_alarm.outcome",
        "fire_alarm",
        alarm_id,
        before=snapshot,
        after={"outcome": alarm.outcome, "outcome_by": alarm.outcome_by, "note": alarm.note},
    )
    tz = site_zone(sites, alarm.site)
    day = local_day(alarm.raised_at, tz)
    start, end = day_bounds(day, tz)
    counted = false_alarm_days(false_alarms_between(session, alarm.site, start, end), {alarm.site: tz})
    site_day = counted[0] if counted else FalseAlarmDay(alarm.site, day, 0, False)
    if site_day.flagged:
        log.warning(
            "site over the false alarm limit",
            site=alarm.site,
            day=day.isoformat(),
            false_alarms=site_day.false_alarms,
            limit=FALSE_ALARM_DAY_LIMIT,
        )
    return OutcomePublic(alarm=FireAlarmPublic.model_validate(alarm), site_day=_day(site_day))
