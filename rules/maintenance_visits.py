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
elevator without a visit for the cycle, once per overdue period, the way rules.fire_checks does for the monthly
single-item checks: the UPDATE that claims the period is the transaction's first statement, so a restart or a second
worker finds it taken, and an elevator still unvisited a cycle later counts one more occurrence of the open work
order. A visit moves the next due time a full cycle on and resolves the open overdue work order (on site at the
visit's start, resolved at its end); the tick does the latter too, so a crash between the two is mended.

`ended_inspection` and `overdue_due` (rules.fire_checks) are pure.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NoReturn

import structlog
from sqlalchemy import ColumnElement, Engine, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from facmon.estate.site import Site
from facmon.kernel.clock import Clock
from facmon.kernel.metrics import Counters
from facmon.kernel.model import DeviceKind, DeviceRef, Event, EventType
from facmon.workorders.sla import ClockDef, SlaProfile
from facmon.workorders.tables import OPEN_STATUSES, Category, Milestone, Priority, WorkOrder, WorkOrderStatus
from facmon.workorders.transitions import IllegalTransition
from facmon.workorders.workflow import transition
from rules.engine import OpenWorkOrder
from rules.fire_checks import overdue_due
from rules.maintenance_models import MaintenanceSchedule, MaintenanceVisit, TechnicianCardRead, VisitSource
from rules.store import _open_or_recur
from rules.ticking import tick_forever

log = structlog.get_logger(__name__)

FAULT = "maintenance_overdue"
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


def _insert(session: Session, table: type[object]) -> sqlite.Insert | postgresql.Insert:
    insert = sqlite.insert if session.get_bind().dialect.name == "sqlite" else postgresql.insert
    return insert(table)


def remember_card_read(session: Session, event: Event, technician: str, at: datetime) -> None:
    """Keep a granted read of a technician's card (once per event id)."""
    stmt = _insert(session, TechnicianCardRead).values(
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


def schedule(session: Session, site: str, device: str, building: str | None, since: datetime) -> None:
    """Put an elevator on the schedule from `since`; nothing if it is there already."""
    session.execute(
        _insert(session, MaintenanceSchedule)
        .values(site=site, device=device, building=building, since=since)
        .on_conflict_do_nothing(index_elements=[MaintenanceSchedule.site, MaintenanceSchedule.device])
    )


def _move_schedule(session: Session, visit: MaintenanceVisit) -> None:
    stmt = _insert(session, MaintenanceSchedule).values(
        site=visit.site,
        device=visit.device,
        building=visit.building,
        since=visit.started_at,
        last_visit_at=visit.started_at,
    )
    # A visit recorded late (after a newer one) must not move the schedule back.
    newer = or_(
        MaintenanceSchedule.last_visit_at.is_(None), MaintenanceSchedule.last_visit_at < stmt.excluded.last_visit_at
    )
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=[MaintenanceSchedule.site, MaintenanceSchedule.device],
            set_={"last_visit_at": stmt.excluded.last_visit_at},
            where=newer,
        )
    )


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
    _move_schedule(session, visit)
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
    conditions: list[ColumnElement[bool]] = []
    if site is not None:
        conditions.append(MaintenanceVisit.site == site)
    if device is not None:
        conditions.append(MaintenanceVisit.device == device)
    if since is not None:
        conditions.append(MaintenanceVisit.started_at >= since)
    if until is not None:
        conditions.append(MaintenanceVisit.started_at < until)
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


def _work_order(row: MaintenanceSchedule, due: datetime, cycle: timedelta) -> OpenWorkOrder:
    building = row.building or ""
    deadlines = PROFILE.deadlines(due)
    return OpenWorkOrder(
        rule_id=RULE_ID,
        site=row.site,
        building=building,
        device=row.device,
        kind=DeviceKind.ELEVATOR.value,
        fault=FAULT,
        title=f"Elevator {row.device} ({building}): no maintenance visit for {_days(cycle)}",
        priority=Priority.URGENT,
        detected_at=due,
        due_at=deadlines[0].due_at,
        sla_profile=PROFILE.id,
        clocks=deadlines,
        category=Category.CHECK,
    )


def register_elevators(engine: Engine, sites: Iterable[Site], now: datetime) -> None:
    """Schedule every elevator of the site files from `now` (those on the schedule already keep their start)."""
    with Session(engine) as session, session.begin():
        for site in sites:
            for building, device in site.devices():
                if device.kind == DeviceKind.ELEVATOR:
                    schedule(session, site.id, device.id, building.id, now)


def open_overdue(engine: Engine, cycle: timedelta, now: datetime) -> list[OverdueMaintenance]:
    """Open (or count one more occurrence of) a work order for each elevator newly overdue by `now`."""
    opened: list[OverdueMaintenance] = []
    with Session(engine) as session:
        rows = list(session.execute(select(MaintenanceSchedule)).scalars())
    for row in rows:
        base = row.last_visit_at or row.since
        due = overdue_due(base, cycle, now)
        if due is None or (row.overdue_due_at is not None and row.overdue_due_at >= due):
            continue
        with Session(engine) as session, session.begin():
            claimed = session.execute(
                update(MaintenanceSchedule)
                .where(
                    MaintenanceSchedule.site == row.site,
                    MaintenanceSchedule.device == row.device,
                    or_(MaintenanceSchedule.overdue_due_at.is_(None), MaintenanceSchedule.overdue_due_at < due),
                    # A visit recorded since the read moves the due time; this period is then not overdue.
                    MaintenanceSchedule.last_visit_at.is_(None)
                    if row.last_visit_at is None
                    else MaintenanceSchedule.last_visit_at == row.last_visit_at,
                )
                .values(overdue_due_at=due, overdue_base_at=base)
                .returning(MaintenanceSchedule.device)
                .execution_options(synchronize_session=False)
            ).scalar_one_or_none()
            if claimed is None:
                continue
            action = _work_order(row, due, cycle)
            ref = DeviceRef(
                site=row.site, building=action.building, device=row.device, kind=DeviceKind.ELEVATOR, model="-"
            )
            cause = Event(
                ref=ref,
                ts=due,
                type=EventType.FAULT_RAISED,
                code=FAULT,
                message=f"no maintenance visit since {base.isoformat()}",
                id=f"maintenance-overdue-{due.strftime('%Y%m%dT%H%M%S')}",
            )
            work_order_id, _ = _open_or_recur(session, action, cause, now)
        opened.append(OverdueMaintenance(row.site, row.device, due, work_order_id))
    return opened


def settle_overdue(engine: Engine, *, site: str | None = None, device: str | None = None) -> list[int]:
    """Resolve the open overdue work orders a visit satisfies (one after the last visit they were counted from):
    on site at the visit's start, resolved at its end, with the visit's technician as the actor. The ids resolved."""
    conditions: list[ColumnElement[bool]] = [
        WorkOrder.fault == FAULT,
        WorkOrder.status.in_([s.value for s in OPEN_STATUSES]),
        MaintenanceSchedule.last_visit_at.is_not(None),
        MaintenanceSchedule.overdue_base_at.is_not(None),
        MaintenanceSchedule.last_visit_at > MaintenanceSchedule.overdue_base_at,
    ]
    if site is not None:
        conditions.append(WorkOrder.site == site)
    if device is not None:
        conditions.append(WorkOrder.device == device)
    with Session(engine) as session:
        found = session.execute(
            select(WorkOrder.id, WorkOrder.detected_at, MaintenanceSchedule)
            .join(
                MaintenanceSchedule,
                (MaintenanceSchedule.site == WorkOrder.site) & (MaintenanceSchedule.device == WorkOrder.device),
            )
            .where(*conditions)
        ).all()
        plans = []
        for work_order_id, detected_at, row in found:
            visit = session.execute(
                select(MaintenanceVisit)
                .where(
                    MaintenanceVisit.site == row.site,
                    MaintenanceVisit.device == row.device,
                    MaintenanceVisit.started_at == row.last_visit_at,
                )
                .order_by(MaintenanceVisit.id.desc())
                .limit(1)
            ).scalar_one_or_none()
            if visit is not None:
                plans.append((work_order_id, detected_at, visit))
    resolved = []
    for work_order_id, detected_at, visit in plans:
        actor = visit.technician or visit.actor or visit.device
        on_site_at = max(visit.started_at, detected_at)
        span = f"{visit.started_at:%Y-%m-%d %H:%M} to {visit.ended_at:%Y-%m-%d %H:%M} UTC"
        note = f"maintenance visit #{visit.id}, {span}"
        with contextlib.suppress(IllegalTransition):  # on site already (the inspection mode put it there)
            transition(
                engine,
                work_order_id,
                WorkOrderStatus.ON_SITE,
                actor=actor,
                source=visit.source,
                at=on_site_at,
                note=note,
            )
        try:
            transition(
                engine,
                work_order_id,
                WorkOrderStatus.RESOLVED,
                actor=actor,
                source=visit.source,
                at=max(visit.ended_at, on_site_at),
                note=note,
            )
        except IllegalTransition as exc:
            log.debug("overdue maintenance already settled", work_order_id=work_order_id, status=exc.current.value)
            continue
        resolved.append(work_order_id)
    return resolved


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
        for item in overdue:
            self.metrics.inc("rules_maintenance_overdue")
            log.warning(
                "elevator maintenance overdue",
                site=item.site,
                device=item.device,
                due_at=item.due_at.isoformat(),
                work_order=item.work_order_id,
            )
        return overdue

    async def run(self, interval_s: float = 60.0) -> NoReturn:
        await tick_forever(self.tick, interval_s, clock=self.clock, metrics=self.metrics, name="maintenance")
