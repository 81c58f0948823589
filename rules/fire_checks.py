"""GB 25201 single-item checks: every fire system (and every panel) checked at least once a month.

A check is recorded through the API (`record_check`). The schedule (`fire_check_schedule`) holds, per panel or
system, when it was last checked; a panel enters it when the rules worker first hears of it (`register_panel`), a
system with its first check. `FireCheckMonitor.tick()`, on the injected clock, opens a maintenance work order
(fault "single_item_check_overdue") for every subject whose check period has run out, once per overdue period, and
a check recorded moves the next due time a full period on: the obligation algorithm of rules.obligations.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import NoReturn

import structlog
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from facmon.kernel.clock import Clock
from facmon.kernel.metrics import Counters
from facmon.kernel.model import DeviceKind
from facmon.kernel.ticking import tick_forever
from facmon.workorders.sla import ClockDef, SlaProfile
from facmon.workorders.tables import Category, Milestone, Priority
from rules import obligations
from rules.engine import OpenWorkOrder
from rules.listing import in_sites_between
from rules.obligations import Duty, Overdue, Pending, mark_done, report_overdue, schedule
from rules.tables import FireCheck, FireCheckResult, FireCheckSchedule

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


# --- writing ---------------------------------------------------------------------------------------------------------


def register_panel(engine: Engine, site: str, building: str, device: str, seen_at: datetime) -> None:
    """Put a panel on the schedule from `seen_at`; nothing if it is there already."""
    with Session(engine) as session, session.begin():
        schedule(session, DUTY, site, device, building, seen_at)


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
        mark_done(session, DUTY, site, subject, None, at)
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
    conditions = in_sites_between(FireCheck.site, FireCheck.at, site=site, within=within, since=since, until=until)
    query = select(FireCheck).where(*conditions).order_by(FireCheck.at.desc(), FireCheck.id.desc())
    return list(session.execute(query.limit(limit).offset(offset)).scalars())


# A subject whose check is overdue, and the work order opened (or counted again) for it.
OverdueCheck = Overdue


def _work_order(row: Pending, due: datetime) -> OpenWorkOrder:
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


DUTY = Duty(
    table=FireCheckSchedule,
    subject_column="subject",
    done_column="last_check_at",
    kind=DeviceKind.FIRE_PANEL,
    cause_prefix="check-overdue",
    missing="single-item check",
    work_order=_work_order,
)


def open_overdue(engine: Engine, period: timedelta, now: datetime) -> list[OverdueCheck]:
    """Open (or count one more occurrence of) a work order for each subject newly overdue by `now`."""
    return obligations.open_overdue(engine, DUTY, period, now)


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
        message = "single-item check overdue"
        report_overdue(overdue, self.metrics, metric="rules_fire_checks_overdue", message=message, subject="subject")
        return overdue

    async def run(self, interval_s: float = 60.0) -> NoReturn:
        await tick_forever(self.tick, interval_s, clock=self.clock, metrics=self.metrics, name="fire_check")
