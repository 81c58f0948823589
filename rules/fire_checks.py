"""GB 25201 single-item checks: every fire system (and every panel) checked at least once a month.

A check is recorded through the API (`record_check`). The schedule (`fire_check_schedule`) holds, per panel or
system, when it was last checked; a panel enters it when the rules worker first hears of it (`register_panel`), a
system with its first check. `FireCheckMonitor.tick()`, on the injected clock, opens a maintenance work order
(fault "single_item_check_overdue") for every subject whose check period has run out:

- once per overdue period: the UPDATE that claims the period (`overdue_due_at < due`) is the first statement of the
  transaction, so a restarted or second monitor finds it taken; a subject still unchecked a period later is overdue
  again, and its open work order counts one more occurrence;
- a check recorded moves the next due time a full period on, so nothing opens until then.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NoReturn

import structlog
from sqlalchemy import ColumnElement, Engine, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from facmon.kernel.clock import Clock
from facmon.kernel.metrics import Counters
from facmon.kernel.model import DeviceKind, DeviceRef, Event, EventType
from facmon.workorders.sla import ClockDef, SlaProfile
from facmon.workorders.tables import Category, Milestone, Priority
from rules.engine import OpenWorkOrder
from rules.store import _open_or_recur
from rules.tables import FireCheck, FireCheckResult, FireCheckSchedule
from rules.ticking import tick_forever

log = structlog.get_logger(__name__)

FAULT = "single_item_check_overdue"
RULE_ID = "fire.single-item-check.overdue"
DEFAULT_PERIOD = timedelta(days=30)
SYSTEM_PREFIX = "system:"
# The overdue check itself is the repair: done within a week of being found overdue.
PROFILE = SlaProfile(
    id="fire.single-item-check",
    description="A GB 25201 monthly single-item check not done in its period.",
    main="check_done",
    clocks=(ClockDef(name="check_done", milestone=Milestone.RESOLVED, within=timedelta(days=7)),),
)


def subject_of(device: str | None, system: str | None) -> str:
    if (device is None) == (system is None):
        raise ValueError("a check is of a device or of a system, exactly one")
    return device if device is not None else f"{SYSTEM_PREFIX}{system}"


def overdue_due(base: datetime, period: timedelta, now: datetime) -> datetime | None:
    """The due time of the latest period that has run out by `now`, counting from `base` (the last check, or when the
    subject was first seen); None while the first period is still running. Pure."""
    if period <= timedelta(0):
        raise ValueError("the check period must be positive")
    periods = (now - base) // period
    return None if periods < 1 else base + periods * period


# --- writing ---------------------------------------------------------------------------------------------------------


def _insert(session: Session) -> sqlite.Insert | postgresql.Insert:
    dialect = session.get_bind().dialect.name
    insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
    return insert(FireCheckSchedule)


def register_panel(engine: Engine, site: str, building: str, device: str, seen_at: datetime) -> None:
    """Put a panel on the schedule from `seen_at`; nothing if it is there already."""
    with Session(engine) as session, session.begin():
        session.execute(
            _insert(session)
            .values(site=site, subject=device, building=building, since=seen_at)
            .on_conflict_do_nothing(index_elements=[FireCheckSchedule.site, FireCheckSchedule.subject])
        )


def record_check(
    engine: Engine,
    *,
    site: str,
    device: str | None,
    system: str | None,
    item: str,
    actor: str,
    result: FireCheckResult,
    note: str | None,
    at: datetime,
    now: datetime,
) -> FireCheck:
    subject = subject_of(device, system)
    with Session(engine, expire_on_commit=False) as session, session.begin():
        check = FireCheck(
            site=site,
            device=device,
            system=system,
            item=item,
            actor=actor,
            result=result.value,
            note=note,
            at=at,
            recorded_at=now,
        )
        session.add(check)
        stmt = _insert(session).values(site=site, subject=subject, since=at, last_check_at=at)
        # A check recorded late (after a newer one) must not move the schedule back.
        newer = or_(FireCheckSchedule.last_check_at.is_(None), FireCheckSchedule.last_check_at < stmt.excluded.since)
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=[FireCheckSchedule.site, FireCheckSchedule.subject],
                set_={"last_check_at": stmt.excluded.last_check_at},
                where=newer,
            )
        )
    return check


def list_checks(
    session: Session,
    *,
    site: str | None = None,
    within: Collection[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[FireCheck]:
    conditions: list[ColumnElement[bool]] = []
    if site is not None:
        conditions.append(FireCheck.site == site)
    if within is not None:  # the sites a caller may see (a technician's)
        conditions.append(FireCheck.site.in_(sorted(within)))
    if since is not None:
        conditions.append(FireCheck.at >= since)
    if until is not None:
        conditions.append(FireCheck.at < until)
    query = select(FireCheck).where(*conditions).order_by(FireCheck.at.desc(), FireCheck.id.desc())
    return list(session.execute(query.limit(limit).offset(offset)).scalars())


@dataclass(frozen=True)
class OverdueCheck:
    site: str
    subject: str
    due_at: datetime
    work_order_id: int


def _work_order(row: FireCheckSchedule, due: datetime) -> OpenWorkOrder:
    system = row.subject.startswith(SYSTEM_PREFIX)
    what = f"fire system {row.subject.removeprefix(SYSTEM_PREFIX)}" if system else f"fire panel {row.subject}"
    return OpenWorkOrder(
        rule_id=RULE_ID,
        site=row.site,
        building=row.building or "",
        device=row.subject,
        kind="fire_system" if system else DeviceKind.FIRE_PANEL.value,
        fault=FAULT,
        title=f"Monthly single-item check overdue: {what}",
        priority=Priority.URGENT,
        detected_at=due,
        due_at=PROFILE.deadlines(due)[0].due_at,
        sla_profile=PROFILE.id,
        clocks=PROFILE.deadlines(due),
        category=Category.CHECK,
    )


def open_overdue(engine: Engine, period: timedelta, now: datetime) -> list[OverdueCheck]:
    """Open (or count one more occurrence of) a work order for each subject newly overdue by `now`."""
    opened: list[OverdueCheck] = []
    with Session(engine) as session:
        rows = list(session.execute(select(FireCheckSchedule)).scalars())
    for row in rows:
        due = overdue_due(row.last_check_at or row.since, period, now)
        if due is None or (row.overdue_due_at is not None and row.overdue_due_at >= due):
            continue
        with Session(engine) as session, session.begin():
            claimed = session.execute(
                update(FireCheckSchedule)
                .where(
                    FireCheckSchedule.site == row.site,
                    FireCheckSchedule.subject == row.subject,
                    or_(FireCheckSchedule.overdue_due_at.is_(None), FireCheckSchedule.overdue_due_at < due),
                    # A check recorded since the read moves the due time; this period is then not overdue.
                    FireCheckSchedule.last_check_at.is_(None)
                    if row.last_check_at is None
                    else FireCheckSchedule.last_check_at == row.last_check_at,
                )
                .values(overdue_due_at=due)
                .returning(FireCheckSchedule.subject)
                .execution_options(synchronize_session=False)
            ).scalar_one_or_none()
            if claimed is None:
                continue
            action = _work_order(row, due)
            ref = DeviceRef(
                site=row.site,
                building=action.building,
                device=row.subject,
                kind=DeviceKind.FIRE_PANEL,
                model="-",
            )
            cause = Event(
                ref=ref,
                ts=due,
                type=EventType.FAULT_RAISED,
                code=FAULT,
                message=f"no single-item check since {(row.last_check_at or row.since).isoformat()}",
                id=f"check-overdue-{due.strftime('%Y%m%dT%H%M%S')}",
            )
            work_order_id, _ = _open_or_recur(session, action, cause, now)
        opened.append(OverdueCheck(row.site, row.subject, due, work_order_id))
    return opened


class FireCheckMonitor:
    """Runs `open_overdue` on the injected clock's time."""

    def __init__(
        self, engine: Engine, clock: Clock, *, period: timedelta = DEFAULT_PERIOD, metrics: Counters | None = None
    ) -> None:
        if period <= timedelta(0):
            raise ValueError("the check period must be positive")
        self.engine = engine
        self.clock = clock
        self.period = period
        self.metrics = metrics or Counters()

    async def tick(self) -> list[OverdueCheck]:
        overdue = await asyncio.to_thread(open_overdue, self.engine, self.period, self.clock.now())
        for item in overdue:
            self.metrics.inc("rules_fire_checks_overdue")
            log.warning(
                "single-item check overdue",
                site=item.site,
                subject=item.subject,
                due_at=item.due_at.isoformat(),
                work_order=item.work_order_id,
            )
        return overdue

    async def run(self, interval_s: float = 60.0) -> NoReturn:
        await tick_forever(self.tick, interval_s, clock=self.clock, metrics=self.metrics, name="fire_check")
