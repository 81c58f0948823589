"""Status transitions and follow-up visits, carried out in the database.

`transition(...)` is the one way a work order changes status, whoever proves the change: a technician through the
API (source "api"), a card read at the site or the car switched to inspection mode (sources "card_read",
"inspection_mode", from the rules worker), the rules themselves ("rules"). Each records when, who, through what and
an optional note, meets the SLA clocks the new status reaches (withdrawing a breach recorded for one it meets in
time: facmon.workorders.late_arrival), and writes one timeline entry per status recorded. A technician who
acknowledges or arrives at an unassigned work order takes it (`take=`), in the same transaction.

`assign(...)` gives a work order to a technician (or takes it back), `add_note(...)` adds a remark; both write a
timeline entry (`assigned`, `note`). Who may do either is the API's decision (api.auth.Principal), not this module's.

Concurrency: the status is changed by a compare-and-set UPDATE (`WHERE status = <the status the plan started
from>`), the first statement of its transaction. Two technicians acknowledging at the same moment: one UPDATE finds
the row still open and wins; the other finds nothing to update, reads the status again and is refused ("already
acknowledged"). No lock is held across the read, and no process memory decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from facmon.workorders.late_arrival import Evidence, withdraw_disproved
from facmon.workorders.next_due import refresh_next_due
from facmon.workorders.tables import (
    TERMINAL_STATUSES,
    FollowUp,
    FollowUpOutcome,
    TimelineType,
    WorkOrder,
    WorkOrderClock,
    WorkOrderEvent,
    WorkOrderStatus,
)
from facmon.workorders.transitions import milestones_reached, plan

# Statuses a follow-up visit can be recorded in: the repair is done.
FOLLOW_UP_STATUSES = (WorkOrderStatus.RESOLVED, WorkOrderStatus.CLOSED)
# A compare-and-set can only lose to a transition that moved the work order on; the lifecycle has so few steps
# that this many attempts cannot all lose. Reaching the end means something else is wrong.
_MAX_ATTEMPTS = 2 * len(WorkOrderStatus)


class WorkOrderNotFound(LookupError):
    def __init__(self, work_order_id: int) -> None:
        self.work_order_id = work_order_id
        super().__init__(f"no work order with id {work_order_id}")


class FollowUpRefused(ValueError):
    """A follow-up on a work order that is not resolved or closed."""

    def __init__(self, current: WorkOrderStatus) -> None:
        self.current = current
        allowed = " or ".join(s.value for s in FOLLOW_UP_STATUSES)
        super().__init__(f"follow-up visits are recorded on {allowed} work orders; this one is {current.value}")


class FollowUpTimeInvalid(ValueError):
    """The visit's time cannot be right (before the repair, or in the future)."""


class AssignRefused(ValueError):
    """Assigning a work order whose work is done (resolved, closed or cancelled)."""

    def __init__(self, current: WorkOrderStatus) -> None:
        self.current = current
        super().__init__(f"the work order is {current.value}: there is no work left to assign")


class AlreadyAssigned(ValueError):
    """Taking a work order somebody else has (`assign(..., only_if_unassigned=True)`)."""

    def __init__(self, assignee: str) -> None:
        self.assignee = assignee
        super().__init__(f"the work order is assigned to {assignee}")


@dataclass(frozen=True)
class TransitionResult:
    work_order_id: int
    previous: WorkOrderStatus
    # The statuses recorded, implied ones first; the last is the one asked for.
    steps: tuple[WorkOrderStatus, ...]
    at: datetime


def current_status(session: Session, work_order_id: int) -> WorkOrderStatus:
    status = session.execute(select(WorkOrder.status).where(WorkOrder.id == work_order_id)).scalar_one_or_none()
    if status is None:
        raise WorkOrderNotFound(work_order_id)
    return WorkOrderStatus(status)


def _status_times(steps: tuple[WorkOrderStatus, ...], at: datetime) -> dict[str, Any]:
    # Columns acknowledged_at, on_site_at, resolved_at, closed_at, cancelled_at: one per status after open.
    return {f"{step.value}_at": at for step in steps}


def _set_status(
    session: Session, work_order_id: int, current: WorkOrderStatus, steps: tuple[WorkOrderStatus, ...], at: datetime
) -> bool:
    """The compare-and-set of the status; False if it was no longer `current` (nothing written)."""
    changed = session.execute(
        update(WorkOrder)
        .where(WorkOrder.id == work_order_id, WorkOrder.status == current.value)
        .values(status=steps[-1].value, updated_at=at, **_status_times(steps, at))
        .returning(WorkOrder.id)
        .execution_options(synchronize_session=False)
    ).first()
    return changed is not None


def _move_clocks(session: Session, work_order_id: int, steps: tuple[WorkOrderStatus, ...], at: datetime) -> None:
    """Meet the clocks the steps reach; a cancellation stops those still running. Then the urgency sort's key."""
    clock = WorkOrderClock
    running = (clock.work_order_id == work_order_id, clock.met_at.is_(None), clock.cancelled_at.is_(None))
    reached = milestones_reached(steps)
    if reached:
        session.execute(
            update(clock)
            .where(*running, clock.milestone.in_([m.value for m in reached]))
            .values(met_at=at)
            .execution_options(synchronize_session=False)
        )
    if steps[-1] is WorkOrderStatus.CANCELLED:
        # Clocks still running stop; compliance tells "cancelled in time" from "cancelled after the breach".
        session.execute(
            update(clock).where(*running).values(cancelled_at=at).execution_options(synchronize_session=False)
        )
    refresh_next_due(session, work_order_id)


def _assigned_entry(
    work_order_id: int, status: str, *, actor: str, source: str, at: datetime, detail: dict[str, Any]
) -> WorkOrderEvent:
    return WorkOrderEvent(
        work_order_id=work_order_id,
        at=at,
        type=TimelineType.ASSIGNED,
        status=status,
        actor=actor,
        source=source,
        detail=detail,
    )


def _take(
    session: Session, work_order_id: int, technician: str, to: WorkOrderStatus, actor: str, source: str, at: datetime
) -> None:
    """Make `technician` the assignee of a work order that has none, with its timeline entry."""
    taken = session.execute(
        update(WorkOrder)
        .where(WorkOrder.id == work_order_id, WorkOrder.assignee.is_(None))
        .values(assignee=technician)
        .returning(WorkOrder.id)
        .execution_options(synchronize_session=False)
    ).first()
    if taken is not None:
        reason = f"took the unassigned work order: {to.value}"
        detail = {"from": None, "to": technician, "reason": reason}
        session.add(_assigned_entry(work_order_id, to.value, actor=actor, source=source, at=at, detail=detail))


def _try(
    session: Session,
    work_order_id: int,
    current: WorkOrderStatus,
    steps: tuple[WorkOrderStatus, ...],
    *,
    actor: str,
    source: str,
    note: str | None,
    at: datetime,
    take: str | None = None,
    recorded_by: str | None = None,
    now: datetime | None = None,
) -> bool:
    """Carry out a planned transition; False if the status was no longer `current` (nothing written). `recorded_by`:
    who entered it for `actor` (an engineer recording a technician's arrival), kept in the timeline's detail. A
    breach recorded for a clock the transition meets in time is withdrawn (at `now`, when it was processed)."""
    if not _set_status(session, work_order_id, current, steps, at):
        return False
    _move_clocks(session, work_order_id, steps, at)
    if milestones_reached(steps):
        evidence = Evidence(source, actor, at, note, recorded_by=recorded_by)
        withdraw_disproved(session, work_order_id, evidence, at if now is None else now)
    to = steps[-1]
    for before, step in zip((current, *steps[:-1]), steps, strict=True):
        session.add(
            WorkOrderEvent(
                work_order_id=work_order_id,
                at=at,
                type=TimelineType.TRANSITION,
                status=step.value,
                actor=actor,
                source=source,
                # The note is the person's words about the step they asked for, not about the implied one.
                note=note if step is to else None,
                detail={"from": before.value, "implied": step is not to}
                | ({"recorded_by": recorded_by} if recorded_by is not None else {}),
            )
        )
    if take is not None:
        _take(session, work_order_id, take, to, actor, source, at)
    return True


def transition(
    engine: Engine,
    work_order_id: int,
    to: WorkOrderStatus,
    *,
    actor: str,
    source: str,
    at: datetime,
    note: str | None = None,
    take: str | None = None,
    recorded_by: str | None = None,
    now: datetime | None = None,
) -> TransitionResult:
    """Move a work order to `to`. Raises WorkOrderNotFound, or facmon.workorders.transitions.IllegalTransition (with the
    current status and the allowed next ones). `take`: a technician id that becomes the assignee when the work order
    has none (an `assigned` entry says so). `recorded_by`: who entered the transition for `actor`, when that is
    someone else (the timeline says so). `now`: when it is entered, when later than `at`."""
    for _ in range(_MAX_ATTEMPTS):
        with Session(engine) as session:
            current = current_status(session, work_order_id)
        steps = plan(current, to)
        with Session(engine) as session, session.begin():
            done = _try(
                session,
                work_order_id,
                current,
                steps,
                actor=actor,
                source=source,
                note=note,
                at=at,
                take=take,
                recorded_by=recorded_by,
                now=now,
            )
        if done:
            return TransitionResult(work_order_id=work_order_id, previous=current, steps=steps, at=at)
    raise RuntimeError(f"work order {work_order_id}: status kept changing during {_MAX_ATTEMPTS} attempts")


def transition_in(
    session: Session,
    work_order_id: int,
    to: WorkOrderStatus,
    *,
    actor: str,
    source: str,
    at: datetime,
    note: str | None = None,
    now: datetime | None = None,
) -> TransitionResult:
    """`transition` in the caller's transaction (the rules worker's, for one event): the same checks and records.
    `now`: when it is processed, when that is later than `at` (evidence applied at its own time)."""
    for _ in range(_MAX_ATTEMPTS):
        current = current_status(session, work_order_id)
        steps = plan(current, to)
        if _try(session, work_order_id, current, steps, actor=actor, source=source, note=note, at=at, now=now):
            return TransitionResult(work_order_id=work_order_id, previous=current, steps=steps, at=at)
    raise RuntimeError(f"work order {work_order_id}: status kept changing during {_MAX_ATTEMPTS} attempts")


def add_follow_up(
    engine: Engine,
    work_order_id: int,
    *,
    actor: str,
    outcome: FollowUpOutcome,
    note: str | None,
    visited_at: datetime,
    now: datetime,
    source: str,
) -> FollowUp:
    """Record a follow-up visit. Raises WorkOrderNotFound, FollowUpRefused (not resolved or closed yet) or
    FollowUpTimeInvalid (before the resolution or after `now`)."""
    with Session(engine) as session:
        work_order = session.get(WorkOrder, work_order_id)
        if work_order is None:
            raise WorkOrderNotFound(work_order_id)
        # resolved -> closed is the only way on from here, and both take follow-ups: no race to guard against.
        status = WorkOrderStatus(work_order.status)
        resolved_at = work_order.resolved_at
    if status not in FOLLOW_UP_STATUSES:
        raise FollowUpRefused(status)
    if visited_at > now:
        raise FollowUpTimeInvalid(f"{visited_at.isoformat()} is in the future")
    if resolved_at is not None and visited_at < resolved_at:
        raise FollowUpTimeInvalid(f"the work order was resolved at {resolved_at.isoformat()}, after the visit")
    with Session(engine, expire_on_commit=False) as session, session.begin():
        follow_up = FollowUp(
            work_order_id=work_order_id,
            visited_at=visited_at,
            actor=actor,
            outcome=outcome.value,
            note=note,
            recorded_at=now,
        )
        session.add(follow_up)
        session.flush()
        session.add(
            WorkOrderEvent(
                work_order_id=work_order_id,
                at=now,
                type=TimelineType.FOLLOW_UP,
                status=status.value,
                actor=actor,
                source=source,
                note=note,
                detail={"follow_up_id": follow_up.id, "outcome": outcome.value, "visited_at": visited_at.isoformat()},
            )
        )
    return follow_up


@dataclass(frozen=True)
class AssignResult:
    work_order_id: int
    previous: str | None
    assignee: str | None
    # False when the work order already had this assignee: nothing was written.
    changed: bool


def assign(
    engine: Engine,
    work_order_id: int,
    technician: str | None,
    *,
    actor: str,
    source: str,
    at: datetime,
    only_if_unassigned: bool = False,
) -> AssignResult:
    """Make `technician` (None: nobody) the work order's assignee and record it on the timeline.

    Raises WorkOrderNotFound, AssignRefused (resolved, closed or cancelled) or, with `only_if_unassigned`,
    AlreadyAssigned. The change is a compare-and-set on the assignee and status read before: two people taking
    the same work order at once, one wins and the other is refused (AlreadyAssigned) or overrides it knowingly.
    """
    for _ in range(_MAX_ATTEMPTS):
        with Session(engine) as session:
            row = session.execute(
                select(WorkOrder.status, WorkOrder.assignee).where(WorkOrder.id == work_order_id)
            ).one_or_none()
        if row is None:
            raise WorkOrderNotFound(work_order_id)
        status, previous = WorkOrderStatus(row.status), row.assignee
        if status in TERMINAL_STATUSES:
            raise AssignRefused(status)
        if previous == technician:
            return AssignResult(work_order_id, previous, technician, changed=False)
        if only_if_unassigned and previous is not None:
            raise AlreadyAssigned(previous)
        same = WorkOrder.assignee.is_(None) if previous is None else WorkOrder.assignee == previous
        with Session(engine) as session, session.begin():
            changed = session.execute(
                update(WorkOrder)
                .where(WorkOrder.id == work_order_id, WorkOrder.status == status.value, same)
                .values(assignee=technician, updated_at=at)
                .returning(WorkOrder.id)
                .execution_options(synchronize_session=False)
            ).first()
            if changed is not None:
                detail = {"from": previous, "to": technician}
                session.add(
                    _assigned_entry(work_order_id, status.value, actor=actor, source=source, at=at, detail=detail)
                )
        if changed is not None:
            return AssignResult(work_order_id, previous, technician, changed=True)
    raise RuntimeError(f"work order {work_order_id}: assignee kept changing during {_MAX_ATTEMPTS} attempts")


def add_note(engine: Engine, work_order_id: int, note: str, *, actor: str, source: str, at: datetime) -> WorkOrderEvent:
    """A remark on the work order's timeline (any status). Raises WorkOrderNotFound."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        status = current_status(session, work_order_id)
        entry = WorkOrderEvent(
            work_order_id=work_order_id,
            at=at,
            type=TimelineType.NOTE,
            status=status.value,
            actor=actor,
            source=source,
            note=note,
            detail={},
        )
        session.add(entry)
    return entry
