"""Obligations on a schedule: something due every period, done by evidence, else an overdue work order, once.

The monthly single-item checks of fire systems (rules.fire_checks) and the elevators' maintenance visits
(rules.maintenance_visits) are the same algorithm over a schedule table of their own (a `Duty`):

- a subject enters the schedule from when it is first known (`schedule`), or with its first evidence;
- evidence (a check, a visit) moves its last-done time on (`mark_done`), never back: evidence recorded late, after a
  newer one, changes nothing;
- `open_overdue` opens a work order for every subject whose period has run out since it was last done, once per
  overdue period: the UPDATE that claims the period (`overdue_due_at < due`) is the first statement of the
  transaction, so a restarted or second monitor finds it taken. A subject still not done a period later is overdue
  again, and its open work order counts one more occurrence.

`overdue_due` is pure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

import structlog
from sqlalchemy import ColumnElement, Engine, or_, select, update
from sqlalchemy.orm import Session

from facmon.kernel.metrics import Counters
from facmon.kernel.model import DeviceKind, DeviceRef, Event, EventType
from rules.engine import OpenWorkOrder
from rules.pipeline import upsert
from rules.store import open_or_recur

log = structlog.get_logger(__name__)


def overdue_due(base: datetime, period: timedelta, now: datetime) -> datetime | None:
    """The due time of the latest period that has run out by `now`, counting from `base` (the last time it was done,
    or when the subject was first seen); None while the first period is still running. Pure."""
    if period <= timedelta(0):
        raise ValueError("the period must be positive")
    periods = (now - base) // period
    return None if periods < 1 else base + periods * period


@dataclass(frozen=True)
class Pending:
    """One subject of a schedule, as read."""

    site: str
    subject: str
    building: str | None
    since: datetime
    done_at: datetime | None
    overdue_due_at: datetime | None

    @property
    def base(self) -> datetime:
        """What the periods count from: the last time it was done, else when it entered the schedule."""
        return self.done_at or self.since


@dataclass(frozen=True)
class Overdue:
    site: str
    subject: str
    due_at: datetime
    work_order_id: int


@dataclass(frozen=True)
class Duty:
    """One kind of obligation: its schedule table (columns site, building, since, overdue_due_at, and
    overdue_base_at when `keep_base`), the names of its subject and last-done columns, and its work order."""

    table: Any
    subject_column: str
    done_column: str
    # The kind of device the overdue work order's cause is filed under, its event id prefix and what is missing.
    kind: DeviceKind
    cause_prefix: str
    missing: str
    work_order: Callable[[Pending, datetime], OpenWorkOrder]
    # Keep what the overdue period was counted from (`overdue_base_at`): the evidence after it settles the order.
    keep_base: bool = False

    @property
    def subject(self) -> ColumnElement[str]:
        return cast(ColumnElement[str], getattr(self.table, self.subject_column))

    @property
    def done(self) -> ColumnElement[datetime | None]:
        return cast(ColumnElement[datetime | None], getattr(self.table, self.done_column))

    def key(self, site: str, subject: str) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
        return self.table.site == site, self.subject == subject


# --- evidence --------------------------------------------------------------------------------------------------------


def schedule(session: Session, duty: Duty, site: str, subject: str, building: str | None, since: datetime) -> None:
    """Put a subject on the schedule from `since`; nothing if it is there already."""
    session.execute(
        upsert(session, duty.table)
        .values(site=site, building=building, since=since, **{duty.subject_column: subject})
        .on_conflict_do_nothing(index_elements=[duty.table.site, duty.subject])
    )


def mark_done(session: Session, duty: Duty, site: str, subject: str, building: str | None, at: datetime) -> None:
    """Evidence that the subject was done at `at`: the next period counts from there (a subject not on the schedule
    enters it then). Evidence older than the last changes nothing."""
    values = {"site": site, "building": building, "since": at, duty.subject_column: subject, duty.done_column: at}
    stmt = upsert(session, duty.table).values(**values)
    done = stmt.excluded[duty.done_column]
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=[duty.table.site, duty.subject],
            set_={duty.done_column: done},
            where=or_(duty.done.is_(None), duty.done < done),
        )
    )


# --- overdue ---------------------------------------------------------------------------------------------------------


def _pending(session: Session, duty: Duty) -> list[Pending]:
    t = duty.table
    rows = session.execute(select(t.site, duty.subject, t.building, t.since, duty.done, t.overdue_due_at))
    return [Pending(*row) for row in rows]


def _claim_period(session: Session, duty: Duty, item: Pending, due: datetime) -> bool:
    """Mark the period ending at `due` as opened; False when it was (or the subject was done since it was read)."""
    t = duty.table
    values = {"overdue_due_at": due} | ({"overdue_base_at": item.base} if duty.keep_base else {})
    claimed = session.execute(
        update(t)
        .where(
            *duty.key(item.site, item.subject),
            or_(t.overdue_due_at.is_(None), t.overdue_due_at < due),
            # Evidence recorded since the read moves the due time; this period is then not overdue.
            duty.done.is_(None) if item.done_at is None else duty.done == item.done_at,
        )
        .values(**values)
        .returning(duty.subject)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    return claimed is not None


def _cause(duty: Duty, item: Pending, action: OpenWorkOrder, due: datetime) -> Event:
    """The event the overdue work order is recorded as coming from (its timeline's detail)."""
    ref = DeviceRef(site=item.site, building=action.building, device=item.subject, kind=duty.kind, model="-")
    return Event(
        ref=ref,
        ts=due,
        type=EventType.FAULT_RAISED,
        code=action.fault,
        message=f"no {duty.missing} since {item.base.isoformat()}",
        id=f"{duty.cause_prefix}-{due.strftime('%Y%m%dT%H%M%S')}",
    )


def open_overdue(engine: Engine, duty: Duty, period: timedelta, now: datetime) -> list[Overdue]:
    """Open (or count one more occurrence of) a work order for each subject newly overdue by `now`."""
    opened: list[Overdue] = []
    with Session(engine) as session:
        pending = _pending(session, duty)
    for item in pending:
        due = overdue_due(item.base, period, now)
        if due is None or (item.overdue_due_at is not None and item.overdue_due_at >= due):
            continue
        with Session(engine) as session, session.begin():
            if not _claim_period(session, duty, item, due):
                continue
            action = duty.work_order(item, due)
            work_order_id, _ = open_or_recur(session, action, _cause(duty, item, action, due), now)
        opened.append(Overdue(item.site, item.subject, due, work_order_id))
    return opened


class Found(Protocol):
    @property
    def site(self) -> str: ...
    @property
    def due_at(self) -> datetime: ...
    @property
    def work_order_id(self) -> int: ...


def report_overdue(found: Sequence[Found], metrics: Counters, *, metric: str, message: str, subject: str) -> None:
    """Count and log each newly overdue obligation, naming its subject under the key `subject` (device, subject)."""
    for item in found:
        metrics.inc(metric)
        where = {subject: getattr(item, subject)}
        log.warning(message, site=item.site, **where, due_at=item.due_at.isoformat(), work_order=item.work_order_id)
