"""Carrying out the engine's actions in the database, and reading work orders back.

`ApplyActions` is the handler (rules.pipeline) that writes the device's status and the work orders of one event, in
the event's transaction (claimed in `processed_events` first: a redelivered event finds it taken and changes
nothing); `apply_event` runs it alone. Opening a work order is a
single INSERT ... ON CONFLICT DO UPDATE against the partial unique index of open work orders, so two workers that
see the same fault at the same moment end with one work order counting two occurrences — the database decides,
not a read-then-write in Python that could race.

A work order opens with its SLA clocks (the deadlines of its profile) and, when the same device and fault had a work
order before (resolved, closed or cancelled), a link to the latest one (`previous_id`); arrival evidence kept from
before the opening (rules.evidence) moves it on site at once.
Status transitions and follow-ups are in `facmon.workorders.workflow`.

Arrival order does not decide, the events' times do (several workers take one device's events, a gateway replays
its outbox late): the device's last event and comm state are those of its newest events; a clear older than the
work order's last occurrence changes nothing; and the latest clear of each fault is kept (`fault_clears`), so a
raise processed after a newer clear opens (or counts) its work order with the fault cleared at once, as had the
clear come second. The work order stays open either way: a fault that went away may come back, a person resolves
it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, case, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from facmon.kernel.model import Event
from facmon.workorders.next_due import refresh_next_due
from facmon.workorders.tables import (
    OPEN_WHERE_SQL,
    RULES_SOURCE,
    TERMINAL_STATUSES,
    TimelineType,
    WorkOrder,
    WorkOrderClock,
    WorkOrderEvent,
    WorkOrderStatus,
)
from rules.engine import Action, FaultCleared, OpenWorkOrder, SetComm
from rules.evidence import apply_kept
from rules.pipeline import Outcome, Step, latest_clear, lock_site_arrivals, remember_clear, run_handlers, upsert
from rules.tables import Comm, DeviceStatus

_OPEN_FAULT_KEY = (WorkOrder.site, WorkOrder.device, WorkOrder.fault)


@dataclass(frozen=True)
class ApplyResult:
    """What applying one event did; `duplicate` means the event id had been applied before and nothing changed."""

    duplicate: bool = False
    opened: tuple[int, ...] = ()
    recurred: tuple[int, ...] = ()
    cleared: tuple[int, ...] = ()

    @classmethod
    def of(cls, outcome: Outcome) -> ApplyResult:
        if outcome.duplicate:
            return cls(duplicate=True)
        return cls(opened=tuple(outcome.opened), recurred=tuple(outcome.recurred), cleared=tuple(outcome.cleared))


def _event_detail(event: Event, rule_id: str) -> dict[str, Any]:
    return {
        "event_id": event.id,
        "event_ts": event.ts.isoformat(),
        "code": event.code,
        "message": event.message,
        "rule": rule_id,
    }


def _touch_device(session: Session, event: Event, comm: Comm | None) -> None:
    ins = upsert(session, DeviceStatus)
    stmt = ins.values(
        site=event.ref.site,
        device=event.ref.device,
        comm=(comm or Comm.OK).value,
        last_event_at=event.ts,
        last_event_type=event.type.value,
        comm_since=None if comm is None else event.ts,
    )
    new = stmt.excluded
    # An event replayed late (gateway outbox after an outage, or taken by another worker and applied after a newer
    # one) must not overwrite what a newer one said: the last event is the newest event, the comm state that of the
    # newest comm event, each decided by the events' times.
    newer = DeviceStatus.last_event_at <= new.last_event_at
    changes: dict[str, Any] = {
        "last_event_at": case((newer, new.last_event_at), else_=DeviceStatus.last_event_at),
        "last_event_type": case((newer, new.last_event_type), else_=DeviceStatus.last_event_type),
    }
    if comm is not None:
        newer_comm = or_(DeviceStatus.comm_since.is_(None), DeviceStatus.comm_since <= new.comm_since)
        changes["comm"] = case((newer_comm, new.comm), else_=DeviceStatus.comm)
        changes["comm_since"] = case((newer_comm, new.comm_since), else_=DeviceStatus.comm_since)
    session.execute(stmt.on_conflict_do_update(index_elements=[DeviceStatus.site, DeviceStatus.device], set_=changes))


def _new_row(session: Session, action: OpenWorkOrder, now: datetime) -> sqlite.Insert | postgresql.Insert:
    """The INSERT of the work order `action` opens, with its link to the one before."""
    # Evaluated by the database inside the INSERT: when the row is new, the open slot was free, so the newest row
    # of this device and fault is the one before (resolved, closed or cancelled). Unused when the upsert updates.
    previous = (
        select(func.max(WorkOrder.id))
        .where(WorkOrder.site == action.site, WorkOrder.device == action.device, WorkOrder.fault == action.fault)
        .scalar_subquery()
    )
    return upsert(session, WorkOrder).values(
        site=action.site,
        building=action.building,
        device=action.device,
        kind=action.kind,
        fault=action.fault,
        title=action.title,
        priority=action.priority.value,
        category=action.category.value,
        status=WorkOrderStatus.OPEN.value,
        detected_at=action.detected_at,
        due_at=action.due_at,
        occurrences=1,
        last_occurrence_at=action.detected_at,
        created_at=now,
        updated_at=now,
        previous_id=previous,
        sla_profile=action.sla_profile,
    )


def _recur_on_conflict(stmt: sqlite.Insert | postgresql.Insert, now: datetime) -> sqlite.Insert | postgresql.Insert:
    """The INSERT, counting one more occurrence of the open work order when there is one already."""
    latest = case(
        (stmt.excluded.last_occurrence_at > WorkOrder.last_occurrence_at, stmt.excluded.last_occurrence_at),
        else_=WorkOrder.last_occurrence_at,
    )
    return stmt.on_conflict_do_update(
        index_elements=list(_OPEN_FAULT_KEY),
        # Must be the index's own predicate text: that is how both databases pick the partial index as the target.
        index_where=text(OPEN_WHERE_SQL),
        set_={
            "occurrences": WorkOrder.occurrences + 1,
            "last_occurrence_at": latest,
            # The fault is active again (the earlier clear stays in the timeline), unless this raise is older than
            # that clear: then it was processed late (another worker's, out of order) and the fault stays cleared.
            "fault_cleared_at": case(
                (WorkOrder.fault_cleared_at > stmt.excluded.last_occurrence_at, WorkOrder.fault_cleared_at),
                else_=None,
            ),
            "updated_at": now,
        },
    )


def open_or_recur(session: Session, action: OpenWorkOrder, event: Event, now: datetime) -> tuple[int, bool]:
    """Open the work order `action` asks for, or count one more occurrence of the open one; (its id, True if newly
    opened). The opening brings its SLA clocks; either way the timeline says so."""
    stmt = _recur_on_conflict(_new_row(session, action, now), now)
    returning = stmt.returning(
        WorkOrder.id, WorkOrder.occurrences, WorkOrder.status, WorkOrder.previous_id, WorkOrder.last_occurrence_at
    )
    work_order_id, occurrences, status, previous_id, last_occurrence = session.execute(returning).one()
    # A fresh row starts at 1 and every conflict adds 1, so this tells the two apart on both backends.
    opened = occurrences == 1
    detail = _event_detail(event, action.rule_id)
    if opened:
        detail |= {
            "priority": action.priority.value,
            "category": action.category.value,
            "due_at": action.due_at.isoformat(),
            "sla_profile": action.sla_profile,
            "previous_id": previous_id,
        }
        session.add_all(
            WorkOrderClock(work_order_id=work_order_id, name=c.name, milestone=c.milestone.value, due_at=c.due_at)
            for c in action.clocks
        )
        session.flush()
        refresh_next_due(session, work_order_id)  # the urgency sort's key (facmon.workorders.next_due)
    session.add(
        WorkOrderEvent(
            work_order_id=work_order_id,
            at=now,
            type=TimelineType.OPENED if opened else TimelineType.RECURRED,
            status=status,
            actor=action.rule_id,
            source=RULES_SOURCE,
            detail=detail,
        )
    )
    if opened:
        # A technician's card read or an inspection kept from before the opening, at or after the detection; under
        # the site's arrivals lock, so a read being applied on another worker now is either seen here or sees this.
        lock_site_arrivals(session, action.site)
        place = {"site": action.site, "device": action.device, "kind": action.kind}
        apply_kept(session, work_order_id, **place, detected_at=action.detected_at, now=now)
    _cleared_before(session, action, event, work_order_id, last_occurrence, now)
    return work_order_id, opened


def _cleared_before(
    session: Session, action: OpenWorkOrder, event: Event, work_order_id: int, last_occurrence: datetime, now: datetime
) -> None:
    """The fault's clear processed before this raise but newer than every occurrence of the work order (the events
    reached two workers, the clear's finished first): recorded on the work order now, as the clear would have done
    had it come after the raise. Arrival order does not decide, the events' times do."""
    cleared_at = latest_clear(session, action.site, action.device, action.fault)
    if cleared_at is None or cleared_at < last_occurrence:
        return
    cleared = FaultCleared(action.rule_id, action.site, action.device, action.fault, cleared_at)
    _mark_cleared(session, cleared, event, now, [WorkOrder.id == work_order_id])


def _fault_cleared(session: Session, action: FaultCleared, event: Event, now: datetime) -> list[int]:
    remember_clear(session, action.site, action.device, action.fault, action.cleared_at)
    where = [
        WorkOrder.site == action.site,
        WorkOrder.device == action.device,
        WorkOrder.fault == action.fault,
        WorkOrder.status.not_in([s.value for s in TERMINAL_STATUSES]),
    ]
    return _mark_cleared(session, action, event, now, where)


def _mark_cleared(
    session: Session, action: FaultCleared, event: Event, now: datetime, where: Sequence[ColumnElement[bool]]
) -> list[int]:
    """Record the clear on the work orders `where` selects whose last occurrence it does not predate."""
    stmt = (
        update(WorkOrder)
        .where(
            *where,
            # A clear that arrives after a newer raise (late replay) would claim an active fault is gone.
            WorkOrder.last_occurrence_at <= action.cleared_at,
            # Nor does an older clear undo a newer one's time.
            or_(WorkOrder.fault_cleared_at.is_(None), WorkOrder.fault_cleared_at < action.cleared_at),
        )
        .values(fault_cleared_at=action.cleared_at, updated_at=now)
        .returning(WorkOrder.id, WorkOrder.status)
        .execution_options(synchronize_session=False)
    )
    rows = session.execute(stmt).all()
    for work_order_id, status in rows:
        detail = _event_detail(event, action.rule_id) | {"cleared_at": action.cleared_at.isoformat()}
        session.add(
            WorkOrderEvent(
                work_order_id=work_order_id,
                at=now,
                type=TimelineType.FAULT_CLEARED,
                status=status,
                actor=action.rule_id,
                source=RULES_SOURCE,
                detail=detail,
            )
        )
    return [work_order_id for work_order_id, _ in rows]


class ApplyActions:
    """Handler: the device's status, then the work orders the event rules open, count again or clear."""

    name = "work_orders"

    def __call__(self, step: Step) -> None:
        session, event, now, outcome = step.session, step.event, step.now, step.outcome
        comm = next((a.comm for a in reversed(step.actions) if isinstance(a, SetComm)), None)
        _touch_device(session, event, comm)
        for action in step.actions:
            if isinstance(action, OpenWorkOrder):
                work_order_id, is_new = open_or_recur(session, action, event, now)
                (outcome.opened if is_new else outcome.recurred).append(work_order_id)
            elif isinstance(action, FaultCleared):
                outcome.cleared.extend(_fault_cleared(session, action, event, now))


def apply_event(engine: Engine, event: Event, actions: Sequence[Action], now: datetime) -> ApplyResult:
    """Apply `actions` (from evaluating `event`) in one transaction, at most once per event id."""
    return ApplyResult.of(run_handlers(engine, event, actions, now, [ApplyActions()]))


def device_statuses(session: Session, *, site: str | None = None) -> dict[tuple[str, str], DeviceStatus]:
    query = select(DeviceStatus)
    if site is not None:
        query = query.where(DeviceStatus.site == site)
    return {(row.site, row.device): row for row in session.execute(query).scalars()}
