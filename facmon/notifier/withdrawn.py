"""Breaches withdrawn: what their escalation still had queued is cancelled, and those it reached are told.

A breach recorded at the deadline is withdrawn when arrival evidence processed later proves the milestone reached in
time (facmon.workorders.late_arrival: the clock's `breached_at` cleared, `breach_withdrawn_at` set). From then on the
policy sees no breach, so the stage waiting for it is no longer due; for what the stage had done already, every tick
of the dispatcher first runs `reconcile` over the breaches withdrawn since:

- its deliveries still queued (not delivered, not given up) are cancelled (`cancelled_at`), and the sender skips
  them; a message shared with other work orders (a grouped one, a digest) is left to go, for the others' sake;
- each recipient it reached gets an all clear (reason `withdrawn`) over the channel that reached them;
- a step `<stage>#withdrawn` is recorded with a `notified` timeline entry naming the clock, what was cancelled and
  who was told, in one transaction; the step's primary key makes it happen once, across restarts and concurrent
  dispatchers.

A withdrawn clock is looked at until a minute after its withdrawal (a dispatcher that read the breach before it was
withdrawn has carried out its step by then), then marked done (`withdrawn:<clock>`), so the question asked every tick
concerns only the few breaches just withdrawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Engine, exists, func, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from facmon.notifier.policy import Policy, Stage, select_policy
from facmon.notifier.queue import delivery_row, from_payload
from facmon.notifier.records import NOTIFIER_SOURCE
from facmon.notifier.tables import Delivery, NotificationStep
from facmon.workorders.tables import TimelineType, WorkOrder, WorkOrderClock, WorkOrderEvent

log = structlog.get_logger(__name__)

REASON = "withdrawn"
# How long a withdrawn clock is looked at before it is marked done.
SETTLE = timedelta(minutes=1)
_DONE_PREFIX = "withdrawn:"


@dataclass(frozen=True)
class Withdrawn:
    """A withdrawn breach still to be reconciled."""

    order: WorkOrder
    clock: str
    withdrawn_at: datetime


def _withdrawn(session: Session) -> list[Withdrawn]:
    c, s = WorkOrderClock, NotificationStep
    done = exists().where(s.work_order_id == c.work_order_id, s.step == literal(_DONE_PREFIX) + c.name)
    rows = session.execute(
        select(WorkOrder, c.name, c.breach_withdrawn_at)
        .join(WorkOrder, WorkOrder.id == c.work_order_id)
        .where(c.breach_withdrawn_at.is_not(None), ~done)
        .order_by(c.work_order_id, c.name)
    ).all()
    return [Withdrawn(wo, name, at) for wo, name, at in rows if at is not None]


def _steps(session: Session, work_order_id: int) -> dict[str, str | None]:
    rows = session.execute(
        select(NotificationStep.step, NotificationStep.message).where(NotificationStep.work_order_id == work_order_id)
    )
    return {step: message for step, message in rows}


def _all_clear(row: Delivery, item: Withdrawn, stage: Stage, now: datetime) -> Delivery:
    notification, recipient = from_payload(row.payload)
    wo = item.order
    clear = replace(
        notification,
        key=f"wo{wo.id}:{stage.name}#{REASON}:{recipient.id}",
        work_order_id=wo.id,
        title=wo.title,
        sla_clock=item.clock,
        sla_left_s=None,
        ack_url=None,
        reason=REASON,
        created_at=now,
    )
    return delivery_row(clear, recipient, row.channel)


def _record(session: Session, item: Withdrawn, policy: Policy, stage: Stage, message: str | None, now: datetime) -> str:
    """Cancel, tell and record one stage's reconciliation; a sentence saying what was done."""
    wo = item.order
    session.add(NotificationStep(work_order_id=wo.id, step=f"{stage.name}#{REASON}", outcome=REASON, at=now))
    rows = (
        [] if message is None else list(session.execute(select(Delivery).where(Delivery.message == message)).scalars())
    )
    shared = message is not None and (
        session.execute(select(func.count()).where(NotificationStep.message == message)).scalar_one() > 1
    )
    queued = [r for r in rows if r.delivered_at is None and r.failed_at is None and r.cancelled_at is None]
    cancelled = [] if shared else [r.key for r in queued]
    if cancelled:
        session.execute(
            update(Delivery)
            .where(Delivery.key.in_(cancelled), Delivery.delivered_at.is_(None))
            .values(cancelled_at=now)
            .execution_options(synchronize_session=False)
        )
    told = [r for r in rows if r.delivered_at is not None]
    session.add_all(_all_clear(r, item, stage, now) for r in told)
    detail: dict[str, Any] = {
        "policy": policy.id,
        "stage": stage.name,
        "step": f"{stage.name}#{REASON}",
        "reason": REASON,
        "clock": item.clock,
        "cancelled": cancelled,
        "told": [{"id": r.recipient_id, "channel": r.channel} for r in told],
    }
    note = f"{item.clock} breach withdrawn: {len(cancelled)} queued message(s) cancelled, {len(told)} all clear(s)"
    session.add(
        WorkOrderEvent(
            work_order_id=wo.id,
            at=now,
            type=TimelineType.NOTIFIED,
            status=wo.status,
            source=NOTIFIER_SOURCE,
            note=note,
            detail=detail,
        )
    )
    return note


def _reconcile_one(engine: Engine, item: Withdrawn, policies: Sequence[Policy], now: datetime) -> int:
    """Reconcile the stages of one withdrawn clock; how many were."""
    policy = select_policy(policies, item.order.kind, item.order.priority)
    done = 0
    with Session(engine) as session:
        steps = _steps(session, item.order.id)
    for stage in (s for s in policy.stages if s.on_breach == item.clock):
        if f"{stage.name}#0" not in steps or f"{stage.name}#{REASON}" in steps:
            continue
        try:
            with Session(engine) as session, session.begin():
                note = _record(session, item, policy, stage, steps[f"{stage.name}#0"], now)
        except IntegrityError:
            continue  # another dispatcher did it
        log.info("escalation withdrawn", work_order=item.order.id, stage=stage.name, what=note)
        done += 1
    if now - item.withdrawn_at >= SETTLE:
        try:
            with Session(engine) as session, session.begin():
                step = f"{_DONE_PREFIX}{item.clock}"
                session.add(NotificationStep(work_order_id=item.order.id, step=step, outcome=REASON, at=now))
        except IntegrityError:
            pass
    return done


def reconcile(engine: Engine, policies: Sequence[Policy], now: datetime) -> int:
    """Reconcile every breach withdrawn and not settled yet; the number of escalation stages reconciled."""
    with Session(engine, expire_on_commit=False) as session:
        items = _withdrawn(session)
    return sum(_reconcile_one(engine, item, policies, now) for item in items)
