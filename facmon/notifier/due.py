"""What is due: the open work orders with their SLA clocks, the escalation steps already carried out and their member
counts (`load_open`), and the steps their policies owe now (`due_items`, facmon.notifier.policy)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from facmon.notifier.policy import EscalationState, Policy, Step, due_steps, select_policy
from facmon.notifier.storm import Alert
from facmon.notifier.tables import NotificationStep
from facmon.workorders.tables import OPEN_STATUSES, WorkOrder, WorkOrderClock, WorkOrderMember, WorkOrderStatus


@dataclass
class DueItem:
    """One due step of one work order."""

    order: WorkOrder
    policy: Policy
    step: Step
    alert: Alert


@dataclass
class Loaded:
    orders: list[WorkOrder]
    clocks: dict[int, list[WorkOrderClock]] = field(default_factory=dict)
    done: dict[int, set[str]] = field(default_factory=dict)
    members: dict[int, int] = field(default_factory=dict)


def load_open(engine: Engine) -> Loaded:
    with Session(engine, expire_on_commit=False) as session:
        orders = list(
            session.execute(
                select(WorkOrder).where(WorkOrder.status.in_([s.value for s in OPEN_STATUSES])).order_by(WorkOrder.id)
            ).scalars()
        )
        loaded = Loaded(orders)
        ids = [wo.id for wo in orders]
        if not ids:
            return loaded
        for c in session.execute(select(WorkOrderClock).where(WorkOrderClock.work_order_id.in_(ids))).scalars():
            loaded.clocks.setdefault(c.work_order_id, []).append(c)
        for wo_id, step in session.execute(
            select(NotificationStep.work_order_id, NotificationStep.step).where(NotificationStep.work_order_id.in_(ids))
        ):
            loaded.done.setdefault(wo_id, set()).add(step)
        for wo_id, count in session.execute(
            select(WorkOrderMember.work_order_id, func.count())
            .where(WorkOrderMember.work_order_id.in_(ids))
            .group_by(WorkOrderMember.work_order_id)
        ):
            loaded.members[wo_id] = count
        return loaded


def due_items(
    policies: Sequence[Policy], loaded: Loaded, now: datetime, group_window: timedelta
) -> tuple[list[DueItem], list[DueItem]]:
    """(due now, routine first alerts due within the group window)."""
    due: list[DueItem] = []
    upcoming: list[DueItem] = []
    for wo in loaded.orders:
        policy = select_policy(policies, wo.kind, wo.priority)
        state = EscalationState(
            detected_at=wo.detected_at,
            status=WorkOrderStatus(wo.status),
            breaches={c.name: c.breached_at for c in loaded.clocks.get(wo.id, []) if c.breached_at is not None},
            done=frozenset(loaded.done.get(wo.id, ())),
        )
        steps = due_steps(policy, state, now).due
        due.extend(due_item(wo, policy, step) for step in steps)
        if policy.routine:
            keys = {s.key for s in steps}
            later = due_steps(policy, state, now + group_window).due
            upcoming.extend(
                due_item(wo, policy, s)
                for s in later
                if s.key not in keys and s.repeat == 0 and s.stage.on_breach is None
            )
    return due, upcoming


def due_item(wo: WorkOrder, policy: Policy, step: Step) -> DueItem:
    alert = Alert(wo.id, wo.site, wo.building, wo.kind, step.stage.name, wo.detected_at, policy.routine)
    return DueItem(wo, policy, step, alert)
