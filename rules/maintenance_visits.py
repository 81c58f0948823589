"""Elevator maintenance visits (半月保养; TSG T5002: at least every 15 days), recorded from the site or by hand, and a
work order when an elevator goes without one for the cycle.

A visit is recorded

- from the site: maintenance is done with the car in inspection mode, so an elevator that leaves inspection after at
  least `min_inspection` (default 10 min) in it has had a visit from when it entered to when it left (source
  `inspection_mode`). A shorter inspection is a technician checking something, not a maintenance visit. The visit's
  technician is the one whose card was last granted at the site within the hour before the start
  (`technician_card_reads`, kept by rules.arrival for every granted read of a registered technician's card); else
  none;
- by hand, through the API (source `api`, the principal as actor).

`MaintenanceMonitor.tick()`, on the injected clock, opens a `check` work order (fault `maintenance_overdue`) for every
elevator without a visit for the cycle, once per overdue period: the obligation algorithm of rules.obligations, as
for the monthly single-item checks (rules.fire_checks). A visit moves the next due time a full cycle on and resolves
the open overdue work order (on site at the visit's start, resolved at its end); the tick does the latter too, so a
crash between the two is mended.

`ended_inspection` is pure.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import NoReturn

import structlog
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from facmon.estate.site import Site
from facmon.kernel.clock import Clock
from facmon.kernel.metrics import Counters
from facmon.kernel.model import DeviceKind, Event
from facmon.kernel.ticking import tick_forever
from facmon.workorders.sla import ClockDef, SlaProfile
from facmon.workorders.tables import Category, Milestone, Priority
from rules import obligations
from rules.engine import OpenWorkOrder
from rules.listing import in_sites_between
from rules.maintenance_models import MaintenanceSchedule, MaintenanceVisit, TechnicianCardRead, VisitSource

# settle_overdue: the monitor's tick and the API's visits settle with it; the demo history too.
from rules.maintenance_settle import FAULT as FAULT
from rules.maintenance_settle import settle_overdue as settle_overdue
from rules.obligations import Duty, Pending, mark_done, report_overdue, schedule
from rules.pipeline import upsert

log = structlog.get_logger(__name__)

RULE_ID = "elevator.maintenance.overdue"
DEFAULT_CYCLE = timedelta(days=15)
DEFAULT_MIN_INSPECTION = timedelta(minutes=10)
# A card read this long before the inspection began names the visit's technician.
TECHNICIAN_WINDOW = timedelta(hours=1)
INSPECTION = "inspection"
# The overdue maintenance itself is the repair: done within two days of being found overdue (a default).
PROFILE = SlaProfile(
    id="elevator.maintenance",
    description="An elevator without a maintenance visit for its 15-day cycle (TSG T5002).",
    main="visit_done",
    clocks=(ClockDef(name="visit_done", milestone=Milestone.RESOLVED, within=timedelta(days=2)),),
)


@dataclass(frozen=True)
class InspectionSpan:
    started_at: datetime
    ended_at: datetime


def ended_inspection(
    mode: str,
    at: datetime,
    previous_mode: str | None,
    previous_since: datetime | None,
    min_inspection: timedelta,
) -> InspectionSpan | None:
    """The inspection a service-mode change to `mode` at `at` ends, when it lasted at least `min_inspection`. Pure.

    A late replay (older than the stored mode's time) ends nothing; nor does inspection reported again.
    """
    if previous_mode != INSPECTION or mode == INSPECTION or previous_since is None or at < previous_since:
        return None
    if at - previous_since < min_inspection:
        return None
    return InspectionSpan(previous_since, at)


# --- writing ---------------------------------------------------------------------------------------------------------


def remember_card_read(session: Session, event: Event, technician: str, at: datetime) -> None:
    """Keep a granted read of a technician's card (once per event id)."""
    stmt = upsert(session, TechnicianCardRead).values(
        event_id=event.id, site=event.ref.site, technician=technician, reader=event.ref.device, at=at
    )
    session.execute(stmt.on_conflict_do_nothing(index_elements=[TechnicianCardRead.event_id]))


def technician_at(session: Session, site: str, start: datetime) -> str | None:
    """The technician whose card was last granted at `site` within the hour before `start` (inclusive)."""
    query = (
        select(TechnicianCardRead.technician)
        .where(
            TechnicianCardRead.site == site,
            TechnicianCardRead.at >= start - TECHNICIAN_WINDOW,
            TechnicianCardRead.at <= start,
        )
        .order_by(TechnicianCardRead.at.desc(), TechnicianCardRead.id.desc())
        .limit(1)
    )
    return session.execute(query).scalar_one_or_none()


def add_visit(
    session: Session,
    *,
    site: str,
    building: str,
    device: str,
    started_at: datetime,
    ended_at: datetime,
    technician: str | None,
    source: VisitSource,
    actor: str | None,
    note: str | None,
    now: datetime,
    event_id: str | None = None,
) -> MaintenanceVisit | None:
    """Add a visit and move the schedule, in the caller's transaction; None when `event_id` recorded one already."""
    if ended_at < started_at:
        raise ValueError("a visit cannot end before it starts")
    if event_id is not None:
        known = session.execute(select(MaintenanceVisit.id).where(MaintenanceVisit.event_id == event_id)).first()
        if known is not None:
            return None
    visit = MaintenanceVisit(
        site=site,
        building=building,
        device=device,
        started_at=started_at,
        ended_at=ended_at,
        technician=technician,
        source=source.value,
        actor=actor,
        note=note,
        event_id=event_id,
        recorded_at=now,
    )
    session.add(visit)
    session.flush()
    mark_done(session, DUTY, site, device, building, started_at)
    return visit


def record_visit(
    engine: Engine,
    *,
    site: str,
    building: str,
    device: str,
    started_at: datetime,
    ended_at: datetime,
    technician: str | None,
    source: VisitSource,
    actor: str | None,
    note: str | None,
    now: datetime,
) -> MaintenanceVisit:
    """Record a visit (the API's way) and resolve the elevator's open overdue work order it satisfies."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        visit = add_visit(
            session,
            site=site,
            building=building,
            device=device,
            started_at=started_at,
            ended_at=ended_at,
            technician=technician,
            source=source,
            actor=actor,
            note=note,
            now=now,
        )
    assert visit is not None  # no event id: always recorded
    settle_overdue(engine, site=site, device=device)
    return visit


def list_visits(
    session: Session,
    *,
    site: str | None = None,
    device: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[MaintenanceVisit]:
    """Visits that started in [since, until), newest first."""
    visit = MaintenanceVisit
    conditions = in_sites_between(visit.site, visit.started_at, site=site, since=since, until=until)
    if device is not None:
        conditions.append(visit.device == device)
    query = (
        select(MaintenanceVisit)
        .where(*conditions)
        .order_by(MaintenanceVisit.started_at.desc(), MaintenanceVisit.id.desc())
    )
    return list(session.execute(query.limit(limit).offset(offset)).scalars())


# --- overdue ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OverdueMaintenance:
    site: str
    device: str
    due_at: datetime
    work_order_id: int


def _days(cycle: timedelta) -> str:
    days = cycle / timedelta(days=1)
    return f"{days:g} days" if days != 1 else "1 day"


def _work_order(row: Pending, due: datetime, cycle: timedelta) -> OpenWorkOrder:
    building = row.building or ""
    deadlines = PROFILE.deadlines(due)
    return OpenWorkOrder(
        rule_id=RULE_ID,
        site=row.site,
        building=building,
        device=row.subject,
        kind=DeviceKind.ELEVATOR.value,
        fault=FAULT,
        title=f"Elevator {row.subject} ({building}): no maintenance visit for {_days(cycle)}",
        priority=Priority.URGENT,
        detected_at=due,
        due_at=deadlines[0].due_at,
        sla_profile=PROFILE.id,
        clocks=deadlines,
        category=Category.CHECK,
    )


def duty(cycle: timedelta = DEFAULT_CYCLE) -> Duty:
    """The maintenance visits as an obligation (rules.obligations); the cycle names itself in the work order."""
    return Duty(
        table=MaintenanceSchedule,
        subject_column="device",
        done_column="last_visit_at",
        kind=DeviceKind.ELEVATOR,
        cause_prefix="maintenance-overdue",
        missing="maintenance visit",
        work_order=partial(_work_order, cycle=cycle),
        keep_base=True,
    )


DUTY = duty()


def register_elevators(engine: Engine, sites: Iterable[Site], now: datetime) -> None:
    """Schedule every elevator of the site files from `now` (those on the schedule already keep their start)."""
    with Session(engine) as session, session.begin():
        for site in sites:
            for building, device in site.devices():
                if device.kind == DeviceKind.ELEVATOR:
                    schedule(session, DUTY, site.id, device.id, building.id, now)


def open_overdue(engine: Engine, cycle: timedelta, now: datetime) -> list[OverdueMaintenance]:
    """Open (or count one more occurrence of) a work order for each elevator newly overdue by `now`."""
    found = obligations.open_overdue(engine, duty(cycle), cycle, now)
    return [OverdueMaintenance(o.site, o.subject, o.due_at, o.work_order_id) for o in found]


class MaintenanceMonitor:
    """Schedules the site files' elevators, opens overdue work orders and settles those a visit satisfied, on the
    injected clock's time."""

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        *,
        sites: Sequence[Site] = (),
        cycle: timedelta = DEFAULT_CYCLE,
        metrics: Counters | None = None,
    ) -> None:
        if cycle <= timedelta(0):
            raise ValueError("the maintenance cycle must be positive")
        self.engine = engine
        self.clock = clock
        self.sites = tuple(sites)
        self.cycle = cycle
        self.metrics = metrics or Counters()

    def _tick(self, now: datetime) -> list[OverdueMaintenance]:
        register_elevators(self.engine, self.sites, now)
        overdue = open_overdue(self.engine, self.cycle, now)
        settle_overdue(self.engine)
        return overdue

    async def tick(self) -> list[OverdueMaintenance]:
        overdue = await asyncio.to_thread(self._tick, self.clock.now())
        message = "elevator maintenance overdue"
        report_overdue(overdue, self.metrics, metric="rules_maintenance_overdue", message=message, subject="device")
        return overdue

    async def run(self, interval_s: float = 60.0) -> NoReturn:
        await tick_forever(self.tick, interval_s, clock=self.clock, metrics=self.metrics, name="maintenance")
